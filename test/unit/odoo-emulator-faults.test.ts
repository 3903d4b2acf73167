import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OdooEmulator } from '../odoo-emulator/index.ts';
import { json2 } from '../odoo-emulator/http-client.ts';

type Envelope = { result?: unknown; error?: { data: { name: string; message: string } } };

const KEY = 'c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff';

/** One JSON-RPC execute_kw over a fresh connection, with an optional client-side timeout (ms) or abort signal. */
async function executeKw(url: string, model: string, method: string, args: unknown[], timeout?: number | AbortSignal): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${url}/jsonrpc`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Connection: 'close' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'call', params: { service: 'object', method: 'execute_kw', args: ['lab', 2, 'admin', model, method, args] } }),
    ...(timeout !== undefined ? { signal: typeof timeout === 'number' ? AbortSignal.timeout(timeout) : timeout } : {}),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    return err.name === 'TimeoutError' || err.name === 'AbortError' ? 'timeout' : err.cause?.code ?? err.message;
  }
  return 'no failure';
}

/**
 * A call whose answer the emulator holds: wait until the emulator has it (however late a busy
 * machine gets it there), watch 300 ms more for an answer that must not come, then give up as a
 * client timeout does.
 */
async function givenUp(call: (signal: AbortSignal) => Promise<unknown>, reached: () => boolean): Promise<string> {
  const client = new AbortController();
  const outcome = failure(call(client.signal));
  for (let i = 0; i < 1_000 && !reached(); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 300));
  client.abort();
  return outcome;
}

describe('fault injection on Odoo 17', () => {
  let odoo: OdooEmulator;
  let url: string;
  const partners = () => odoo.count('res.partner');
  const createPartner = (name: string, timeout?: number | AbortSignal) => executeKw(url, 'res.partner', 'create', [{ name }], timeout);

  beforeAll(async () => {
    odoo = new OdooEmulator({ version: 17 });
    ({ url } = await odoo.listen());
  });
  afterEach(() => { odoo.faults.clear(); });
  afterAll(async () => { await odoo.close(); });

  it('scripted proxy statuses hit consecutive matching calls in order, then calls pass again', async () => {
    odoo.faults.script({ model: 'res.partner', method: 'search_count' }, [
      { kind: 'status', status: 502 }, { kind: 'status', status: 503 }, 'ok', { kind: 'status', status: 429, retryAfterSeconds: 7 }, { kind: 'status', status: 504 },
    ]);
    const seen: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 6; i++) {
      const r = await executeKw(url, 'res.partner', 'search_count', [[]]);
      seen.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get('retry-after');
      if (r.status >= 500) expect(r.text).toContain('<center>nginx</center>');
    }
    expect(seen).toEqual([502, 503, 200, 429, 504, 200]);
    expect(retryAfter).toBe('7');
  });

  it('next(n, model, method) only affects that method', async () => {
    odoo.faults.next(2, 'res.partner', 'create').status(503);
    expect((await executeKw(url, 'res.partner', 'search_count', [[]])).status).toBe(200);
    const before = partners();
    expect((await createPartner('a')).status).toBe(503);
    expect((await createPartner('b')).status).toBe(503);
    expect(partners()).toBe(before);
    expect((await createPartner('c')).status).toBe(200);
    expect(partners()).toBe(before + 1);
    expect(odoo.faults.log.filter((e) => e.request.method === 'create').map((e) => e.action)).toEqual(['status', 'status']);
  });

  it('random statuses are repeatable for a given seed', async () => {
    const run = async () => {
      odoo.faults.clear().random({ probability: 0.5, statuses: [502, 503, 504], seed: 42 });
      const out: number[] = [];
      for (let i = 0; i < 16; i++) out.push((await executeKw(url, 'res.partner', 'search_count', [[]])).status);
      return out;
    };
    const a = await run();
    const b = await run();
    expect(a).toEqual(b);
    expect(a.some((s) => s === 200)).toBe(true);
    expect(a.some((s) => s >= 502)).toBe(true);
  });

  it('timeout before commit: the call is held and nothing is applied', async () => {
    odoo.faults.next(1, 'res.partner', 'create').timeout();
    const before = partners();
    expect(await givenUp((signal) => createPartner('held', signal), () => odoo.faults.pending() === 0)).toBe('timeout');
    expect(partners()).toBe(before);
  });

  it('timeout after commit: the client sees no answer but the record exists', async () => {
    odoo.faults.next(1, 'res.partner', 'create').timeoutAfterCommit();
    const before = partners();
    expect(await givenUp((signal) => createPartner('ghost', signal), () => partners() === before + 1)).toBe('timeout');
    expect(partners()).toBe(before + 1);
    expect(odoo.records('res.partner', [['name', '=', 'ghost']])).toHaveLength(1);
    expect(odoo.calls.at(-1)).toMatchObject({ model: 'res.partner', method: 'create', fault: 'timeout-after-commit' });
  });

  it('a late answer: timeout(afterMs) still runs the call and answers', async () => {
    odoo.faults.next(1, 'res.partner', 'create').timeout(50);
    const r = await createPartner('late');
    expect(JSON.parse(r.text)).toHaveProperty('result');
    expect(odoo.count('res.partner', [['name', '=', 'late']])).toBe(1);
  });

  it('connection reset before the call applies nothing; after the commit it applies it', async () => {
    const before = partners();
    odoo.faults.next(1, 'res.partner', 'create').reset();
    expect(await failure(createPartner('reset-1'))).toMatch(/ECONNRESET|UND_ERR_SOCKET|other side closed/);
    expect(partners()).toBe(before);
    odoo.faults.next(1, 'res.partner', 'create').resetAfterCommit();
    expect(await failure(createPartner('reset-2'))).toMatch(/ECONNRESET|UND_ERR_SOCKET|other side closed/);
    expect(odoo.count('res.partner', [['name', '=', 'reset-2']])).toBe(1);
  });

  it('lock and serialization failures come back as Odoo reports them (HTTP 200 envelope up to 18); nothing applied', async () => {
    const before = partners();
    odoo.faults.next(1, 'res.partner', 'create').lockError();
    const lock = JSON.parse((await createPartner('locked')).text) as Envelope;
    expect(lock.error?.data.name).toBe('psycopg2.errors.LockNotAvailable');
    odoo.faults.next(1, 'res.partner', 'create').serializationFailure();
    const ser = JSON.parse((await createPartner('serial')).text) as Envelope;
    expect(ser.error?.data).toMatchObject({ name: 'psycopg2.errors.SerializationFailure', message: 'could not serialize access due to concurrent update\n' });
    expect(partners()).toBe(before);
  });

  it('added latency delays answers past a short client timeout', async () => {
    odoo.faults.latencyMs = 2_000;
    expect(await failure(executeKw(url, 'res.partner', 'search_count', [[]], 150))).toBe('timeout');
    odoo.faults.latencyMs = 0;
    expect((await executeKw(url, 'res.partner', 'search_count', [[]])).status).toBe(200);
  });

  it('a latency rule delays only the matching calls, and the call still runs', async () => {
    odoo.faults.next(1, 'res.partner', 'create').latency(2_000);
    expect((await executeKw(url, 'res.partner', 'search_count', [[]], 1_000)).status).toBe(200);
    expect(await givenUp((signal) => createPartner('slow', signal), () => odoo.faults.pending() === 0)).toBe('timeout');
    let created = 0;
    for (let i = 0; i < 100 && created === 0; i++) {
      created = odoo.count('res.partner', [['name', '=', 'slow']]);
      if (created === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(created).toBe(1);
  });

  it('an outage answering 503 from the proxy, then normal service', async () => {
    odoo.faults.outage(60_000, '503');
    const r = await executeKw(url, 'res.partner', 'search_count', [[]]);
    expect(r.status).toBe(503);
    odoo.faults.endOutage();
    expect((await executeKw(url, 'res.partner', 'search_count', [[]])).status).toBe(200);
  });

  it('an outage that resets every connection', async () => {
    odoo.faults.outage(60_000, 'reset');
    expect(await failure(executeKw(url, 'res.partner', 'search_count', [[]]))).toMatch(/ECONNRESET|UND_ERR_SOCKET|other side closed/);
    odoo.faults.endOutage();
    expect((await executeKw(url, 'res.partner', 'search_count', [[]])).status).toBe(200);
  });

  it('an outage that refuses connections, then the server listens again on the same port', async () => {
    odoo.faults.outage(60_000, 'refuse');
    expect(await failure(executeKw(url, 'res.partner', 'search_count', [[]]))).toBe('ECONNREFUSED');
    odoo.faults.endOutage();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = await executeKw(url, 'res.partner', 'search_count', [[]]).then((r) => r.status, () => 0);
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(200);
  });

  it('credential checks cost time unless the (uid, key) pair is cached; authenticate is never cached', async () => {
    const authenticate = (timeoutMs: number) => fetch(`${url}/jsonrpc`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(timeoutMs),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, params: { service: 'common', method: 'authenticate', args: ['lab', 'admin', 'admin', {}] } }),
    });
    expect((await executeKw(url, 'res.partner', 'search_count', [[]])).status).toBe(200); // caches (lab, 2, admin)
    odoo.faults.credentialCheckMs = 5_000;
    expect((await executeKw(url, 'res.partner', 'search_count', [[]], 2_000)).status).toBe(200);
    expect(await failure(authenticate(200))).toBe('timeout');
    odoo.faults.credentialCheckMs = 0;
  });

  it('faults match by JSON-RPC service too (authenticate)', async () => {
    odoo.faults.inject({ match: { service: 'common', rpcMethod: 'authenticate' }, times: 1, action: { kind: 'status', status: 502 } });
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, params: { service: 'common', method: 'authenticate', args: ['lab', 'admin', 'admin', {}] } });
    const post = () => fetch(`${url}/jsonrpc`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    expect((await post()).status).toBe(502);
    expect((await (await post()).json()) as Envelope).toMatchObject({ result: 2 });
    expect(odoo.faults.pending()).toBe(0);
  });
});

describe('fault injection on Odoo 19 (JSON-2)', () => {
  let odoo: OdooEmulator;
  let url: string;
  beforeAll(async () => {
    odoo = new OdooEmulator({ version: 19, users: [{ login: 'admin', password: 'admin', apiKeys: [{ key: KEY }] }] });
    ({ url } = await odoo.listen());
  });
  afterAll(async () => { await odoo.close(); });

  it('a lock error is HTTP 409 odoo.exceptions.LockError and applies nothing', async () => {
    const before = odoo.count('res.partner');
    odoo.faults.next(1, 'res.partner', 'create').lockError();
    const r = await json2(url, KEY, 'res.partner', 'create', { vals_list: [{ name: 'x' }] });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ name: 'odoo.exceptions.LockError' });
    expect(odoo.count('res.partner')).toBe(before);
  });

  it('the next two validations time out after committing', async () => {
    const type = odoo.records('stock.picking.type', [['sequence_code', '=', 'LAB']])[0]!;
    const tips = odoo.records('product.product', [['default_code', '=', 'TIP-200']])[0]!.id;
    const pickings = [1, 2, 3].map(() => odoo.call('stock.picking', 'create', [{ picking_type_id: type.id, move_ids: [[0, 0, { product_id: tips, product_uom_qty: 1 }]] }]) as number);
    odoo.faults.next(2, 'stock.picking', 'button_validate').timeoutAfterCommit();
    const validate = (id: number, signal: AbortSignal) => fetch(`${url}/json/2/stock.picking/button_validate`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `bearer ${KEY}` }, body: JSON.stringify({ ids: [id] }), signal,
    });
    const done = (id: number) => odoo.records('stock.picking', [['id', '=', id]])[0]?.state === 'done';
    expect(await givenUp((signal) => validate(pickings[0]!, signal), () => done(pickings[0]!))).toBe('timeout');
    expect(await givenUp((signal) => validate(pickings[1]!, signal), () => done(pickings[1]!))).toBe('timeout');
    expect((await validate(pickings[2]!, AbortSignal.timeout(10_000))).status).toBe(200);
    expect(odoo.records('stock.picking', [['id', 'in', pickings]]).map((p) => p.state)).toEqual(['done', 'done', 'done']);
  });

  it('close() returns while a request is held, and is idempotent', async () => {
    const other = new OdooEmulator({ version: 19, seed: 'empty', users: [{ login: 'admin', password: 'admin', apiKeys: [{ key: KEY }] }] });
    const { url: u } = await other.listen();
    other.faults.next(1).timeout();
    const pending = failure(json2(u, KEY, 'res.partner', 'search', { domain: [] }));
    await new Promise((r) => setTimeout(r, 50));
    await other.close();
    await other.close();
    expect(await pending).not.toBe('no failure');
  });
});
