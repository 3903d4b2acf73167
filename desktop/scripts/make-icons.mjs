// Generates the tray and app icons as PNGs (filled circles, anti-aliased) with a tiny PNG encoder:
// PNG = signature + IHDR + IDAT (zlib of filtered scanlines) + IEND (ISO/IEC 15948 §5, §11.2).
//   npx node desktop/scripts/make-icons.mjs     (writes desktop/assets/*.png; the PNGs are committed)
import { deflateSync } from 'node:zlib';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../assets');
mkdirSync(out, { recursive: true });

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** RGBA pixels → PNG (colour type 6, bit depth 8, filter 0 on every row). */
function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}
/** A filled circle with a light rim, 4×4 supersampled for smooth edges. */
function circle(size, [r, g, b]) {
  const px = Buffer.alloc(size * size * 4);
  const c = size / 2;
  const R = size / 2 - Math.max(0.5, size / 32);
  const rim = Math.max(1, size / 12);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let cover = 0;
      let inner = 0;
      for (let sy = 0; sy < 4; sy++) {
        for (let sx = 0; sx < 4; sx++) {
          const d = Math.hypot(x + (sx + 0.5) / 4 - c, y + (sy + 0.5) / 4 - c);
          if (d <= R) cover++;
          if (d <= R - rim) inner++;
        }
      }
      const i = (y * size + x) * 4;
      const t = inner / 16; // 1 inside, 0 on the rim
      px[i] = Math.round(r * t + 255 * (1 - t));
      px[i + 1] = Math.round(g * t + 255 * (1 - t));
      px[i + 2] = Math.round(b * t + 255 * (1 - t));
      px[i + 3] = Math.round((cover / 16) * 255);
    }
  }
  return encodePng(size, size, px);
}

const COLOURS = { ok: [0x2e, 0x7d, 0x32], degraded: [0xff, 0xb3, 0x00], down: [0xc6, 0x28, 0x28], offline: [0x75, 0x75, 0x75] };
for (const [name, rgb] of Object.entries(COLOURS)) {
  for (const size of [16, 32, 64]) writeFileSync(path.join(out, `${name}-${size}.png`), circle(size, rgb));
}
for (const size of [256, 512]) writeFileSync(path.join(out, `app-icon-${size}.png`), circle(size, COLOURS.ok));
console.log(`icons written to ${out}`);
