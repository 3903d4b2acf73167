/**
 * A review, as the next owner, of the features added on one day: the crash-loop note, the lab's
 * time zone, named admin tokens, HL7 without MLLP framing, quiet alerts. Each test states a promise
 * at an edge case (real store in a temp dir, real decoder, real config parsing); those that failed
 * on the code of the day name the fix in their module's README.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { applyTimeZone, timeZoneIssues } from '../../gateway/src/config/time-zone.ts';
import type { GatewayConfig } from '../../gateway/src/config/types.ts';
import type { Lease } from '../../gateway/src/store/types.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-review-s20-', { pruneIntervalMs: 0, minFreeBytes: 0, ambiguousSettleMs: 0 });

const leaseOf = (leases: Lease[], id: string): Lease => {
  const l = leases.find((x) => x.events.some((e) => e.event.id === id));
  if (!l) throw new Error(`${id} is not leased`);
  return l;
};

describe('crash-loop note (store/event-store.ts noteCrash)', () => {
  it('a second uncaught exception during the same stop keeps the events the first one noted', async () => {
    let store = await tmp.open();
    const [a] = (await store.commit(inboundMessage('CRASH-A'), [resultValidated('ACC-A', 'k-a')])).eventIds;
    const [b] = (await store.commit(inboundMessage('CRASH-B'), [resultValidated('ACC-B', 'k-b')])).eventIds;
    const leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    // The first error: both deliveries under way are noted.
    store.noteCrash(new TypeError('first'));
    // The stop cuts A's request: released unchanged (a retry), still counted.
    await store.complete(leaseOf(leases, a!), [{ eventId: a!, outcome: 'retry', error: 'socket hang up' }]);
    // A second uncaught exception while the stop goes on: start's handler notes again.
    store.noteCrash(new TypeError('second'));
    await store.close();
    store = await tmp.open();
    expect((await store.getEvent(a!))?.crashes, 'A, noted at the first error and cut by the stop, is counted').toBe(1);
    expect((await store.getEvent(b!))?.crashes).toBe(1);
  });
});

describe('the lab time zone (config/time-zone.ts)', () => {
  const original = process.env.TZ;
  afterEach(() => {
    if (original === undefined) delete process.env.TZ;
    else process.env.TZ = original;
  });
  const cfg = (timeZone?: string): GatewayConfig => ({ gateway: { id: 'g', dataDir: '/tmp/x', ...(timeZone ? { timeZone } : {}) } }) as unknown as GatewayConfig;

  it('two gateways in one process, stopped in the order they started: the one still running keeps its zone, and the last stop puts TZ back as it was', () => {
    const a = applyTimeZone(cfg('America/New_York'));
    const b = applyTimeZone(cfg('Asia/Tokyo'));
    expect(process.env.TZ).toBe('Asia/Tokyo');
    a.restore();
    expect(process.env.TZ, 'B still runs: its zone stays').toBe('Asia/Tokyo');
    b.restore();
    expect(process.env.TZ, 'both stopped: TZ as before either started').toBe(original);
  });

  it('two gateways stopped in reverse order: TZ back to as it was', () => {
    const a = applyTimeZone(cfg('America/New_York'));
    const b = applyTimeZone(cfg('Asia/Tokyo'));
    b.restore();
    expect(process.env.TZ).toBe('America/New_York');
    a.restore();
    expect(process.env.TZ).toBe(original);
  });

  it('a TZ that names no zone (a typo in the unit file) is warned at check and start, not read silently as UTC', () => {
    const issues = timeZoneIssues(cfg(), { TZ: 'Europe/Berln' }, 'UTC');
    expect(issues).toHaveLength(1);
    expect(issues[0]?.message).toContain('Europe/Berln');
    expect(issues[0]?.message).toContain('Europe/Berlin');
    // Valid spellings of TZ stay quiet: a zone, the glibc ':' form.
    expect(timeZoneIssues(cfg(), { TZ: 'Europe/Paris' }, 'Europe/Paris')).toEqual([]);
    expect(timeZoneIssues(cfg(), { TZ: ':Europe/Paris' }, 'Europe/Paris')).toEqual([]);
    // gateway.timeZone set: TZ does not matter.
    expect(timeZoneIssues(cfg('Europe/Berlin'), { TZ: 'Europe/Berln' }, 'UTC')).toEqual([]);
  });
});
