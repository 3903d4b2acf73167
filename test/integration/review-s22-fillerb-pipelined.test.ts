/**
 * A LIS result pipelined right behind its order on the same MLLP connection, naming the order only
 * by its filler number (hl7/order-numbers.ts): a real gateway (MLLP listener, LevelDB in a temp
 * dir, the relay) posting to the Odoo emulator, the LIS a raw TCP client writing both frames at once.
 */
import { describe, expect, it } from 'vitest';
import { fillerOrder, fillerResult, pipelined, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

const order = (id: string, placer: string, filler: string): string => fillerOrder(id, placer, filler);
const result = (id: string, placer: string, filler: string): string => fillerResult(id, placer, filler);

describe('a result pipelined behind its order, naming it by its filler number', () => {
  /**
   * The order's commit reads the store before it is queued (its derivations), so the result's
   * look-up, issued after it, read the store before the order was in it: the result kept the
   * accession LF-9101, waited for an order of that number that never came, and the GLU line was
   * never delivered nor invoiced.
   */
  it('is billed on the order it follows', async () => {
    const l = await lab('review-s22-fillerb-pipelined');
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [order('O-1', '70101', 'LF-9101'), result('R-1', '', 'LF-9101')]);
    expect(acks).toContain('MSA|AA|O-1');
    expect(acks).toContain('MSA|AA|R-1');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.event.partitionKey])).toEqual([['70101', 'order:70101']]);
    await l.settled();
    expect(saleLines(l.emu, '70101').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 1]]);
    expect(invoices(l.emu, '70101')).toHaveLength(1);
  });

  /** A link already marked (an earlier order carried a filler number): the same. */
  it('is billed on the order it follows on a link that has sent such orders before', async () => {
    const l = await lab('review-s22-fillerb-pipelined-marked');
    expect(await l.send('lis', order('O-0', '70100', 'LF-9100'))).toContain('MSA|AA|O-0');
    await l.settled();
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [order('O-2', '70102', 'LF-9102'), result('R-2', '', 'LF-9102')]);
    expect(acks).toContain('MSA|AA|R-2');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['70102']);
    await l.settled();
    expect(saleLines(l.emu, '70102').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 1]]);
  });
});
