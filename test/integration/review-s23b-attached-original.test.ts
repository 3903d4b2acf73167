/**
 * The stored result of a LIS result that came before its order under the order's other number
 * (its filler number LF-9301), once attached to that order (70301, hl7/order-numbers.ts): its copy
 * on 70301 delivers and bills the test, and the stored result must reach Odoo no more. As finance
 * sees it: a real gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo
 * emulator over HTTP, the LIS a real MLLP client.
 */
import { describe, expect, it } from 'vitest';
import { fillerOrder, fillerResult, useLisLab } from '../fixtures/lis-rig.ts';
import { saleLines } from '../fixtures/relay/billing-rig.ts';
import { startLabDay } from '../fixtures/relay/lab-day.ts';
import { partnerId, productId } from '../fixtures/relay/helpers.ts';

const { closers } = useLisLab();

const order = (id: string, placer: string, filler: string): string => fillerOrder(id, placer, filler);
const result = (id: string, filler: string): string => fillerResult(id, '', filler);

describe('a result attached to the order that came after it', () => {
  /**
   * What finance saw: the result LF-9301 waited (WAITING_FOR_ORDERS: "accession LF-9301 has no
   * Odoo sale order"), and finance entered a sale order by hand with Customer Reference LF-9301.
   * Odoo was unreachable (here: the relay paused) when the LIS's order 70301 carrying LF-9301
   * came: the result's copy on 70301 marked 70301's GLU delivered, and the stored result, retried
   * once Odoo answered, found the hand-entered sale order LF-9301 and marked its GLU delivered
   * too: the one test ready to invoice twice. Now a stored result whose copy is on its order
   * writes nothing, whatever sale order its own number finds.
   */
  it.each([16, 17, 19] as const)('Odoo %i: never marks a sale order of its own number delivered besides its copy', async (version) => {
    const l = await startLabDay(`review-s23b-attached-original-${version}`, closers, {}, { version, relay: { syncModes: { 'invoice.eligible': 'realtime' } } });
    expect(await l.send('lis', order('O-0', '70300', 'LF-9300'))).toContain('MSA|AA|O-0');
    await l.settled();
    await l.gateway.relay!.pause();
    expect(await l.send('lis', result('R-1', 'LF-9301'))).toContain('MSA|AA|R-1');
    // Entered by hand in Odoo (no source document of the gateway's).
    l.emu.call('sale.order', 'create', [
      { partner_id: partnerId(l.emu, 'CLINIC-A'), client_order_ref: 'LF-9301', order_line: [[0, 0, { product_id: productId(l.emu, 'GLU'), product_uom_qty: 1 }]] },
    ]);
    expect(await l.send('lis', order('O-1', '70301', 'LF-9301'))).toContain('MSA|AA|O-1');
    await l.gateway.relay!.resume();
    await l.settled();
    expect(saleLines(l.emu, '70301').map((x) => [x.code, x.delivered])).toEqual([['GLU', 1]]);
    const byHand = l.emu.records('sale.order.line', [['order_id.client_order_ref', '=', 'LF-9301']], { fields: ['qty_delivered'] });
    expect(byHand.map((x) => Number(x['qty_delivered'])), 'the hand-entered order LF-9301 is not marked delivered').toEqual([0]);
    const original = (await l.all()).find((e) => e.event.type === 'result.validated' && e.event.correlationId === 'LF-9301');
    expect(original?.state).toBe('delivered');
    expect(original?.note ?? '').toContain('attached to order 70301');
  }, 60_000);
});
