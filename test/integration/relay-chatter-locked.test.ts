import { afterEach, describe, expect, it } from 'vitest';
import { chatterText } from '../odoo-emulator/index.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { invoiceEligible, milestone, orderCancelled, orderCreated, productId, resultValidated, waitFor } from '../fixtures/relay/helpers.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';

/**
 * The real relay against the Odoo emulator, on behaviour checked against Odoo's source:
 * - chatter notes: 16 stores a `message_post` body as HTML, 17+ escapes a plain-text body and keeps
 *   its line breaks as whitespace (mail_thread.py `message_post`); the note must read exactly as the
 *   gateway wrote it on every version;
 * - "Lock Confirmed Sales": a locked order refuses writes on its lines' quantities
 *   (sale_order_line.py `write`), not new lines, delivered quantities or invoices.
 */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const VERSIONS: OdooVersion[] = [16, 17, 18, 19];

function saleOrder(r: Rig, accession: string): Record<string, unknown> & { id: number } {
  return r.emu.records('sale.order', [['client_order_ref', '=', accession]])[0] as Record<string, unknown> & { id: number };
}

function lineOf(r: Rig, soId: number, code: string): Record<string, unknown> & { id: number } {
  return r.emu.records('sale.order.line', [['order_id', '=', soId], ['product_id', '=', productId(r.emu, code)]])[0] as Record<string, unknown> & { id: number };
}

async function stateOf(r: Rig, id: string): Promise<string | undefined> {
  return (await r.store.getEvent(id))?.state;
}

/** A later order message of the same accession (another message control id). */
function addOn(accession: string, tests: string[], n: number): DraftEvent {
  return { ...orderCreated(accession, 'CLINIC-A', tests), idempotencyKey: `lis|order|${accession}|${n}` };
}

describe('chatter notes read as the gateway wrote them', () => {
  /**
   * What the lab saw: on Odoo 17+ the milestone note ran together on one line ("Lab milestones •
   * … received [lgw:…] • … completed …"), because a plain-text body is escaped and its line breaks
   * are HTML whitespace; on Odoo 16 the body is taken as HTML, so a specimen id like `SP<EDTA>`
   * lost `<EDTA>` (an unknown tag the sanitizer drops) and `&lt;` showed as `<`.
   */
  it.each(VERSIONS)('Odoo %i: each milestone on its own line, <, & and quotes shown as sent', async (version) => {
    rig = await makeRig(version);
    const specimen = { ...milestone('specimen.received', 'ACC-CH', 1), data: { accession: 'ACC-CH', specimenId: 'SP<EDTA> & "x"', specimenType: 'serum &lt;1h' } } as DraftEvent;
    const done = milestone('test.completed', 'ACC-CH', 2);
    await rig.commit([orderCreated('ACC-CH', 'CLINIC-A', ['GLU']), specimen, done]);
    await rig.waitDrained();
    const so = saleOrder(rig, 'ACC-CH');
    const notes = rig.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so.id], ['body', 'ilike', 'lgw:']]);
    expect(notes).toHaveLength(1);
    const lines = chatterText(String(notes[0]!['body'])).split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('Lab milestones');
    expect(lines[1]).toMatch(/^• \S+ specimen SP<EDTA> & "x" \(serum &lt;1h\) received \[lgw:[0-9a-f]{12}\]$/);
    expect(lines[2]).toMatch(/^• \S+ test GLU completed on specimen SP2 \[lgw:[0-9a-f]{12}\]$/);
  });

  it.each([16, 19] as const)('Odoo %i: a note whose answer was lost is found by its marker on the retry, not posted twice', async (version) => {
    rig = await makeRig(version);
    await rig.commit([orderCreated('ACC-CH2', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    // Odoo posts the note, the connection drops before the answer: the retry must look it up.
    rig.emu.faults.next(1, 'sale.order', 'message_post').resetAfterCommit();
    const specimen = { ...milestone('specimen.received', 'ACC-CH2', 1), data: { accession: 'ACC-CH2', specimenId: 'SP<EDTA>&B' } } as DraftEvent;
    const [id] = await rig.commit([specimen]);
    await waitFor(async () => (await stateOf(rig!, id!)) === 'delivered');
    expect(rig.emu.faults.log.map((e) => e.action)).toEqual(['reset-after-commit']);
    const so = saleOrder(rig, 'ACC-CH2');
    const notes = rig.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so.id], ['body', 'ilike', 'lgw:']]);
    expect(notes).toHaveLength(1);
    expect(chatterText(String(notes[0]!['body']))).toContain('specimen SP<EDTA>&B received');
  });
});

describe('a site with "Lock Confirmed Sales"', () => {
  /**
   * What the lab saw: Odoo refused the cancellation of a test on a confirmed order that the Sales
   * setting "Lock Confirmed Sales" had locked, and the dead letter said only "It is forbidden to
   * modify the following fields in a locked order: Quantity" — nothing about the setting or what to
   * do. The gateway's other billing steps work on a locked order and must keep working.
   */
  it.each([16, 17, 19] as const)('Odoo %i: add-on tests, results and invoices go through; a cancellation is a dead letter naming the setting', async (version) => {
    rig = await makeRig(version, { emu: await startEmulator(version, { settings: { lockConfirmedSales: true } }) });
    await rig.commit([orderCreated('ACC-LK', 'CLINIC-A', ['GLU', 'CRP'])]);
    await rig.waitDrained();
    const soId = saleOrder(rig, 'ACC-LK').id;
    rig.emu.call('sale.order', 'action_confirm', [[soId]]);
    const confirmed = saleOrder(rig, 'ACC-LK');
    if (version >= 17) expect(confirmed).toMatchObject({ state: 'sale', locked: true });
    else expect(confirmed['state']).toBe('done');

    const [addOnId, resultId] = await rig.commit([addOn('ACC-LK', ['GLU', 'CRP', 'TSH'], 2), resultValidated('ACC-LK', 'GLU')]);
    await waitFor(async () => (await stateOf(rig!, resultId!)) === 'delivered');
    expect(await stateOf(rig, addOnId!)).toBe('delivered');
    expect(lineOf(rig, soId, 'TSH')['product_uom_qty']).toBe(1);
    expect(lineOf(rig, soId, 'GLU')['qty_delivered']).toBe(1);

    const [invoiceId] = await rig.commit([invoiceEligible('ACC-LK', ['GLU'])]);
    await waitFor(async () => (await stateOf(rig!, invoiceId!)) === 'delivered');
    const invoiced = rig.emu.records('account.move.line', [['sale_line_ids', 'in', [lineOf(rig, soId, 'GLU').id]]]);
    expect(invoiced).toHaveLength(1);

    const [cancelId] = await rig.commit([orderCancelled('ACC-LK', ['CRP'])]);
    await waitFor(async () => (await stateOf(rig!, cancelId!)) === 'dead');
    const dead = (await rig.store.getEvent(cancelId!))!;
    expect(dead.attempts).toBe(1);
    expect(dead.deadReason).toContain('Lock Confirmed Sales');
    expect(dead.deadReason).toContain('CRP');
    expect(dead.deadReason).toContain(String(confirmed['name']));
    expect(dead.deadReason).toMatch(/unlock/i);
    expect(lineOf(rig, soId, 'CRP')['product_uom_qty']).toBe(1);
  });

  it.each([16, 17, 19] as const)('Odoo %i: a test ordered again on an order locked after its cancellation is a dead letter naming the setting', async (version) => {
    rig = await makeRig(version);
    await rig.commit([orderCreated('ACC-LK2', 'CLINIC-A', ['GLU', 'CRP'])]);
    await rig.waitDrained();
    const soId = saleOrder(rig, 'ACC-LK2').id;
    rig.emu.call('sale.order', 'action_confirm', [[soId]]);
    await rig.commit([orderCancelled('ACC-LK2', ['CRP'])]);
    await rig.waitDrained();
    expect(lineOf(rig, soId, 'CRP')['product_uom_qty']).toBe(0);
    // The site turns the setting on; the order is locked ("Lock" button, 16: "Lock").
    rig.emu.call('sale.order', version >= 17 ? 'action_lock' : 'action_done', [[soId]]);
    const [againId] = await rig.commit([addOn('ACC-LK2', ['GLU', 'CRP'], 3)]);
    await waitFor(async () => (await stateOf(rig!, againId!)) === 'dead');
    const dead = (await rig.store.getEvent(againId!))!;
    expect(dead.attempts).toBe(1);
    expect(dead.deadReason).toContain('Lock Confirmed Sales');
    expect(dead.deadReason).toContain('CRP');
    expect(lineOf(rig, soId, 'CRP')['product_uom_qty']).toBe(0);
  });
});
