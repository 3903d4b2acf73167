import type { GatewayStore } from '../store/types.ts';
import { idempotencyKey, resultVersion } from './keys.ts';
import type { DraftEvent } from './types.ts';

/** Report statuses keyed apart from their final (`resultVersion`). */
const EARLIER_REPORTS = new Set(['P', 'S', 'C']);

/**
 * A final result whose key an earlier release gave to a preliminary, partial or corrected report
 * of the same run. Releases before result keys had a version part for HL7 analyzers (and, for
 * the Beckman DxH, before its status was read from R.10) stored such a report under the key a
 * final now has: the final, arriving after the upgrade, was skipped as a resend of it, and Odoo
 * kept the preliminary value for good (test/e2e/upgrade-day-audit.test.ts). Before the commit
 * (analyzer endpoints already read the store there, for the tube's accession), a final whose key
 * holds a stored P/S/C report is keyed apart, with `F`: a fact of its own, with its own chatter
 * note. A resend of that final finds the same report and gets the same key. Finals without such a
 * report, and every other event, keep their keys.
 */
export async function keyFinalsApartFromEarlierReports<R extends { events: DraftEvent[] }>(result: R, store: Pick<GatewayStore, 'getEventByKey'>): Promise<R> {
  let events: DraftEvent[] | undefined;
  for (let i = 0; i < result.events.length; i++) {
    const e = result.events[i] as DraftEvent;
    if (e.type !== 'test.completed') continue;
    const status = (e.data.resultStatus ?? '').trim();
    if (resultVersion(status, e.data.value ?? '', e.data.units ?? '', e.data.abnormalFlags ?? '') !== undefined) continue;
    const stored = await store.getEventByKey(e.idempotencyKey);
    if (!stored || stored.event.type !== 'test.completed') continue;
    if (!EARLIER_REPORTS.has((stored.event.data.resultStatus ?? '').trim())) continue;
    events ??= [...result.events];
    events[i] = { ...e, idempotencyKey: idempotencyKey(e.idempotencyKey, 'F') };
  }
  return events ? { ...result, events } : result;
}
