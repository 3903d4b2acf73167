import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import type { DraftEvent, OrderCreatedData } from '../../gateway/src/events/types.ts';
import type { InboundMessage } from '../../gateway/src/store/types.ts';

let dir: string;
let store: EventStore;
let n = 0;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-invoice-'));
  store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, deriver: invoiceEligibility });
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const source = { kind: 'hl7' as const, endpoint: 'lis' };
const at = '2026-11-25T10:00:00.000Z';
function msg(): InboundMessage {
  n++;
  return { kind: 'hl7', endpoint: 'lis', receivedAt: at, controlId: `M${n}`, encoding: 'ascii', raw: Buffer.from(`MSH|${n}`), status: 'accepted', dedupKey: `lis|M${n}` };
}
const order = (acc: string, codes: string[]): DraftEvent => ({
  type: 'order.created', occurredAt: at, receivedAt: at, idempotencyKey: `oc|${acc}`, correlationId: acc, partitionKey: `order:${acc}`, source,
  data: { accession: acc, orderingClientRef: 'CLINIC-A', tests: codes.map((code) => ({ code })) },
});
const validated = (acc: string, code: string): DraftEvent => ({
  type: 'result.validated', occurredAt: at, receivedAt: at, idempotencyKey: `rv|${acc}|${code}`, correlationId: acc, partitionKey: `order:${acc}`, source,
  data: { accession: acc, testCode: code },
});
const cancelled = (acc: string, codes: string[]): DraftEvent => ({
  type: 'order.cancelled', occurredAt: at, receivedAt: at, idempotencyKey: `cx|${acc}|${codes.join(',')}`, correlationId: acc, partitionKey: `order:${acc}`, source,
  data: { accession: acc, tests: codes.map((code) => ({ code })) },
});
const eligible = async (acc: string) => store.eventsByCorrelation(acc, ['invoice.eligible']);

describe('invoice.eligible derivation', () => {
  it('becomes eligible with the commit that validates the last ordered test, once', async () => {
    await store.commit(msg(), [order('A1', ['GLU', 'CREA'])]);
    await store.commit(msg(), [validated('A1', 'GLU')]);
    expect(await eligible('A1')).toHaveLength(0);
    const last = await store.commit(msg(), [validated('A1', 'CREA')]);
    const found = await eligible('A1');
    expect(found).toHaveLength(1);
    expect(last.eventIds).toContain(found[0]!.event.id);
    expect(found[0]!.event.data).toMatchObject({ accession: 'A1', orderingClientRef: 'CLINIC-A', tests: [{ code: 'GLU' }, { code: 'CREA' }] });
    await store.commit(msg(), [validated('A1', 'CREA'), validated('A1', 'GLU')]);
    expect(await eligible('A1')).toHaveLength(1);
  });

  it('results validated in parallel messages still make the order eligible exactly once', async () => {
    await store.commit(msg(), [order('A2', ['GLU', 'CREA', 'ALT'])]);
    await Promise.all([store.commit(msg(), [validated('A2', 'GLU')]), store.commit(msg(), [validated('A2', 'CREA')]), store.commit(msg(), [validated('A2', 'ALT')])]);
    expect(await eligible('A2')).toHaveLength(1);
  });

  it('an order created after its results were validated is eligible at once', async () => {
    await store.commit(msg(), [validated('A3', 'GLU')]);
    await store.commit(msg(), [order('A3', ['GLU'])]);
    expect(await eligible('A3')).toHaveLength(1);
  });

  it('cancelled tests are not required; a wholly cancelled order is not eligible', async () => {
    await store.commit(msg(), [order('A4', ['GLU', 'TSH'])]);
    await store.commit(msg(), [cancelled('A4', ['TSH'])]);
    await store.commit(msg(), [validated('A4', 'GLU')]);
    expect((await eligible('A4'))[0]?.event.data).toMatchObject({ tests: [{ code: 'GLU' }] });
    await store.commit(msg(), [order('A5', ['GLU'])]);
    await store.commit(msg(), [cancelled('A5', [])]);
    await store.commit(msg(), [validated('A5', 'GLU')]);
    expect(await eligible('A5')).toHaveLength(0);
  });

  // Regression: a whole-order cancellation was final here, while the relay put the re-ordered
  // test back on the sale order: delivered and "to invoice" in Odoo, never billed.
  it('an order cancelled as a whole and ordered again is eligible once its tests are validated again', async () => {
    await store.commit(msg(), [order('A7', ['GLU', 'TSH'])]);
    await store.commit(msg(), [validated('A7', 'GLU')]);
    await store.commit(msg(), [cancelled('A7', [])]);
    await store.commit(msg(), [{ ...order('A7', ['GLU']), idempotencyKey: 'oc|A7|again' }]);
    expect(await eligible('A7'), 'the result before the cancellation went with it').toHaveLength(0);
    await store.commit(msg(), [{ ...validated('A7', 'GLU'), idempotencyKey: 'rv|A7|GLU|again' }]);
    const found = await eligible('A7');
    expect(found).toHaveLength(1);
    expect(found[0]!.event.data).toMatchObject({ accession: 'A7', tests: [{ code: 'GLU' }] });
  });

  it('results without an order never make anything eligible', async () => {
    await store.commit(msg(), [validated('A6', 'GLU')]);
    expect(await eligible('A6')).toHaveLength(0);
  });

  // Regression: a cancellation stored before its order (a LIS replaying its queue out of order)
  // left the test open: the late order made it billable, and without a result of the cancelled
  // test the order's done tests were never eligible.
  it('a test cancelled before its order arrived is not required and not billed', async () => {
    await store.commit(msg(), [cancelled('A8', ['TSH'])]);
    await store.commit(msg(), [order('A8', ['GLU', 'TSH'])]);
    await store.commit(msg(), [validated('A8', 'GLU')]);
    expect((await eligible('A8')).map((e) => e.event.data)).toMatchObject([{ tests: [{ code: 'GLU' }] }]);
    await store.commit(msg(), [validated('A8', 'TSH')]);
    expect(await eligible('A8'), 'the cancelled test never becomes billable').toHaveLength(1);
    // Ordered again in a later message: billed once validated again.
    await store.commit(msg(), [{ ...order('A8', ['TSH']), idempotencyKey: 'oc|A8|again' }]);
    await store.commit(msg(), [{ ...validated('A8', 'TSH'), idempotencyKey: 'rv|A8|TSH|again' }]);
    expect((await eligible('A8')).map((e) => e.event.data)).toMatchObject([{ tests: [{ code: 'GLU' }] }, { tests: [{ code: 'GLU' }, { code: 'TSH' }] }]);
  });

  it('an order cancelled as a whole before it arrived is never eligible', async () => {
    await store.commit(msg(), [cancelled('A9', [])]);
    await store.commit(msg(), [order('A9', ['GLU'])]);
    await store.commit(msg(), [validated('A9', 'GLU')]);
    expect(await eligible('A9')).toHaveLength(0);
  });

  it('a cancellation and an order of the same test in one message: the test is ordered again', async () => {
    await store.commit(msg(), [cancelled('A10', ['TSH']), order('A10', ['TSH'])]);
    await store.commit(msg(), [validated('A10', 'TSH')]);
    expect(await eligible('A10')).toHaveLength(1);
  });

  it('an order placed after a cancellation that came first is a new order, not the one cancelled', async () => {
    // The LIS cancelled TSH of an order placed before the gateway was installed, then ordered it
    // again: its ORC-9 (occurredAt and orderedAt, as the LIS normalizer gives it) is after the cancellation.
    await store.commit(msg(), [cancelled('A11', ['TSH'])]);
    const again = order('A11', ['TSH']);
    const placed = '2026-11-25T10:20:00.000Z';
    await store.commit(msg(), [{ ...again, occurredAt: placed, data: { ...(again.data as OrderCreatedData), orderedAt: placed } } as DraftEvent]);
    await store.commit(msg(), [validated('A11', 'TSH')]);
    expect(await eligible('A11')).toHaveLength(1);
  });

  it('an order resent after a cancellation the gateway saw, placed (ORC-9) before it, leaves the test cancelled; one placed at or after it orders it again', async () => {
    // The LIS normalizer's order event: ORC-9 as its occurredAt and orderedAt; a new key per message (a new MSH-10).
    const placedAt = (acc: string, codes: string[], placed: string, key: string): DraftEvent => {
      const o = order(acc, codes);
      return { ...o, idempotencyKey: key, occurredAt: placed, data: { ...(o.data as OrderCreatedData), orderedAt: placed } } as DraftEvent;
    };
    await store.commit(msg(), [placedAt('A12', ['GLU', 'TSH'], '2026-11-25T09:20:00.000Z', 'oc|A12|1')]);
    await store.commit(msg(), [validated('A12', 'GLU')]);
    await store.commit(msg(), [cancelled('A12', ['TSH'])]);
    expect((await eligible('A12')).map((e) => e.event.data)).toMatchObject([{ tests: [{ code: 'GLU' }] }]);
    // The replay of the 09:20 order, and TSH's result: nothing more to bill.
    await store.commit(msg(), [placedAt('A12', ['GLU', 'TSH'], '2026-11-25T09:20:00.000Z', 'oc|A12|2')]);
    await store.commit(msg(), [{ ...validated('A12', 'TSH'), idempotencyKey: 'rv|A12|TSH|1' }]);
    expect(await eligible('A12')).toHaveLength(1);

    // The same, then TSH ordered again at the cancellation's own time (10:00): a new order, eligible again once validated.
    await store.commit(msg(), [placedAt('A13', ['GLU', 'TSH'], '2026-11-25T09:20:00.000Z', 'oc|A13|1')]);
    await store.commit(msg(), [validated('A13', 'GLU')]);
    await store.commit(msg(), [cancelled('A13', ['TSH'])]);
    await store.commit(msg(), [placedAt('A13', ['GLU', 'TSH'], '2026-11-25T09:20:00.000Z', 'oc|A13|2')]);
    await store.commit(msg(), [placedAt('A13', ['TSH'], at, 'oc|A13|3')]);
    expect(await eligible('A13')).toHaveLength(1);
    await store.commit(msg(), [validated('A13', 'TSH')]);
    expect((await eligible('A13')).map((e) => e.event.data)).toMatchObject([{ tests: [{ code: 'GLU' }] }, { tests: [{ code: 'GLU' }, { code: 'TSH' }] }]);
  });
  it('a cancellation timed before the order that opened the test again leaves it open; a result validated while it was cancelled does not bill the re-order', async () => {
    const timed = (d: DraftEvent, time: string, key: string): DraftEvent =>
      ({ ...d, idempotencyKey: key, occurredAt: time, ...(d.type === 'order.created' ? { data: { ...(d.data as OrderCreatedData), orderedAt: time } } : {}) }) as DraftEvent;
    // GLU and TSH at 09:20, TSH cancelled at 10:00, ordered again at 10:30, the 10:00 cancellation replayed.
    await store.commit(msg(), [timed(order('A14', ['GLU', 'TSH']), '2026-11-25T09:20:00.000Z', 'oc|A14|1')]);
    await store.commit(msg(), [validated('A14', 'GLU')]);
    await store.commit(msg(), [timed(cancelled('A14', ['TSH']), '2026-11-25T10:00:00.000Z', 'cx|A14|1')]);
    await store.commit(msg(), [timed(order('A14', ['TSH']), '2026-11-25T10:30:00.000Z', 'oc|A14|2')]);
    await store.commit(msg(), [timed(cancelled('A14', ['TSH']), '2026-11-25T10:00:00.000Z', 'cx|A14|2')]);
    await store.commit(msg(), [validated('A14', 'TSH')]);
    expect((await eligible('A14')).map((e) => e.event.data)).toMatchObject([{ tests: [{ code: 'GLU' }] }, { tests: [{ code: 'GLU' }, { code: 'TSH' }] }]);

    // TSH's result validated at 10:10, while cancelled: the 10:30 re-order waits for its own result.
    await store.commit(msg(), [timed(order('A15', ['GLU', 'TSH']), '2026-11-25T09:20:00.000Z', 'oc|A15|1')]);
    await store.commit(msg(), [validated('A15', 'GLU')]);
    await store.commit(msg(), [timed(cancelled('A15', ['TSH']), '2026-11-25T10:00:00.000Z', 'cx|A15|1')]);
    await store.commit(msg(), [timed(validated('A15', 'TSH'), '2026-11-25T10:10:00.000Z', 'rv|A15|TSH|1')]);
    await store.commit(msg(), [timed(order('A15', ['TSH']), '2026-11-25T10:30:00.000Z', 'oc|A15|2')]);
    expect(await eligible('A15')).toHaveLength(1);
    await store.commit(msg(), [timed(validated('A15', 'TSH'), '2026-11-25T11:00:00.000Z', 'rv|A15|TSH|2')]);
    expect(await eligible('A15')).toHaveLength(2);
  });
});
