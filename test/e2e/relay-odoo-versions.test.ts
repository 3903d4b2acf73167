import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumableUsed, invoiceEligible, milestone, orderCancelled, orderCreated, resultValidated, thresholdBreached, waitFor } from '../fixtures/relay/helpers.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';

/**
 * Events in (committed through the real EventStore) → the expected Odoo records out, against the
 * emulator of each supported Odoo version (JSON-RPC on 16–18, JSON-2 on 19).
 */
describe.each([16, 17, 18, 19] as const)('relay against Odoo %i', (version) => {
  let rig: Rig;
  const lotName = (id: unknown): string => String(rig.emu.records('stock.lot', [['id', '=', id]])[0]?.['name']);
  const productId = (code: string): number => rig.emu.records('product.product', [['default_code', '=', code]])[0]!.id as number;

  beforeAll(async () => {
    rig = await makeRig(version);
    await rig.commit([orderCreated('A1', 'CLINIC-A', ['GLU', 'CRP']), orderCreated('A2', 'CLINIC-B', ['TSH', 'K'])]);
    await rig.commit([
      milestone('specimen.received', 'A1', 1),
      milestone('test.in_progress', 'A1', 2),
      milestone('test.completed', 'A1', 3),
      resultValidated('A1', 'GLU'),
      orderCancelled('A2', ['K']),
      invoiceEligible('A1', ['GLU']),
    ]);
    await rig.commit([
      consumableUsed('xn-1', 'RGT-GLU', 3, 1),
      consumableUsed('xn-1', 'RGT-CRP', 1, 2),
      consumableUsed('xn-1', 'TIP-200', 2, 3),
      consumableUsed('xn-1', 'RGT-HBA1C', 1, 4, 'H24B220'),
      thresholdBreached('RGT-TSH', 6),
    ]);
    await rig.waitDrained();
  });

  afterAll(async () => {
    await rig?.close();
  });

  it(`speaks ${version >= 19 ? 'JSON-2' : 'JSON-RPC'} and delivers every event`, () => {
    expect(rig.client.protocol).toBe(version >= 19 ? 'json-2' : 'json-rpc');
    expect(rig.emu.calls.some((c) => c.transport === (version >= 19 ? 'json2' : 'jsonrpc') && c.model === 'sale.order')).toBe(true);
    expect(rig.store.stats()).toMatchObject({ delivered: 13, deadLettered: 0, pending: 0, retrying: 0 });
  });

  it('order.created → one draft sale.order per accession with an external id, lines by default_code', () => {
    const [a1] = rig.emu.records('sale.order', [['client_order_ref', '=', 'A1']]);
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'A1']])).toBe(1);
    expect(a1?.['state']).toBe('draft');
    expect(a1?.['partner_id']).toBe(rig.emu.records('res.partner', [['ref', '=', 'CLINIC-A']])[0]!.id);
    const lines = rig.emu.records('sale.order.line', [['order_id', '=', a1!.id]]);
    expect(lines.map((l) => l['product_id']).sort()).toEqual([productId('GLU'), productId('CRP')].sort());
    expect(rig.emu.externalIds().filter((x) => x.xmlid.startsWith('lab_gateway.so_A1_') && x.model === 'sale.order' && x.resId === a1!.id)).toHaveLength(1);
  });

  it('order.cancelled removes the cancelled test line from the draft order', () => {
    const [a2] = rig.emu.records('sale.order', [['client_order_ref', '=', 'A2']]);
    const lines = rig.emu.records('sale.order.line', [['order_id', '=', a2!.id]]);
    expect(lines.map((l) => l['product_id'])).toEqual([productId('TSH')]);
  });

  it('result.validated marks the test line delivered, not the others', () => {
    const [a1] = rig.emu.records('sale.order', [['client_order_ref', '=', 'A1']]);
    const lines = rig.emu.records('sale.order.line', [['order_id', '=', a1!.id]]);
    expect(lines.find((l) => l['product_id'] === productId('GLU'))?.['qty_delivered']).toBe(1);
    expect(lines.find((l) => l['product_id'] === productId('CRP'))?.['qty_delivered']).toBe(0);
  });

  it('milestones become ONE chatter note on the order', () => {
    const [a1] = rig.emu.records('sale.order', [['client_order_ref', '=', 'A1']]);
    const notes = rig.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', a1!.id], ['body', 'ilike', 'lgw:']]);
    expect(notes).toHaveLength(1);
    expect(String(notes[0]!['body'])).toMatch(/specimen SP1 received[\s\S]*GLU in progress[\s\S]*GLU completed/);
  });

  it('invoice.eligible → one DRAFT customer invoice (never posted without autoConfirm)', () => {
    const invoices = rig.emu.records('account.move', [['move_type', '=', 'out_invoice'], ['ref', '=', 'lab-gateway A1']]);
    expect(invoices).toHaveLength(1);
    expect(invoices[0]!['state']).toBe('draft');
  });

  it('consumable.used → one validated picking, FEFO lots skipping expired ones, the analyzer lot when given', () => {
    const pickings = rig.emu.records('stock.picking', [['origin', 'ilike', 'lab-gateway:cons:']]);
    expect(pickings).toHaveLength(1);
    expect(pickings[0]!['state']).toBe('done');
    const lines = rig.emu.records('stock.move.line', [['picking_id', '=', pickings[0]!.id]]);
    const lotOf = (code: string): string => lotName(lines.find((l) => l['product_id'] === productId(code))?.['lot_id']);
    expect(lotOf('RGT-GLU')).toBe('G24A101'); // G23K044 is expired
    expect(lotOf('RGT-CRP')).toBe('C24C310'); // C23J005 is expired
    expect(lotOf('RGT-HBA1C')).toBe('H24B220');
    const lab = rig.emu.records('stock.location', [['name', '=', 'Lab']])[0]!.id;
    const quant = rig.emu.records('stock.quant', [['product_id', '=', productId('TIP-200')], ['location_id', '=', lab]]);
    expect(quant.reduce((s, q) => s + Number(q['quantity']), 0)).toBe(38);
  });

  it('stock.threshold_breached → one draft RFQ to the product vendor, never confirmed', () => {
    const lines = rig.emu.records('purchase.order.line', [['product_id', '=', productId('RGT-TSH')]]);
    expect(lines).toHaveLength(1);
    const [po] = rig.emu.records('purchase.order', [['id', '=', lines[0]!['order_id']]]);
    expect(po?.['state']).toBe('draft');
    expect(po?.['partner_id']).toBe(rig.emu.records('res.partner', [['ref', '=', 'VEND-DIAG']])[0]!.id);
  });

  it('a missing mapping dead-letters with a readable reason; replay after the fix delivers', async () => {
    const [id] = await rig.commit([orderCreated('A9', 'CLINIC-A', ['FERR'])]);
    await waitFor(async () => (await rig.store.getEvent(id!))?.state === 'dead');
    expect((await rig.store.getEvent(id!))?.deadReason).toContain('test code FERR has no Odoo product with default_code FERR');
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'A9']])).toBe(0);
    // The site creates the product in Odoo, the operator replays.
    rig.emu.call('product.product', 'create', [{ name: 'Ferritin', default_code: 'FERR', type: 'service' }]);
    await rig.store.replay(id!, 'tester', 'product created');
    rig.relay.notify();
    await waitFor(async () => (await rig.store.getEvent(id!))?.state === 'delivered');
    const [so] = rig.emu.records('sale.order', [['client_order_ref', '=', 'A9']]);
    expect(rig.emu.records('sale.order.line', [['order_id', '=', so!.id]]).map((l) => l['product_id'])).toEqual([productId('FERR')]);
  });

  it('an unknown ordering client dead-letters with the partner ref named', async () => {
    const [id] = await rig.commit([orderCreated('A10', 'CLINIC-Z', ['GLU'])]);
    await waitFor(async () => (await rig.store.getEvent(id!))?.state === 'dead');
    expect((await rig.store.getEvent(id!))?.deadReason).toContain('ordering client CLINIC-Z has no Odoo partner with ref CLINIC-Z');
  });
});
