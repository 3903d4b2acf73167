import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { OdooEmulator, type OdooVersion } from '../odoo-emulator/index.ts';

interface Example {
  id: string;
  source: string;
  version: OdooVersion;
  request: { method?: string; path: string; headers?: Record<string, string>; body?: unknown };
  response: { status: number; headers?: Record<string, string>; body: unknown };
}

const fixtures = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../fixtures/odoo/wire-examples.json'), 'utf8')) as { key: string; examples: Example[] };

/** Compares with placeholders: "<int>", "<string>", "<any>"; objects must have exactly the same keys. */
function conforms(actual: unknown, expected: unknown, path = '$'): string[] {
  if (expected === '<any>') return [];
  if (expected === '<int>') return Number.isInteger(actual) ? [] : [`${path}: expected an integer, got ${JSON.stringify(actual)}`];
  if (expected === '<string>') return typeof actual === 'string' ? [] : [`${path}: expected a string, got ${JSON.stringify(actual)}`];
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    return expected.flatMap((e, i) => conforms(actual[i], e, `${path}[${i}]`));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${path}: expected an object, got ${JSON.stringify(actual)}`];
    const a = Object.keys(actual).sort();
    const e = Object.keys(expected).sort();
    if (JSON.stringify(a) !== JSON.stringify(e)) return [`${path}: keys ${JSON.stringify(a)} instead of ${JSON.stringify(e)}`];
    return e.flatMap((k) => conforms((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], `${path}.${k}`));
  }
  return Object.is(actual, expected) ? [] : [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

describe('wire examples from odoo-api.md', () => {
  const emulators = new Map<OdooVersion, Promise<{ odoo: OdooEmulator; url: string }>>();
  const start = (version: OdooVersion) => {
    let e = emulators.get(version);
    if (!e) {
      const odoo = new OdooEmulator({ version, users: [{ login: 'admin', password: 'admin', apiKeys: [{ key: fixtures.key }] }] });
      e = odoo.listen().then(({ url }) => ({ odoo, url }));
      emulators.set(version, e);
    }
    return e;
  };
  afterAll(async () => { for (const e of emulators.values()) await (await e).odoo.close(); });

  it.each(fixtures.examples.map((x) => [x.id, x] as const))('%s', async (_id, ex) => {
    const { url } = await start(ex.version);
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...Object.fromEntries(Object.entries(ex.request.headers ?? {}).map(([k, v]) => [k, v.replace('$KEY', fixtures.key)])) };
    const res = await fetch(`${url}${ex.request.path}`, {
      method: ex.request.method ?? 'POST',
      ...(ex.request.method === 'GET' ? {} : { headers, body: JSON.stringify(ex.request.body ?? {}) }),
    });
    expect(res.status).toBe(ex.response.status);
    for (const [k, v] of Object.entries(ex.response.headers ?? {})) expect(res.headers.get(k)).toBe(v);
    expect(conforms(await res.json(), ex.response.body)).toEqual([]);
  });
});
