import { afterEach, describe, expect, it } from 'vitest';
import { pgError, serializeError } from '../odoo-emulator/odoo-errors.ts';
import { objectCall, rigBehindProxy, type Interceptor } from '../fixtures/relay/front-proxy.ts';
import type { Rig } from '../fixtures/relay/harness.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Audit of the relay while the PostgreSQL under Odoo restarts (a minor update, a failover, Odoo.sh
 * maintenance). Odoo's workers keep their database connections in a pool: a call that runs on one
 * the restart cut fails with `psycopg2.errors.AdminShutdown` ("terminating connection due to
 * administrator command"), or `psycopg2.InterfaceError` ("connection already closed") when the
 * dead connection is used again; Odoo's `retrying` only retries serialization failures and
 * re-raises these (odoo-api.md A.3), serialised as any exception (A.1: HTTP 200 envelope on
 * 16–18; A.4: HTTP 500 with a JSON body on 19). The database was down, the event was never
 * judged: finance needs it in Odoo once the database is back, not in the dead-letter list.
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const FAILURES = {
  'admin-shutdown': ['psycopg2.errors.AdminShutdown', 'terminating connection due to administrator command\nserver closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n'],
  'connection-closed': ['psycopg2.InterfaceError', 'connection already closed'],
} as const;

/** Odoo answering every object call with `name` while its database restarts. */
function databaseRestarting(version: 17 | 19, name: string, message: string): Interceptor {
  return (req, res) => {
    if (!objectCall(req)) return false;
    const data = serializeError(pgError(name, message), version);
    if (version === 19) {
      const body = JSON.stringify(data);
      res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    }
    const id = (req.json as { id?: unknown } | undefined)?.id ?? null;
    const body = JSON.stringify({ jsonrpc: '2.0', id, error: { code: 200, message: 'Odoo Server Error', data } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  };
}

describe("Odoo's database restarting under it", () => {
  it.each([
    [17, 'admin-shutdown'],
    [17, 'connection-closed'],
    [19, 'admin-shutdown'],
    [19, 'connection-closed'],
  ] as const)('Odoo %i answering %s: the order waits, uncharged, and reaches Odoo when the database is back', async (version, kind) => {
    // What finance saw: the orders that came in during the two minutes of the database's restart
    // were dead letters ("Odoo rejected the request (sale.order.search_read):
    // psycopg2.errors.AdminShutdown: database error on the Odoo server") and never reached Odoo
    // until someone replayed them. Broke: nothing lost (DESIGN.md §2), Odoo down dead-letters nothing.
    const { started, proxy, rig: proxied } = await rigBehindProxy(version, { relay: { maxAttempts: 2 } });
    rig = proxied;
    await rig.commit([orderCreated('PGR0', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();

    const [name, message] = FAILURES[kind];
    proxy.intercept(databaseRestarting(version, name, message));
    const [id] = await rig.commit([orderCreated('PGR1', 'CLINIC-A', ['GLU'])]);
    // Several failed calls: with maxAttempts 2 a charged event would be dead by now (and a dead
    // one is not sent again: stop waiting then).
    await waitFor(() => proxy.intercepted() >= 4 || rig!.store.stats().deadLettered > 0);
    const during = await rig.store.getEvent(id!);
    expect(during?.state).not.toBe('dead');
    expect(during?.attempts).toBe(0);
    // IT staff can tell it was the database, from the exception's name.
    expect(rig.relay.snapshot().lastError ?? '').toContain(name);

    proxy.intercept(undefined);
    await rig.waitDrained();
    expect((await rig.store.getEvent(id!))?.state).toBe('delivered');
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'PGR1']])).toBe(1);
    expect(rig.store.stats().deadLettered).toBe(0);
  });
});
