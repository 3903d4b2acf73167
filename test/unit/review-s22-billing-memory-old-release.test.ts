/**
 * Billing's memory written by the release before 855bce3: its remembered events carry no link.
 *
 * 855bce3 leaves out of billing's walk another LIS link's order for another client under the
 * same accession, telling the accession's owner by its first order's client AND link. An order
 * remembered by the release before has no link: the walk took no owner from it, and the first
 * order stored after the upgrade became the owner, whoever it was. Two LIS links numbering alike
 * (no accessionPrefix): the hospital's order M-9 (GLU) billed and pruned into the memory last
 * month; after the upgrade the outreach sends its own M-9 for another clinic (refused by the order
 * rule: the sale order is the hospital's), then the hospital adds CRP. The walk took the outreach
 * for the owner and the hospital's own link for the other LIS: CRP, ordered, validated and on the
 * sale order, was never eligible, never invoiced, without a dead letter. Real LevelDB in a temp
 * dir, real HL7 through the LIS normalizer on two links, the invoice derivation at commit, the
 * gateway's billing hold and `prune(now)` driven by hand with the clock moved forward.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BILLING_MEMORY, readMemory } from '../../gateway/src/events/billing-memory.ts';
import { billingRetention, invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import type { InvoiceEligibleData } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { RetentionHold } from '../../gateway/src/store/types.ts';
import { orm, oru } from '../fixtures/relay/billing-rig.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY_MS = 86_400_000;
const tmp = useTempStore('lgw-s22-memory-old-release-', { pruneIntervalMs: 0, minFreeBytes: 0 });

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

const outreach = (text: string): string => text.replace(/CLINIC-A/g, 'CLINIC-B');

describe('billing memory of the release before links were remembered', () => {
  it('the hospital\'s add-on is billed after the outreach\'s order under the same number', async () => {
    const T0 = Date.parse('2027-01-10T10:00:00Z');
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T0 });
    const hold: RetentionHold = { ...billingRetention, keep: async () => false };
    const store = await tmp.open({ retentionHold: hold, deriver: invoiceEligibility });
    await receiveOn(store, 'lis', orm('M-9', ['GLU']));
    await receiveOn(store, 'lis', oru('M-9', 'GLU'));
    await deliverAll(store);
    for (let pass = 0; pass < 100 && (await store.prune(T0 + 31 * DAY_MS)) > 0; pass++);
    expect(await store.eventsByCorrelation('M-9')).toEqual([]);
    // The memory as the release before wrote it: the same events, without their link.
    const memory = (await readMemory(store.getDoc.bind(store), 'M-9'))!;
    await store.putDoc(BILLING_MEMORY, 'M-9', { ...memory, events: memory.events.map(({ endpoint: _link, ...r }) => r) });

    vi.setSystemTime(T0 + 32 * DAY_MS);
    await receiveOn(store, 'outreach', outreach(orm('M-9', ['TSH'])));
    await receiveOn(store, 'lis', orm('M-9', ['CRP']));
    await receiveOn(store, 'lis', oru('M-9', 'CRP'));

    const eligible = (await store.eventsByCorrelation('M-9', ['invoice.eligible'])).map((e) => (e.event.data as InvoiceEligibleData).tests.map((t) => t.code));
    expect(eligible, 'the hospital\'s CRP eligible, the outreach\'s TSH not holding it').toEqual([['GLU', 'CRP']]);
  });
});
