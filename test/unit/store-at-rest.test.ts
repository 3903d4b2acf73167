/**
 * The store read at rest (store/inspect.ts readStoreAtRest): what `lab-gateway check` reads of a
 * data dir without starting a gateway on it. Each store here is written by EventStore itself and
 * read back through the look-up, so a change of the store's key layout fails here instead of
 * leaving `check` silent on the demo's store (it read LevelDB's keys itself before).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { adoptOdooTarget, checkStoreUse, DEMO_ANALYZER_ID, DEMO_GATEWAY_ID, ODOO_TARGET_NAMESPACE, odooTargetOf, type StoreUse, type StoreUseSource } from '../../gateway/src/relay/odoo-target.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { readStoreAtRest, type StoreAtRest } from '../../gateway/src/store/inspect.ts';
import type { QueueStats } from '../../gateway/src/store/types.ts';
import { inboundMessage, specimenReceived } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-store-at-rest-', { pruneIntervalMs: 0, minFreeBytes: 0 });
const site = odooTargetOf({ url: 'https://odoo.lab.example', database: 'lab' });

/** What an open store answers, as the look-up is to answer it once the store is closed. */
interface Seen {
  target: unknown;
  stats: QueueStats;
  lastMessageAt: Readonly<Record<string, string>>;
}

async function seenAndClosed(store: EventStore): Promise<Seen> {
  await store.flush();
  const seen = { target: await store.getDoc(ODOO_TARGET_NAMESPACE, 'current'), stats: store.stats(), lastMessageAt: { ...store.lastMessageAt() } };
  await store.close();
  return seen;
}

/** What the look-up reads of tmp.dir (it must find a store there). */
async function atRest(): Promise<Seen> {
  const look = await readStoreAtRest(tmp.dir, async (store: StoreAtRest) => ({
    target: await store.getDoc(ODOO_TARGET_NAMESPACE, 'current'),
    stats: store.stats(),
    lastMessageAt: store.lastMessageAt(),
  }));
  expect(look.found).toBe('store');
  return (look as { value: Seen }).value;
}

/** The open store's answers; the age of the oldest event is not kept on disk (0 at rest). */
function asAtRest(seen: Seen): Seen {
  return { ...seen, stats: { ...seen.stats, oldestPendingAgeSeconds: 0 } };
}

/** What checkStoreUse says for a gateway with a real Odoo: its refusal, or nothing. */
async function gatewayVerdict(source: StoreUseSource): Promise<string | undefined> {
  try {
    await checkStoreUse(source, site, { gatewayId: 'lab-1', demo: false, dataDir: tmp.dir, endpoints: ['lis'] });
    return undefined;
  } catch (err) {
    expect(isGatewayError(err, 'GW_CONFIG_INVALID'), String(err)).toBe(true);
    return (err as Error).message;
  }
}

describe('the store read at rest', () => {
  it('the demo\'s store: its mark, its waiting event and its link, as the open store had them; start\'s refusal in the same words', async () => {
    let store = await tmp.open();
    const use: StoreUse = { gatewayId: DEMO_GATEWAY_ID, demo: true, dataDir: tmp.dir };
    const { demoStore } = await checkStoreUse(store, odooTargetOf({}), use);
    await adoptOdooTarget(store, odooTargetOf({}), undefined, { ...use, demoStore });
    await store.commit(inboundMessage('DEMO-1'), [specimenReceived('DEMO-ACC-1', 'k1')]);
    const seen = await seenAndClosed(store);
    expect(seen.target).toMatchObject({ target: { sandbox: true }, demo: true });
    expect(seen.stats.pending).toBe(1);
    expect(Object.keys(seen.lastMessageAt)).toEqual(['lis']);

    expect(await atRest()).toEqual(asAtRest(seen));
    const look = await readStoreAtRest(tmp.dir, (rest) => gatewayVerdict(rest));
    store = await tmp.open();
    const words = await gatewayVerdict(store);
    expect(words).toContain('(1 events not delivered)');
    expect(look).toEqual({ found: 'store', value: words });
  });

  it('a gateway\'s store: its record and every queue counter (delivered, dead, retrying, in flight, discarded, pending) as the open store had them; nothing refused', async () => {
    const store = await tmp.open();
    await adoptOdooTarget(store, site, undefined, { gatewayId: 'lab-1', demo: false });
    const ids: string[] = [];
    for (const n of [1, 2, 3, 4, 5, 6]) {
      const { eventIds } = await store.commit(inboundMessage(`ORM${n}`, { endpoint: n % 2 ? 'lis' : 'cobas-pure-1', dedupKey: `lis|ORM${n}` }), [specimenReceived(`ACC-${n}`, `k${n}`)]);
      ids.push(eventIds[0]!);
    }
    await store.discard(ids[5]!, 'lab-admin', 'entered twice');
    const leases = await store.lease({ limit: 10 });
    const leaseOf = (id: string) => leases.find((l) => l.events[0]!.event.id === id)!;
    await store.complete(leaseOf(ids[0]!), [{ eventId: ids[0]!, outcome: 'delivered' }]);
    await store.complete(leaseOf(ids[1]!), [{ eventId: ids[1]!, outcome: 'dead', reason: 'no product for this test code' }]);
    await store.complete(leaseOf(ids[2]!), [{ eventId: ids[2]!, outcome: 'retry', error: 'Odoo timed out', delayMs: 3_600_000 }]);
    await store.complete(leaseOf(ids[4]!), []);
    // ids[3] stays leased: in flight when the gateway stopped.
    const seen = await seenAndClosed(store);
    expect(seen.target).toMatchObject({ target: site, gatewayIds: ['lab-1'] });
    expect(seen.stats).toMatchObject({ pending: 1, inFlight: 1, retrying: 1, deadLettered: 1, delivered: 1, discarded: 1, blockedPartitions: 1 });
    expect(Object.keys(seen.lastMessageAt).sort()).toEqual(['cobas-pure-1', 'lis']);

    expect(await atRest()).toEqual(asAtRest(seen));
    expect(await readStoreAtRest(tmp.dir, (rest) => gatewayVerdict(rest))).toEqual({ found: 'store', value: undefined });
  });

  it('a store an earlier release\'s demo wrote (no record, only its two links spoke): no record, both links\' last messages; refused as start refuses it', async () => {
    const store = await tmp.open();
    await store.commit(inboundMessage('ORM1'), [specimenReceived('DEMO1', 'k1')]);
    await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1' }), []);
    const seen = await seenAndClosed(store);
    expect(seen.target).toBeUndefined();
    expect(Object.keys(seen.lastMessageAt).sort()).toEqual([DEMO_ANALYZER_ID, 'lis']);

    expect(await atRest()).toEqual(asAtRest(seen));
    const look = await readStoreAtRest(tmp.dir, (rest) => gatewayVerdict(rest));
    expect(look.found).toBe('store');
    expect((look as { value: string }).value).toContain('an earlier release\'s demo ran on it');
  });

  it('a store a running gateway holds: found held, not read', async () => {
    const store = await tmp.open();
    await store.commit(inboundMessage('ORM1'), [specimenReceived('ACC-1', 'k1')]);
    let read = false;
    const look = await readStoreAtRest(tmp.dir, async () => {
      read = true;
    });
    expect(look).toEqual({ found: 'held' });
    expect(read).toBe(false);
    // The gateway's store goes on working.
    await store.commit(inboundMessage('ORM2'), [specimenReceived('ACC-2', 'k2')]);
    expect(store.stats().pending).toBe(2);
  });

  it('a data dir not made yet, or an empty one: no store, and nothing created', async () => {
    const fresh = path.join(tmp.dir, 'not-yet');
    expect(await readStoreAtRest(fresh, async () => 'read')).toEqual({ found: 'none' });
    expect(existsSync(fresh)).toBe(false);

    expect(await readStoreAtRest(tmp.dir, async () => 'read')).toEqual({ found: 'none' });
    expect(existsSync(path.join(tmp.dir, 'store'))).toBe(false);
  });

  it('a store LevelDB cannot open (its manifest gone): unreadable, with LevelDB\'s reason', async () => {
    await mkdir(path.join(tmp.dir, 'store'));
    await writeFile(path.join(tmp.dir, 'store', 'CURRENT'), 'MANIFEST-000042\n');
    const look = await readStoreAtRest(tmp.dir, async () => 'read');
    expect(look.found).toBe('unreadable');
    expect((look as { reason: string }).reason).not.toBe('');
  });
});
