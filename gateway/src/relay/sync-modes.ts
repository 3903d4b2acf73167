import type { RelayConfig } from '../config/types.ts';
import { DEFAULT_SYNC_MODE, type CanonicalEvent, type EventType, type SyncMode } from '../events/types.ts';

/**
 * Sync modes (DESIGN.md §3 table as default, relay.syncModes overrides) expressed as the delay
 * before a committed event becomes due. The store calls this at commit (EventStore option
 * `dueDelayMs`).
 *
 * - realtime: due at once.
 * - micro-batch: due at the END of the current window (aligned to multiples of
 *   relay.microBatchWindowMs), so every event of one window becomes due at the same instant and is
 *   leased together → one picking per analyzer per window.
 * - scheduled: due at the next multiple of relay.scheduledEveryMinutes.
 */
export function syncModeOf(config: Pick<RelayConfig, 'syncModes'>, type: EventType): SyncMode {
  return config.syncModes[type] ?? DEFAULT_SYNC_MODE[type];
}

export function dueDelayFor(config: RelayConfig, clock: () => number = Date.now): (e: CanonicalEvent, at?: number) => number {
  // `at`: the store's due clock after the system clock stepped back (EventStoreOptions.dueDelayMs).
  return (e, at) => {
    const now = at ?? clock();
    switch (syncModeOf(config, e.type)) {
      case 'realtime':
        return 0;
      case 'micro-batch': {
        const w = Math.max(1, config.microBatchWindowMs);
        return w - (now % w);
      }
      case 'scheduled': {
        const p = Math.max(1, config.scheduledEveryMinutes) * 60_000;
        return p - (now % p);
      }
      default:
        return 0;
    }
  };
}
