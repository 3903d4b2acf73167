import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OdooEmulator } from '../odoo-emulator/index.ts';
import { executeKw, jsonRpc } from '../odoo-emulator/http-client.ts';

type Envelope = { result?: unknown; error?: { data: { name: string; message: string } } };

const KEY = 'f00df00df00df00df00df00df00df00df00df00d';
const TOO_MANY = 'Too many login failures, please wait a bit before trying again.';

describe.each([16, 17, 18, 19] as const)('login cooldown on Odoo %i', (version) => {
  let odoo: OdooEmulator;
  let url: string;
  let now = new Date('2026-05-01T10:00:00Z');

  const authenticate = async (secret: string) => ((await jsonRpc(url, 'common', 'authenticate', ['lab', 'gateway', secret, {}])).body as Envelope).result;
  const search = async (secret: string) => (await executeKw(url, { db: 'lab', uid: 2, secret }, 'res.partner', 'search_count', [[]])).body as Envelope;

  beforeAll(async () => {
    odoo = new OdooEmulator({ version, seed: 'empty', now: () => now, users: [{ login: 'gateway', password: '', apiKeys: [{ key: KEY }] }] });
    ({ url } = await odoo.listen());
  });
  beforeEach(() => {
    odoo.reset();
    now = new Date('2026-05-01T10:00:00Z');
  });
  afterAll(async () => { await odoo.close(); });

  it('five failed authentications lock every attempt out for 60 s, even with the right key', async () => {
    for (let i = 0; i < 5; i++) expect(await authenticate('wrong')).toBe(false);
    expect(await authenticate(KEY)).toBe(false);
    const refused = await search(KEY);
    expect(refused.error?.data).toEqual(expect.objectContaining({ name: 'odoo.exceptions.AccessDenied', message: TOO_MANY }));
    now = new Date(now.getTime() + 61_000);
    expect(await authenticate(KEY)).toBe(2);
    expect((await search(KEY)).result).toEqual(expect.any(Number));
  });

  it('four failures then a success clears the counter', async () => {
    for (let i = 0; i < 4; i++) expect(await authenticate('wrong')).toBe(false);
    expect(await authenticate(KEY)).toBe(2);
    for (let i = 0; i < 4; i++) expect(await authenticate('wrong')).toBe(false);
    expect(await authenticate(KEY)).toBe(2);
  });

  it('a wrong key in execute_kw counts toward the cooldown too (odoo-api.md §D)', async () => {
    for (let i = 0; i < 5; i++) expect((await search('wrong')).error?.data).toEqual(expect.objectContaining({ name: 'odoo.exceptions.AccessDenied', message: 'Access Denied' }));
    expect((await search(KEY)).error?.data.message).toBe(TOO_MANY);
    expect(await authenticate(KEY)).toBe(false);
  });

  it('after the cooldown one more failure locks again at once', async () => {
    for (let i = 0; i < 5; i++) await authenticate('wrong');
    now = new Date(now.getTime() + 61_000);
    expect(await authenticate('wrong')).toBe(false);
    expect(await authenticate(KEY)).toBe(false);
  });

  it('a revoked key is refused at once; an added key works', async () => {
    expect((await search(KEY)).result).toEqual(expect.any(Number));
    expect(odoo.revokeApiKey(KEY)).toBe(true);
    expect((await search(KEY)).error?.data.name).toBe('odoo.exceptions.AccessDenied');
    odoo.addApiKey('gateway', { key: 'rotated-key' });
    expect((await search('rotated-key')).result).toEqual(expect.any(Number));
    odoo.addApiKey('gateway', { key: KEY });
  });

  it('passwords work over JSON-RPC when set; an empty password never matches', async () => {
    expect(await authenticate('')).toBe(false);
  });
});
