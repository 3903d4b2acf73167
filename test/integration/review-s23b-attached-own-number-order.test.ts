/**
 * A LIS result that came before its order under the order's other number (its filler number
 * LF-9301) is attached to that order (70301) when it comes (hl7/order-numbers.ts): its copy on
 * 70301 bills the test. The stored result keeps its body, under LF-9301. Then the LIS sends an
 * order message naming the order by its filler number only (a filler's change, ORC-1 XX with ORC-2
 * empty, as a LIS whose results carry only the filler number writes it): the gateway takes it for
 * an order LF-9301. As finance sees it: a real gateway (MLLP listener, LevelDB in a temp dir, the
 * relay) posting to the Odoo emulator over HTTP, the LIS a real MLLP client.
 */
import { describe, expect, it } from 'vitest';
import { fillerOrder, fillerResult, useLisLab } from '../fixtures/lis-rig.ts';
import { billed, saleLines } from '../fixtures/relay/billing-rig.ts';
import { startLabDay } from '../fixtures/relay/lab-day.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';

const DAY_MS = 86_400_000;

const { closers } = useLisLab();

const order = (id: string, placer: string, filler: string, control = 'NW'): string => fillerOrder(id, placer, filler, { control });
const result = (id: string, filler: string): string => fillerResult(id, '', filler);

describe('an order under the number a result attached elsewhere came under', () => {
  /**
   * What finance saw: GLU invoiced on 70301 (the copy) and again on LF-9301: billing's walk of
   * LF-9301 found the order and the stored result (attached to 70301) and made LF-9301 eligible,
   * the relay marked its GLU delivered and invoiced it. Before 4a13a8d the result was billed once
   * (on LF-9301 only). Now a result attached to another order counts for nothing under its own
   * number: GLU is billed once, on 70301.
   */
  it.each([16, 17, 19] as const)('Odoo %i: the test is billed once, on the order it was attached to', async (version) => {
    const l = await startLabDay(`review-s23b-attached-own-number-${version}`, closers, {}, { version, relay: { syncModes: { 'invoice.eligible': 'realtime' } } });
    expect(await l.send('lis', order('O-0', '70300', 'LF-9300'))).toContain('MSA|AA|O-0');
    expect(await l.send('lis', result('R-1', 'LF-9301'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', order('O-1', '70301', 'LF-9301'))).toContain('MSA|AA|O-1');
    await l.settled();
    expect(billed(l.emu, '70301')).toEqual(['GLU']);
    expect(await l.send('lis', order('O-2', '', 'LF-9301', 'XX'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(billed(l.emu, '70301')).toEqual(['GLU']);
    expect(billed(l.emu, 'LF-9301'), 'GLU is not invoiced a second time').toEqual([]);
    expect(saleLines(l.emu, 'LF-9301').map((x) => [x.code, x.delivered]), 'nor ready to invoice there').toEqual([['GLU', 0]]);
    const all = await l.all();
    expect(all.filter((e) => e.event.type === 'invoice.eligible').map((e) => e.event.correlationId)).toEqual(['70301']);
    expect(all.filter((e) => e.state === 'dead')).toEqual([]);
  }, 60_000);

  /**
   * The same after retention: 70301 billed in full, its events (the copy among them) pruned after
   * 30 days and remembered by billing (events/billing-memory.ts), while the stored result under
   * LF-9301 (no order of its own: retention holds it) stays. The filler's change naming LF-9301
   * alone came then: the copy was no longer stored, so the stored result counted under LF-9301
   * again and GLU was invoiced a second time.
   */
  it('Odoo 17: after retention pruned the order the result was attached to, still billed once', async () => {
    const l = await startLabDay('review-s23b-attached-own-number-retention', closers, {}, { relay: { syncModes: { 'invoice.eligible': 'realtime' } } });
    expect(await l.send('lis', order('O-0', '70300', 'LF-9300'))).toContain('MSA|AA|O-0');
    expect(await l.send('lis', result('R-1', 'LF-9301'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', order('O-1', '70301', 'LF-9301'))).toContain('MSA|AA|O-1');
    await l.settled();
    expect(billed(l.emu, '70301')).toEqual(['GLU']);
    const store = l.gateway.store as EventStore;
    for (let pass = 0; pass < 100 && (await store.prune(Date.now() + 35 * DAY_MS)) > 0; pass++);
    const left = await l.all();
    expect(left.filter((e) => e.event.correlationId === '70301'), 'billed in full: pruned').toEqual([]);
    expect(left.filter((e) => e.event.correlationId === 'LF-9301').map((e) => e.event.type)).toEqual(['result.validated']);
    expect(await l.send('lis', order('O-2', '', 'LF-9301', 'XX'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(billed(l.emu, '70301')).toEqual(['GLU']);
    expect(billed(l.emu, 'LF-9301'), 'GLU is not invoiced a second time').toEqual([]);
    expect(saleLines(l.emu, 'LF-9301').map((x) => [x.code, x.delivered])).toEqual([['GLU', 0]]);
  }, 60_000);
});
