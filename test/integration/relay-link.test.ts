import { afterEach, describe, expect, it } from 'vitest';
import type { OdooLinkState } from '../../gateway/src/telemetry.ts';
import { BOT, makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { invoiceEligible, orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/** Link behaviour: credentials refused, key expiry, outages, pause/resume, Odoo's own refusals. */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

function states(r: Rig): OdooLinkState[] {
  const seen: OdooLinkState[] = [];
  r.telemetry.on('odoo.state', (s) => seen.push(s.state));
  return seen;
}

describe('credentials refused', () => {
  it.each([
    [17, 'a wrong key (authenticate → false)', { users: [{ login: 'admin', password: 'admin' }, { login: BOT.login, password: 'x', apiKeys: [{ key: 'another-key' }], rights: 'bot' as const }] }],
    [18, 'an expired key', { users: [{ login: 'admin', password: 'admin' }, { login: BOT.login, password: 'x', apiKeys: [{ key: BOT.key, expiresAt: '2020-01-01T00:00:00Z' }], rights: 'bot' as const }] }],
    [19, 'a revoked bearer key (HTTP 401)', { users: [{ login: 'admin', password: 'admin' }, { login: BOT.login, password: 'x', apiKeys: [], rights: 'bot' as const }] }],
  ] as const)('Odoo %i with %s: link auth-failed, events kept, no tight login loop', async (version, _what, emuOptions) => {
    // The table is `as const` for the version literals; the emulator takes mutable option arrays.
    const started = await startEmulator(version, emuOptions as unknown as Parameters<typeof startEmulator>[1]);
    const emu = started.emu;
    rig = await makeRig(version, { emu: started, start: false, relayOptions: { authBackoff: { initialMs: 300, maxMs: 600 } } });
    const seen = states(rig);
    const alerts: string[] = [];
    rig.telemetry.on('alert', (a) => alerts.push(a.code));
    const t0 = Date.now();
    await rig.relay.start();
    const [id] = await rig.commit([orderCreated('AUTH1', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => seen.includes('auth-failed'));
    // One login attempt = version probe + authenticate (JSON-RPC) or context_get (JSON-2).
    const attempts = (): number => (version >= 19 ? emu.calls.filter((c) => c.method === 'context_get').length : emu.calls.filter((c) => c.service === 'common').length / 2);
    // Watch the refusals for a second (the back-off must hold); the second attempt itself may come
    // later than that on a busy machine: wait for it.
    await new Promise((r) => setTimeout(r, 1000));
    await waitFor(() => attempts() >= 2);
    expect(alerts).toContain('ODOO_AUTH_FAILED');
    // With a back-off of 300 ms doubling to 600 ms, at most one attempt per 300 ms (+1 for the first).
    expect(attempts()).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 300) + 1);
    const ev = await rig.store.getEvent(id!);
    expect(ev?.state).toBe('pending');
    expect(ev?.attempts).toBe(0);
    expect(emu.count('sale.order', [['client_order_ref', '=', 'AUTH1']])).toBe(0);
    await emu.close();
  });
});

describe('API key expiry', () => {
  it('warns keyExpiryWarnDays before odoo.apiKeyExpiresAt (alert + state with days left)', async () => {
    const inFiveDays = new Date(Date.now() + 5.5 * 86_400_000).toISOString();
    rig = await makeRig(18, { odoo: { apiKeyExpiresAt: inFiveDays, keyExpiryWarnDays: 14 }, start: false });
    const alerts: Array<{ code: string; message: string }> = [];
    const days: number[] = [];
    rig.telemetry.on('alert', (a) => alerts.push(a));
    rig.telemetry.on('odoo.state', (s) => typeof s.keyExpiresInDays === 'number' && days.push(s.keyExpiresInDays));
    await rig.relay.start();
    await waitFor(() => alerts.some((a) => a.code === 'ODOO_KEY_EXPIRING'));
    expect(alerts.find((a) => a.code === 'ODOO_KEY_EXPIRING')?.message).toMatch(/expires in 5 day/);
    expect(days).toContain(5);
  });

  it('does not warn when the expiry is far away', async () => {
    rig = await makeRig(18, { odoo: { apiKeyExpiresAt: new Date(Date.now() + 60 * 86_400_000).toISOString(), keyExpiryWarnDays: 14 }, start: false });
    const alerts: string[] = [];
    rig.telemetry.on('alert', (a) => alerts.push(a.code));
    await rig.relay.start();
    await rig.commit([orderCreated('EXP1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    expect(alerts).not.toContain('ODOO_KEY_EXPIRING');
  });
});

describe('outage', () => {
  it('Odoo down: link unreachable, nothing dead-lettered, no attempt charged; delivered when it returns', async () => {
    rig = await makeRig(17, { relay: { maxAttempts: 2 }, start: false });
    const seen = states(rig);
    await rig.relay.start();
    await waitFor(() => seen.includes('connected'));
    rig.emu.faults.outage(1500, 'refuse');
    const ids = await rig.commit([orderCreated('OUT1', 'CLINIC-A', ['GLU']), orderCreated('OUT2', 'CLINIC-B', ['TSH'])]);
    await waitFor(() => seen.includes('unreachable'));
    await rig.waitDrained();
    for (const id of ids) {
      const ev = await rig.store.getEvent(id);
      expect(ev?.state).toBe('delivered');
      expect(ev?.attempts).toBe(1);
    }
    expect(seen.lastIndexOf('connected')).toBeGreaterThan(seen.indexOf('unreachable'));
    expect(rig.emu.count('sale.order', [['client_order_ref', 'in', ['OUT1', 'OUT2']]])).toBe(2);
  });

  it('a 503 storm from the front proxy is waited out the same way', async () => {
    rig = await makeRig(19, { relay: { maxAttempts: 2 } });
    const seen = states(rig);
    await rig.waitDrained();
    rig.emu.faults.outage(1000, '503');
    const [id] = await rig.commit([orderCreated('OUT3', 'CLINIC-A', ['CRP'])]);
    await rig.waitDrained();
    // As for the refused connections above: the link went unreachable and came back, the storm
    // charged no attempt (maxAttempts 2 would have dead-lettered it), one order landed.
    expect(seen).toContain('unreachable');
    expect(seen.lastIndexOf('connected')).toBeGreaterThan(seen.indexOf('unreachable'));
    const ev = await rig.store.getEvent(id!);
    expect(ev?.state).toBe('delivered');
    expect(ev?.attempts).toBe(1);
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'OUT3']])).toBe(1);
  });
});

describe('JSON-2 on a multi-database host', () => {
  it('X-Odoo-Database selects the database; a wrong name is a link problem, not a dead letter', async () => {
    const started = await startEmulator(19, { multiDatabase: true });
    rig = await makeRig(19, { emu: started });
    await rig.commit([orderCreated('MDB1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'MDB1']])).toBe(1);
    await rig.close();
    rig = await makeRig(19, { emu: started, odoo: { database: 'wrong' }, start: false });
    const seen = states(rig);
    await rig.relay.start();
    const [id] = await rig.commit([orderCreated('MDB2', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => seen.includes('unreachable'));
    expect(rig.relay.snapshot().lastError).toMatch(/404.*odoo\.database/);
    expect((await rig.store.getEvent(id!))?.state).toBe('pending');
    await rig.close();
    rig = undefined;
    await started.emu.close();
  });
});

describe('admin pause', () => {
  it('pause() stops posting, resume() delivers', async () => {
    rig = await makeRig(17);
    const seen = states(rig);
    rig.relay.pause();
    expect(rig.relay.snapshot().state).toBe('paused');
    const [id] = await rig.commit([orderCreated('P1', 'CLINIC-A', ['GLU'])]);
    await new Promise((r) => setTimeout(r, 500));
    expect((await rig.store.getEvent(id!))?.state).toBe('pending');
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'P1']])).toBe(0);
    rig.relay.resume();
    await rig.waitDrained();
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'P1']])).toBe(1);
    expect(seen).toContain('paused');
  });
});

describe("Odoo's own refusals", () => {
  it('a UserError is a dead letter with Odoo\'s message, not a retry loop', async () => {
    rig = await makeRig(17, { relay: { autoConfirm: true, invoicing: true } });
    await rig.commit([orderCreated('U1', 'CLINIC-A', ['GLU'])]);
    // No billable test listed: the invoice has no line and Odoo refuses to post it.
    const [id] = await rig.commit([invoiceEligible('U1', [])]);
    await waitFor(async () => (await rig!.store.getEvent(id!))?.state === 'dead');
    const ev = await rig.store.getEvent(id!);
    expect(ev?.deadReason).toMatch(/UserError: You need to add a line before posting/);
    expect(ev?.attempts).toBe(1);
  });

  it('invoicing off: invoice.eligible is delivered without creating anything', async () => {
    rig = await makeRig(17, { relay: { invoicing: false } });
    await rig.commit([orderCreated('U2', 'CLINIC-A', ['GLU']), invoiceEligible('U2', ['GLU'])]);
    await rig.waitDrained();
    expect(rig.emu.count('account.move', [['ref', '=', 'lab-gateway U2']])).toBe(0);
    expect(rig.store.stats().deadLettered).toBe(0);
  });

  it('a method returning None (no `result` key) is a success', async () => {
    rig = await makeRig(17);
    await waitFor(() => rig!.client.state === 'connected');
    const [pickingId] = (await rig.client.call<number[]>('stock.picking', 'create', { vals_list: [{ picking_type_id: rig.emu.records('stock.picking.type', [['name', '=', 'Lab Consumption']])[0]!.id }] }));
    await expect(rig.client.call('stock.picking', 'do_unreserve', {}, { ids: [pickingId!] })).resolves.toBeNull();
  });
});
