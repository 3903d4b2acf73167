/**
 * A frame that never ends (gateway/src/ingress/mllp/README.md "A frame that never ends").
 *
 * What the user saw: a LIS set up without MLLP's end block (it sends VT, the message and a CR, but
 * never FS CR) waited for its ACK while the gateway waited for the end of the frame. Both hung
 * until the LIS timed out; the LIS resent into the same open frame (its VT abandoned the first,
 * started the next, and no bound ever ran out); the gateway's log said nothing at info or warn;
 * the connection and its slot of `hl7[].maxConnections` stayed taken until the idle close, 30
 * minutes by default, or for ever when a sender trickled bytes, each of which put the idle close
 * off again.
 *
 * Now a frame not ended within `hl7[].frameTimeoutMs` of its start block is cut: the connection is
 * closed, a warning names the endpoint, the LIS's address, the bytes received and the likely
 * cause, and the bytes are kept as a rejected message (as every incomplete frame is), counted as
 * rejected. A message that ends, even one sent slowly, is never touched.
 *
 * A whole gateway in this process (its configuration validated like a config file, a real LevelDB
 * store in a temp dir), real TCP sockets, the gateway's own JSON log lines. No timed assertion:
 * the tests wait for the socket's 'close' or for replies.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { HL7_ENDPOINT_DEFAULTS } from '../../gateway/src/config/defaults.ts';
import { validateConfig } from '../../gateway/src/config/validate.ts';
import { acks, CR, FS, oru, useLinkRig, VT } from '../fixtures/hl7/link-rig.ts';

/** The bound of the link `lis` (short, for the test) and of `slow` (room for a slow link). */
const FRAME_TIMEOUT_MS = 400;
const SLOW_FRAME_TIMEOUT_MS = 10_000;

const rig = useLinkRig('frame-timeout', [
  // The idle close at its default (30 minutes): only the frame's bound can cut these.
  { id: 'lis', listen: { host: '127.0.0.1', port: 0 }, frameTimeoutMs: FRAME_TIMEOUT_MS },
  { id: 'slow', listen: { host: '127.0.0.1', port: 0 }, frameTimeoutMs: SLOW_FRAME_TIMEOUT_MS },
]);
const { connect, keptFrom, warningsAbout, logLines, states } = rig;

describe('MLLP: a frame that never ends is cut after hl7[].frameTimeoutMs', () => {
  it('a LIS that ends its message with a CR and no FS CR: the connection is closed, the bytes kept, the cause said', async () => {
    const lis = await connect('lis');
    const message = oru('NOEND-1');
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(message, 'latin1')]));
    // It waits for its ACK; the gateway closes the connection once the bound has run out.
    await lis.closed;

    expect(lis.received().length, 'no AR: the sender keeps the message and sends it again').toBe(0);
    const warning = warningsAbout(lis.address).find((l) => String(l.msg).includes('no end block'));
    expect(warning, `a warning naming the cause; log: ${JSON.stringify(warningsAbout(lis.address))}`).toBeDefined();
    expect(warning).toMatchObject({ endpoint: 'lis', remote: lis.address, bytes: message.length });
    expect(String(warning?.msg)).toMatch(/FS CR/);
    expect(String(warning?.msg)).toMatch(/MLLP framing/);
    expect(String(warning?.msg)).toContain(`${message.length} bytes`);

    // Kept for the operator as every incomplete frame is: raw bytes, rejected, with the reason.
    await expect.poll(() => keptFrom('lis', lis.address).then((k) => k.length), { timeout: 10_000 }).toBe(1);
    const [kept] = await keptFrom('lis', lis.address);
    expect(kept?.status).toBe('rejected');
    expect(kept?.raw.toString('latin1')).toBe(message);
    expect(kept?.rejectReason).toMatch(/incomplete message \(frame-timeout\)/);

    // The link's state says why its connection was closed.
    expect(states.some((s) => s.endpoint === 'lis' && s.detail?.includes('no end block') === true)).toBe(true);
  });

  it('a LIS that resends into the same open frame: the bound counts from the first start block', async () => {
    const lis = await connect('lis');
    const message = oru('NOEND-2');
    // Every resend's VT abandons the frame before and starts another; none ends.
    const resend = setInterval(() => {
      if (!lis.socket.destroyed && lis.socket.writable) lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(message, 'latin1')]));
    }, FRAME_TIMEOUT_MS / 4);
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(message, 'latin1')]));
    try {
      await lis.closed;
    } finally {
      clearInterval(resend);
    }
    expect(lis.received().length).toBe(0);
    expect(warningsAbout(lis.address).some((l) => String(l.msg).includes('no end block'))).toBe(true);
    // Each abandoned frame and the last one are kept, every one with the whole message.
    const kept = await keptFrom('lis', lis.address);
    expect(kept.length).toBeGreaterThanOrEqual(2);
    for (const k of kept) {
      expect(k.status).toBe('rejected');
      expect(k.raw.toString('latin1')).toBe(message);
    }
    expect(kept.at(-1)?.rejectReason).toMatch(/\(frame-timeout\)/);
  });

  it('a sender that trickles bytes is cut though every byte puts off the idle close', async () => {
    const lis = await connect('lis');
    const bytes = Buffer.concat([Buffer.of(VT), Buffer.from(oru('TRICKLE-1', 50), 'latin1')]);
    let sent = 0;
    const trickle = setInterval(() => {
      if (sent < bytes.length && !lis.socket.destroyed && lis.socket.writable) lis.socket.write(bytes.subarray(sent, ++sent));
    }, 20);
    try {
      await lis.closed;
    } finally {
      clearInterval(trickle);
    }
    expect(sent, 'the sender was still sending when it was cut').toBeLessThan(bytes.length);
    const warning = warningsAbout(lis.address).find((l) => String(l.msg).includes('no end block'));
    expect(warning).toMatchObject({ endpoint: 'lis', remote: lis.address });
    expect(String(warning?.msg)).toMatch(/still arriving/);
    const kept = await keptFrom('lis', lis.address);
    expect(kept).toHaveLength(1);
    expect(kept[0]?.status).toBe('rejected');
    expect(bytes.subarray(1).toString('latin1').startsWith(kept[0]?.raw.toString('latin1') ?? '?')).toBe(true);
    expect(kept[0]?.raw.length).toBe(warning?.bytes);
  });

  it('a block ended by FS without its CR is still answered and the connection stays open, though the bound is shorter than the wait for that CR', async () => {
    const lis = await connect('lis');
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('FSONLY-1'), 'latin1'), Buffer.of(FS)]));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([['AA', 'FSONLY-1']]);
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('FSONLY-2'), 'latin1'), Buffer.of(FS)]));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([
      ['AA', 'FSONLY-1'],
      ['AA', 'FSONLY-2'],
    ]);
    expect(lis.socket.destroyed).toBe(false);
    expect(warningsAbout(lis.address)).toEqual([]);
  });

  it('a connection that waits between messages longer than the bound is not cut: the bound is a frame\'s, not the link\'s', async () => {
    const lis = await connect('lis');
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('QUIET-1'), 'latin1'), Buffer.of(FS, CR)]));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([['AA', 'QUIET-1']]);
    // Quiet for several bounds (keep-alive CRs outside frames meanwhile), then the next message.
    for (let i = 0; i < 4; i++) {
      await sleep(FRAME_TIMEOUT_MS);
      lis.socket.write(Buffer.of(CR));
    }
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('QUIET-2'), 'latin1'), Buffer.of(FS, CR)]));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([
      ['AA', 'QUIET-1'],
      ['AA', 'QUIET-2'],
    ]);
    expect(lis.socket.destroyed).toBe(false);
    expect(warningsAbout(lis.address)).toEqual([]);
  });

  it('a large message sent slowly but steadily is taken whole when it ends within the bound', async () => {
    const lis = await connect('slow');
    const message = oru('SLOW-1', 2_000);
    const bytes = Buffer.concat([Buffer.of(VT), Buffer.from(message, 'latin1'), Buffer.of(FS, CR)]);
    // About a second for 83 KB, in 20 pieces: a tenth of the bound.
    const pieces = 20;
    const step = Math.ceil(bytes.length / pieces);
    for (let at = 0; at < bytes.length; at += step) {
      lis.socket.write(bytes.subarray(at, at + step));
      await sleep(50);
    }
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([['AA', 'SLOW-1']]);
    expect(lis.socket.destroyed).toBe(false);
    const kept = await keptFrom('slow', lis.address);
    expect(kept).toHaveLength(1);
    expect(kept[0]?.status).toBe('accepted');
    expect(kept[0]?.raw.toString('latin1')).toBe(message);
  });
});

describe('hl7[].frameTimeoutMs in the configuration', () => {
  const hl7 = (extra: Record<string, unknown>): unknown => ({ hl7: [{ id: 'lis', listen: { host: '127.0.0.1', port: 2575 }, ...extra }] });

  it('defaults to a minute; 0 turns the bound off', () => {
    expect(HL7_ENDPOINT_DEFAULTS.frameTimeoutMs).toBe(60_000);
    expect(validateConfig(hl7({})).config?.hl7[0]?.frameTimeoutMs).toBe(60_000);
    expect(validateConfig(hl7({ frameTimeoutMs: 0 })).config?.hl7[0]?.frameTimeoutMs).toBe(0);
  });

  it('a negative or non-numeric value is an error at its key', () => {
    for (const bad of [-1, 'soon']) {
      const { config, issues } = validateConfig(hl7({ frameTimeoutMs: bad }));
      expect(config).toBeUndefined();
      expect(issues.some((i) => i.severity === 'error' && i.path === 'hl7[0].frameTimeoutMs')).toBe(true);
    }
  });
});
