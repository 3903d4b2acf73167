/**
 * The era of the message keys (EventStore mayHoldEarlierReleaseKeys): the HL7 intake looks a message
 * up under the keys an earlier release may have stored it under (two more hashes and look-ups per
 * message) only while the store may hold such messages. A store this release began never does; a
 * store an earlier release wrote does, for `retentionDays` after this release first opened it (the
 * life of a message's dedup key); the finding is kept in the store across restarts.
 */
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

const DAY_MS = 86_400_000;
const tmp = useTempStore('lgw-key-era-', { pruneIntervalMs: 0, minFreeBytes: 0 });
afterEach(() => vi.restoreAllMocks());

/** The store as an earlier release left it: its messages, and no record of the key era. */
async function forgetKeyEra(dir: string): Promise<void> {
  const db = new ClassicLevel<string, string>(path.join(dir, 'store'));
  await db.open();
  try {
    const meta = db.sublevel<string, string>('meta', {});
    expect(await meta.get('keyEra')).toBeDefined();
    await meta.del('keyEra');
  } finally {
    await db.close();
  }
}

describe('the era of the message keys', () => {
  it('a store this release began holds no earlier keys, also with messages and after a restart', async () => {
    const store = await tmp.open();
    expect(store.mayHoldEarlierReleaseKeys()).toBe(false);
    await store.commit(inboundMessage('E-1'), []);
    await store.close();
    expect((await tmp.open()).mayHoldEarlierReleaseKeys()).toBe(false);
  });

  it('a store with messages from before: earlier keys for retentionDays after its first opening, kept across restarts', async () => {
    const first = await tmp.open();
    await first.commit(inboundMessage('E-1'), []);
    await first.close();
    await forgetKeyEra(tmp.dir);

    const openedAt = Date.now();
    const upgraded = await tmp.open({ retention: { retentionDays: 3 } });
    expect(upgraded.mayHoldEarlierReleaseKeys()).toBe(true);
    await upgraded.close();
    // Reopened later: the first opening counts, not this one.
    const again = await tmp.open({ retention: { retentionDays: 3 } });
    expect(again.mayHoldEarlierReleaseKeys()).toBe(true);
    vi.spyOn(Date, 'now').mockReturnValue(openedAt + 2 * DAY_MS);
    expect(again.mayHoldEarlierReleaseKeys()).toBe(true);
    vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 3 * DAY_MS + 60_000);
    expect(again.mayHoldEarlierReleaseKeys()).toBe(false);
  });

  it('first opened with the clock behind (a box booted with its build date): the window counts from the newest stored instant', async () => {
    const first = await tmp.open();
    await first.commit(inboundMessage('E-1'), []);
    await first.close();
    await forgetKeyEra(tmp.dir);

    const now = Date.now();
    // The upgrade starts before the time server answered: the clock reads 200 days ago.
    vi.spyOn(Date, 'now').mockReturnValue(now - 200 * DAY_MS);
    const upgraded = await tmp.open({ retention: { retentionDays: 30 } });
    vi.restoreAllMocks();
    // The clock set right: the messages taken just before the upgrade may still be resent.
    expect(upgraded.mayHoldEarlierReleaseKeys()).toBe(true);
    vi.spyOn(Date, 'now').mockReturnValue(now + 31 * DAY_MS);
    expect(upgraded.mayHoldEarlierReleaseKeys()).toBe(false);
  });

  it('an empty store of an earlier release (nothing taken yet) holds no earlier keys', async () => {
    await (await tmp.open()).close();
    await forgetKeyEra(tmp.dir);
    expect((await tmp.open()).mayHoldEarlierReleaseKeys()).toBe(false);
  });
});
