import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { corpusMessages } from '../fixtures/astm/corpus.ts';

/**
 * The per-run rows of a consumption table (a hematology analyzer's diluent, lyse, diff pack and
 * cleaner: drawn once per sample, whatever parameters it reports) when a run is reported in more
 * than one message: some parameters preliminary first, then the final report; or the final, then
 * one parameter corrected. The real Beckman DxH capture (corpus/astm/beckman_unicel-dxh_result_1),
 * whose results are timed by the order's report time O.23 (no R time), committed to a real
 * LevelDB store, which keeps an event once per idempotency key.
 *
 * What the stock manager saw: one CBC drew 38 mL of diluent, the lyse, a diff pack and the cleaner
 * twice. The per-run rows were keyed on the "earliest" run identity among the results that draw,
 * each identity carrying a hash of its result's value. A preliminary or corrected parameter draws
 * nothing (astm/README.md: "The final counts the measurement once"), so when that parameter held
 * the earliest identity, the message keyed the per-run rows on another parameter, and the final
 * report drew them again under the first one.
 */
const profile = loadProfile('beckman-unicel-dxh');
const [finalReport] = corpusMessages('beckman_unicel-dxh_result_1.astm');
const MCH_FINAL = 'R|7|!!!MCH!785-6|31.4|pg||24.7 to 32.8|||F|';

let dir: string;
let store: EventStore;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dxh-per-run-'));
  store = await EventStore.open({ dataDir: dir });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Normalize and commit one message as the analyzer endpoint does; returns the events the store took. */
async function commit(text: string, controlId: string): Promise<CanonicalEvent[]> {
  const r = normalizeAstmMessage(text, { analyzerId: 'dxh-1', endpoint: 'dxh-1', profile, receivedAt: '2026-01-14T12:00:00.000Z' });
  expect(r.reject).toBeUndefined();
  const out = await store.commit(
    { kind: 'astm', endpoint: 'dxh-1', receivedAt: '2026-01-14T12:00:00.000Z', controlId, messageType: r.messageType, encoding: 'latin1', raw: Buffer.from(text, 'latin1'), status: 'accepted', dedupKey: `dxh-1|${controlId}`, searchTerms: r.searchTerms },
    r.events,
  );
  const stored = await Promise.all(out.eventIds.map((id) => store.getEvent(id)));
  return stored.flatMap((e) => (e ? [e.event] : []));
}

/** The consumable.used events the store holds for a product, over every message committed. */
const drawn = (events: CanonicalEvent[], product: string): number => events.filter((e) => e.type === 'consumable.used' && e.data.productCode === product).length;

describe('DxH per-run reagents over a run reported in two messages', () => {
  it('one parameter preliminary (R.10 P), then the final report: the diluent and diff pack are drawn once', async () => {
    expect(finalReport).toContain(MCH_FINAL);
    const preliminary = finalReport!.replace(MCH_FINAL, MCH_FINAL.replace('|||F|', '|||P|'));
    const all = [...(await commit(preliminary, 'DXH-P')), ...(await commit(finalReport!, 'DXH-F'))];
    // Before: 2 of each — the final report keyed its per-run rows on MCH, the preliminary on another parameter.
    for (const product of ['BEC-DXH-DILUENT', 'BEC-DXH-CELL-LYSE', 'BEC-DXH-DIFF-PACK', 'BEC-DXH-CLEANER']) expect(drawn(all, product), product).toBe(1);
  });

  it('the final report, then one parameter corrected (R.10 C, new value) in a resend of the whole CBC: nothing is drawn again', async () => {
    const corrected = finalReport!.replace(MCH_FINAL, 'R|7|!!!MCH!785-6|31.2|pg||24.7 to 32.8|||C|').replace('|LIS2-A|20211028082841', '|LIS2-A|20211028090000');
    const first = await commit(finalReport!, 'DXH-F');
    const again = await commit(corrected, 'DXH-C');
    expect(drawn(first, 'BEC-DXH-DILUENT')).toBe(1);
    // Before: 1 — the correction keyed the per-run rows on another parameter and drew them a second time.
    expect(again.filter((e) => e.type === 'consumable.used')).toEqual([]);
    // The correction itself is a fact of its own: one new test.completed for MCH.
    expect(again.filter((e) => e.type === 'test.completed').map((e) => (e.type === 'test.completed' ? [e.data.testCode, e.data.resultStatus] : []))).toEqual([['MCH', 'C']]);
  });

  // The run identity is the one it always had; the keys name the draw, not the row's index, whose
  // form (the keys the releases before stored) is looked up in the upgrade window (consumption-keys.ts).
  it('a run reported final at once keeps the run identity it always had', async () => {
    const r = normalizeAstmMessage(finalReport!, { analyzerId: 'dxh-1', endpoint: 'dxh-1', profile, receivedAt: '2026-01-14T12:00:00.000Z' });
    const drafts = r.events.filter((e) => e.type === 'consumable.used');
    expect(drafts.map((e) => e.idempotencyKey)).toEqual([
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|WBC|BEC-DXH-DILUENT',
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|WBC|BEC-DXH-CELL-LYSE',
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|NE|BEC-DXH-DIFF-PACK',
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|run|BEC-DXH-CLEANER',
    ]);
    expect(drafts.map((e) => rowIndexKeyOf(e))).toEqual([
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|WBC|BEC-DXH-DILUENT|0',
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|WBC|BEC-DXH-CELL-LYSE|1',
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|NE|BEC-DXH-DIFF-PACK|2',
      'astm|dxh-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|run|BEC-DXH-CLEANER|3',
    ]);
  });
});
