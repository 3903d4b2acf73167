import { cpSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { billingRetention, invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { Relay } from '../../gateway/src/relay/relay.ts';
import { dueDelayFor } from '../../gateway/src/relay/sync-modes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { billed, invoices, normalize, orm, oru, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { odooConfig, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

/**
 * A restored backup: the lab's box died, IT restored last night's copy of its data directory on a
 * new box pointed at the same Odoo. The copy holds as queued what the old box delivered since the
 * backup, so the new box delivers it all again: every document must be found, none written twice,
 * also after finance edited the references the gateway searches by (a Customer Reference on the
 * quotation, the invoice's reference) or posted the invoice. Real LevelDB copied as IT copies it
 * (the old box's store closed), the relay and the Odoo emulator over HTTP, whose load() of an
 * existing external id adds the one2many lines again as Odoo 17 does (odoo-api.md D).
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const config = relayConfig({ invoicing: true, autoConfirm: false, maxAttempts: 5 });
const openStore = (dir: string): Promise<EventStore> =>
  EventStore.open({ dataDir: dir, dueDelayMs: dueDelayFor(config), backoff: { initialMs: 10, maxMs: 100 }, pruneIntervalMs: 0, minFreeBytes: 0, deriver: invoiceEligibility, retentionHold: billingRetention });

/**
 * One gateway's store and relay on `dir`, delivering until nothing of it is queued, then stopped.
 * Returns what the relay noted on each invoice.eligible it delivered ("found in Odoo", …), by accession.
 */
async function deliverAll(dir: string, url: string): Promise<Record<string, string[]>> {
  const store = await openStore(dir);
  const telemetry = new Telemetry();
  const oc = odooConfig({ url });
  const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: oc.timeoutMs, telemetry, log: silentLogger, keyExpiryWarnDays: oc.keyExpiryWarnDays });
  const relay = new Relay({ store, odoo: client, config, odooConfig: oc, telemetry, log: silentLogger, idlePollMs: 20, linkBackoff: { initialMs: 20, maxMs: 200 }, watchStock: false, ambiguousSettleMs: 50 });
  try {
    await relay.start();
    await waitFor(() => {
      const s = store.stats();
      return s.pending + s.inFlight + s.retrying === 0;
    }, 20_000, 20);
    await store.flush();
    const dead = (await store.listEvents({ state: 'dead' })).map((e) => `${e.event.type}: ${e.deadReason ?? ''}`);
    expect(dead).toEqual([]);
    const notes: Record<string, string[]> = {};
    for (const e of await store.listEvents({ state: 'delivered', type: 'invoice.eligible' })) (notes[e.event.correlationId] ??= []).push(e.note ?? '(written)');
    return notes;
  } finally {
    await relay.stop(5000);
    await store.close();
  }
}

async function receive(dir: string, texts: string[]): Promise<void> {
  const store = await openStore(dir);
  try {
    for (const text of texts) {
      const { controlId, drafts } = normalize(text);
      const { ack: _ack, ...message } = inboundMessage(controlId);
      await store.commit(message, drafts);
    }
  } finally {
    await store.close();
  }
}

/** What finance has in Odoo: every order, order line, customer invoice and invoice line. */
function books(emu: OdooEmulator): Record<string, number[]> {
  const ids = (model: string, domain: unknown[] = []): number[] => emu.records(model, domain as never).map((r) => r.id as number).sort((a, b) => a - b);
  return {
    'sale.order': ids('sale.order'),
    'sale.order.line': ids('sale.order.line'),
    'account.move': ids('account.move', [['move_type', '=', 'out_invoice']]),
    'account.move.line': ids('account.move.line', [['move_id.move_type', '=', 'out_invoice']]),
  };
}

describe('a restored backup delivering again to the same Odoo', () => {
  it('finds every order and invoice the old box delivered since the backup, references edited or the invoice posted: nothing written twice', async () => {
    const { emu, url } = await startEmulator(17);
    cleanups.push(() => emu.close());
    const { dir: old, cleanup: c1 } = tempDir('restored-backup-old-');
    const { dir: restored, cleanup: c2 } = tempDir('restored-backup-new-');
    cleanups.push(c1, c2);

    // The morning's messages, then the night's backup, taken before the old box delivered them.
    await receive(old, [orm('RB-1', ['GLU', 'CRP']), oru('RB-1', 'GLU'), oru('RB-1', 'CRP'), orm('RB-2', ['TSH']), oru('RB-2', 'TSH')]);
    cpSync(old, restored, { recursive: true });

    // The old box delivers, receives an add-on test afterwards (not in the backup), and dies.
    await deliverAll(old, url);
    await receive(old, [orm('RB-1', ['HBA1C']), oru('RB-1', 'HBA1C')]);
    await deliverAll(old, url);
    expect(billed(emu, 'RB-1')).toEqual(['CRP', 'GLU', 'HBA1C']);
    expect(billed(emu, 'RB-2')).toEqual(['TSH']);

    // Finance meanwhile: the clinic's number as RB-1's Customer Reference and its own reference on
    // RB-1's draft invoice; RB-2's invoice posted.
    const [so1] = saleOrders(emu, 'RB-1');
    const [inv1] = invoices(emu, 'RB-1');
    const [inv2] = invoices(emu, 'RB-2');
    emu.call('sale.order', 'write', [[so1!.id], { client_order_ref: 'CLINIC-PO-4711' }]);
    emu.call('account.move', 'write', [[inv1!.id], { ref: 'FIN-2026-0042' }]);
    emu.call('account.move', 'action_post', [[inv2!.id]]);
    const before = books(emu);
    expect(Object.values(before).every((ids) => ids.length > 0)).toBe(true);

    // The new box, on the restored copy, delivers the whole queue again.
    const notes = await deliverAll(restored, url);

    expect(notes).toEqual({ 'RB-1': ['found in Odoo'], 'RB-2': ['found in Odoo'] });
    expect(books(emu)).toEqual(before);
    expect(saleLines(emu, 'RB-2').map((l) => `${l.code} ${l.qty} invoiced ${l.invoiced}`)).toEqual(['TSH 1 invoiced 1']);
    const lines1 = emu.records('sale.order.line', [['order_id', '=', so1!.id]], { fields: ['product_uom_qty', 'qty_invoiced'] });
    expect(lines1.map((l) => [Number(l['product_uom_qty']), Number(l['qty_invoiced'])])).toEqual(lines1.map(() => [1, 1]));
    expect(emu.records('account.move', [['id', '=', inv2!.id]])[0]!['state']).toBe('posted');
  });
});
