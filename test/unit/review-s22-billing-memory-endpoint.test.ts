/**
 * Billing's memory keeps the link each remembered event came from, so that the walk still tells
 * another LIS's order under the same number (events/invoice-eligibility.ts billingState, two LIS
 * links numbering alike) once retention pruned it: without it, the refused outreach order came
 * back from the memory as the hospital's, its test open again, and the hospital's next add-on
 * was never eligible. Real LevelDB in a temp dir, real HL7 through the LIS normalizer on two links,
 * the gateway's billing hold, `prune(now)` driven by hand with the clock moved forward.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readMemory, withMemory } from '../../gateway/src/events/billing-memory.ts';
import { billingRetention, billingState, invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { RetentionHold } from '../../gateway/src/store/types.ts';
import { orm, oru } from '../fixtures/relay/billing-rig.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY_MS = 86_400_000;
const tmp = useTempStore('lgw-s22-memory-endpoint-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

async function receiveOn(store: EventStore, endpoint: string, text: string): Promise<void> {
  const raw = Buffer.from(text, 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error('unreadable HL7');
  const drafts = normalizeLis({ message: r.message, endpoint, receivedAt: new Date().toISOString(), notes: [] });
  const { ack: _ack, ...message } = inboundMessage(r.message.header.controlId, { endpoint, dedupKey: `${endpoint}|LIS^LAB|${r.message.header.controlId}` });
  await store.commit(message, drafts);
}

async function deliverAll(store: EventStore): Promise<void> {
  for (;;) {
    const leases = await store.lease({ limit: 100 });
    if (leases.length === 0) break;
    for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
  }
}

describe('billing memory: the link of each remembered event', () => {
  it('another link\'s order for another client stays out of the walk after retention pruned it', async () => {
    const T0 = Date.parse('2027-01-10T10:00:00Z');
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T0 });
    const hold: RetentionHold = { ...billingRetention, keep: async () => false };
    const store = await tmp.open({ retentionHold: hold, deriver: invoiceEligibility });
    await receiveOn(store, 'lis', orm('M-1', ['GLU']));
    await receiveOn(store, 'outreach', orm('M-1', ['TSH']).replace(/CLINIC-A/g, 'CLINIC-B'));
    await receiveOn(store, 'lis', oru('M-1', 'GLU'));
    await deliverAll(store);
    for (let pass = 0; pass < 100 && (await store.prune(T0 + 31 * DAY_MS)) > 0; pass++);
    expect(await store.eventsByCorrelation('M-1')).toEqual([]);

    const memory = await readMemory(store.getDoc.bind(store), 'M-1');
    expect(memory?.events.map((e) => [e.type, e.endpoint])).toEqual([
      ['order.created', 'lis'],
      ['order.created', 'outreach'],
      ['result.validated', 'lis'],
      ['invoice.eligible', 'lis'],
    ]);
    const state = billingState(withMemory([], memory, 'M-1').map((s) => s.event));
    expect([...state.open.keys()], 'the outreach\'s TSH is not the hospital\'s').toEqual(['GLU']);
    expect([...state.billed]).toEqual(['GLU']);
  });
});
