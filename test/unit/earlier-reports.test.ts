/**
 * A final result whose key an earlier release gave to a preliminary, partial or corrected report
 * (events/earlier-reports.ts). The release before versioned HL7 analyzers' result keys stored a
 * preliminary under the key a final now has, so the final arriving after the upgrade was skipped
 * as a resend and Odoo kept the preliminary value (the whole path, old release to new, is in
 * test/e2e/upgrade-day-audit.test.ts). Here, at the store: such a final is keyed apart, a resend of
 * it gets the same key, and a final without such a report keeps its own.
 */
import { describe, expect, it } from 'vitest';
import { keyFinalsApartFromEarlierReports } from '../../gateway/src/events/earlier-reports.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const temp = useTempStore('lab-gw-earlier-reports-');

function result(key: string, status: string, value: string): DraftEvent {
  return {
    type: 'test.completed',
    occurredAt: '2026-12-06T10:00:00.000Z',
    receivedAt: '2026-12-06T10:00:00.000Z',
    idempotencyKey: key,
    correlationId: 'ACC-1',
    partitionKey: 'order:ACC-1',
    source: { kind: 'hl7', endpoint: 'bs-1', analyzer: 'bs-1' },
    data: { specimenId: 'ACC-1', accession: 'ACC-1', testCode: 'ALT', analyzerTestCode: '1', runType: 'patient', value, resultStatus: status },
  } as DraftEvent;
}

describe('a final over a report an earlier release keyed like it', () => {
  it('is keyed apart and stored; its resend gets the same key; other finals keep theirs', async () => {
    const store = await temp.open();
    const key = 'hl7-analyzer|bs-1|result|ACC-1|1|20261206095900';
    // What the earlier release stored: the preliminary under the key without a version part.
    await store.commit(inboundMessage('P-1'), [result(key, 'P', '34')]);

    const final = await keyFinalsApartFromEarlierReports({ events: [result(key, 'F', '35')] }, store);
    expect(final.events[0]!.idempotencyKey).not.toBe(key);
    const stored = await store.commit(inboundMessage('F-1'), final.events);
    expect(stored.skippedEvents).toBe(0);
    expect(stored.eventIds).toHaveLength(1);

    const resend = await keyFinalsApartFromEarlierReports({ events: [result(key, 'F', '35')] }, store);
    expect(resend.events[0]!.idempotencyKey).toBe(final.events[0]!.idempotencyKey);
    expect((await store.commit(inboundMessage('F-2'), resend.events)).skippedEvents).toBe(1);

    // A final whose key holds a final (a plain resend) or nothing keeps its key; so does a preliminary.
    const other = 'hl7-analyzer|bs-1|result|ACC-2|1|20261206095900';
    await store.commit(inboundMessage('F-3'), [result(other, 'F', '12')]);
    expect((await keyFinalsApartFromEarlierReports({ events: [result(other, 'F', '12')] }, store)).events[0]!.idempotencyKey).toBe(other);
    const fresh = 'hl7-analyzer|bs-1|result|ACC-3|1|20261206095900';
    expect((await keyFinalsApartFromEarlierReports({ events: [result(fresh, 'F', '1')] }, store)).events[0]!.idempotencyKey).toBe(fresh);
    expect((await keyFinalsApartFromEarlierReports({ events: [result(key, 'P', '34')] }, store)).events[0]!.idempotencyKey).toBe(key);
  });
});
