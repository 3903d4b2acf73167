import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/**
 * The status page's static files (gateway/src/status/page/: HTML, CSS, JS; no framework, no CDN).
 * Read once at start from the source folder. Run from dist/, the compiled module looks for the
 * same folder in the source tree (dist/gateway/src/status → gateway/src/status/page), which the
 * package and the .deb ship next to dist/.
 */
export interface PageAsset {
  body: Buffer;
  contentType: string;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export function findPageDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'page'), path.resolve(here, '../../../../gateway/src/status/page')];
  for (const c of candidates) if (existsSync(path.join(c, 'index.html'))) return c;
  throw new Error(`status page files not found (looked in ${candidates.join(', ')})`);
}

export function loadPageAssets(dir: string = findPageDir()): Map<string, PageAsset> {
  const assets = new Map<string, PageAsset>();
  for (const name of ['index.html', 'page.css', 'page.js', 'favicon.svg']) {
    const file = path.join(dir, name);
    if (!existsSync(file)) continue;
    assets.set('/' + name, { body: readFileSync(file), contentType: TYPES[path.extname(name)] ?? 'application/octet-stream' });
  }
  const index = assets.get('/index.html');
  if (index) assets.set('/', index);
  return assets;
}
