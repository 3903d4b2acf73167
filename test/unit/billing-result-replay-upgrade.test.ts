import { describe, expect, it } from 'vitest';
import { billingState } from '../../gateway/src/events/invoice-eligibility.ts';

/**
 * A result of a cancelled test replayed after the re-order (events/invoice-eligibility.ts
 * `resultNotCounted`) across an upgrade: events stored by the release before carry neither
 * `timeWritten` nor `timeFrom`. The original result stored before the upgrade is still recognised
 * when the replay comes after it; a result stored by the release before after the re-order counts,
 * as it did (relay/README.md "A result of a cancelled test").
 */

let n = 0;
const source = () => ({ kind: 'hl7' as const, endpoint: 'lis', messageId: `m${++n}` });
const iso = (hhmm: string): string => `2026-03-01T${hhmm.slice(0, 2)}:${hhmm.slice(2)}:00.000Z`;
const written = (hhmm: string) => ({ timeWritten: `20260301${hhmm}00+0000` });
const order = (tests: string[], hhmm: string, control: 'NW' | 'CA' = 'NW') =>
  control === 'NW'
    ? { type: 'order.created' as const, occurredAt: iso(hhmm), source: source(), data: { accession: 'U1', orderedAt: iso(hhmm), tests: tests.map((code) => ({ code })), ...written(hhmm) } }
    : { type: 'order.cancelled' as const, occurredAt: iso(hhmm), source: source(), data: { accession: 'U1', tests: tests.map((code) => ({ code })), ...written(hhmm) } };
/** A result as this release stores it (timeWritten, timeFrom OBR-22) or, with `old`, as the release before did. */
const result = (code: string, hhmm: string, value: string, old = false) => ({
  type: 'result.validated' as const,
  occurredAt: iso(hhmm),
  source: source(),
  data: { accession: 'U1', testCode: code, value, ...(old ? {} : { ...written(hhmm), timeFrom: 'OBR-22' as const }) },
});

describe('a replay of a cancelled test\'s result across an upgrade', () => {
  it('the original stored by the release before: its replay after the re-order counts for nothing', () => {
    const state = billingState([order(['TSH'], '0920'), result('TSH', '0950', '2.1', true), order(['TSH'], '1000', 'CA'), order(['TSH'], '1030'), result('TSH', '0950', '2.1')]);
    expect(state.resultNotCounted).toMatchObject({ code: 'TSH', why: 'replay' });
    expect(state.validated.has('TSH')).toBe(false);
  });

  it('a result stored by the release before after the re-order counts, as it did', () => {
    const state = billingState([order(['TSH'], '0920'), order(['TSH'], '1000', 'CA'), order(['TSH'], '1030'), result('TSH', '1005', '2.4', true)]);
    expect(state.resultNotCounted).toBeUndefined();
    expect(state.validated.has('TSH')).toBe(true);
  });

  it('a result of another value reported after the re-order counts', () => {
    const state = billingState([order(['TSH'], '0920'), result('TSH', '0950', '2.1'), order(['TSH'], '1000', 'CA'), order(['TSH'], '1030'), result('TSH', '1145', '2.3')]);
    expect(state.resultNotCounted).toBeUndefined();
    expect(state.validated.has('TSH')).toBe(true);
  });
});
