import { describe, expect, it } from 'vitest';
import type { RelayConfig } from '../../gateway/src/config/types.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { dueDelayFor, syncModeOf } from '../../gateway/src/relay/sync-modes.ts';

const config = {
  syncModes: {},
  microBatchWindowMs: 30_000,
  scheduledEveryMinutes: 15,
} as unknown as RelayConfig;
const ev = (type: CanonicalEvent['type']): CanonicalEvent => ({ type }) as CanonicalEvent;

describe('sync modes → due delay', () => {
  it('follows the DESIGN.md §3 defaults', () => {
    expect(syncModeOf(config, 'order.created')).toBe('realtime');
    expect(syncModeOf(config, 'consumable.used')).toBe('micro-batch');
    expect(syncModeOf(config, 'invoice.eligible')).toBe('scheduled');
  });

  it('realtime is due at once', () => {
    expect(dueDelayFor(config, () => 1_000_123)(ev('order.created'))).toBe(0);
  });

  it('micro-batch events of one window become due together at the window end', () => {
    const at = (t: number): number => t + dueDelayFor(config, () => t)(ev('consumable.used'));
    expect(at(60_001)).toBe(90_000);
    expect(at(89_999)).toBe(90_000);
    expect(at(90_000)).toBe(120_000);
  });

  it('scheduled events wait for the next slot; config overrides the default', () => {
    expect(dueDelayFor(config, () => 60_000)(ev('invoice.eligible'))).toBe(15 * 60_000 - 60_000);
    const rt = { ...config, syncModes: { 'invoice.eligible': 'realtime' } } as RelayConfig;
    expect(dueDelayFor(rt, () => 60_000)(ev('invoice.eligible'))).toBe(0);
  });
});
