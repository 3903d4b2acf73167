/**
 * Each change of the keys has its own upgrade window (EventStore mayHoldEarlierReleaseKeys(era)).
 * KEY_ERA 2 changed the HL7 message fingerprint; KEY_ERA 3 changed the consumption keys only
 * (profiles/consumption-keys.ts). With one window for both, a store a release of era 2 wrote, long
 * past its own window for the fingerprints, had the HL7 intake hash every message under the earlier
 * fingerprints and look them up again (its commits issued in order) for retentionDays after the
 * upgrade to era 3, for nothing: the fingerprints did not change in era 3. Now the store's `keyEra`
 * record keeps, per era from 2 on, when a release of that era first opened it and whether it held
 * messages then (a record era 2 wrote gives era 2's window as it was), and the intake asks for era
 * 2's window, the analyzer endpoints' consumption look-up for era 3's.
 *
 * Real parts: the LevelDB store in a temp dir (its `meta` `keyEra` record written as the release of
 * era 2 wrote it), the HL7 intake over MLLP.
 */
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { messageFingerprints } from '../../gateway/src/hl7/msh.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { CONSUMPTION_KEY_ERA } from '../../gateway/src/profiles/consumption-keys.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { endpointConfig } from '../fixtures/hl7/helpers.ts';
import { adtA01 } from '../fixtures/hl7/messages.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY_MS = 86_400_000;
/** The era whose change the HL7 intake's earlier fingerprints undo (hl7-intake.ts). */
const FINGERPRINT_ERA = 2;
const tmp = useTempStore('lgw-s23b-key-era-', { pruneIntervalMs: 0, minFreeBytes: 0 });
afterEach(() => vi.restoreAllMocks());

/** The `meta` `keyEra` record as given (undefined: removed, as a store of a release before era 2 has none). */
async function setKeyEra(dir: string, record: object | undefined): Promise<void> {
  const db = new ClassicLevel<string, unknown>(path.join(dir, 'store'), { valueEncoding: 'json' });
  await db.open();
  try {
    const meta = db.sublevel<string, unknown>('meta', { valueEncoding: 'json' });
    if (record === undefined) await meta.del('keyEra');
    else await meta.put('keyEra', record);
  } finally {
    await db.close();
  }
}

/** A store with one message, left as a release of another era would have left it. */
async function storeLeftBy(record: object | undefined): Promise<void> {
  const first = await tmp.open();
  await first.commit(inboundMessage('E-1'), []);
  await first.close();
  await setKeyEra(tmp.dir, record);
}

describe('one upgrade window per change of the keys', () => {
  it('a store era 2 wrote, past era 2 own window: the consumption window opens, the fingerprint window stays closed, across restarts', async () => {
    // Era 2 first opened it 40 days ago on a store with messages (an upgrade from before era 2).
    const era2Since = Date.now() - 40 * DAY_MS;
    await storeLeftBy({ version: 2, since: era2Since, earlier: true });
    const openedAt = Date.now();
    const upgraded = await tmp.open({ retention: { retentionDays: 30 } });
    expect(upgraded.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    expect(upgraded.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(false);
    // Any window: the one of era 3.
    expect(upgraded.mayHoldEarlierReleaseKeys()).toBe(true);
    // The openings themselves (what is dated before them may be an earlier release's).
    expect(upgraded.earlierReleaseKeysBefore(FINGERPRINT_ERA)).toBe(era2Since);
    expect(upgraded.earlierReleaseKeysBefore(CONSUMPTION_KEY_ERA)).toBeGreaterThanOrEqual(openedAt);
    await upgraded.close();

    const again = await tmp.open({ retention: { retentionDays: 30 } });
    expect(again.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    expect(again.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(false);
    vi.spyOn(Date, 'now').mockReturnValue(openedAt + 31 * DAY_MS);
    expect(again.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
    expect(again.mayHoldEarlierReleaseKeys()).toBe(false);
  });

  it("a store era 2 wrote, within era 2's window: each window ends at its own time", async () => {
    const era2Since = Date.now() - 10 * DAY_MS;
    await storeLeftBy({ version: 2, since: era2Since, earlier: true });
    const openedAt = Date.now();
    const store = await tmp.open({ retention: { retentionDays: 30 } });
    expect(store.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(true);
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    vi.spyOn(Date, 'now').mockReturnValue(era2Since + 30 * DAY_MS + 60_000);
    expect(store.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(false);
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    vi.spyOn(Date, 'now').mockReturnValue(openedAt + 30 * DAY_MS + 60_000);
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
  });

  it('a store era 2 began (no earlier messages then): only the consumption window opens', async () => {
    await storeLeftBy({ version: 2, since: Date.now() - 2 * DAY_MS, earlier: false });
    const store = await tmp.open({ retention: { retentionDays: 30 } });
    expect(store.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(false);
    expect(store.earlierReleaseKeysBefore(FINGERPRINT_ERA)).toBeUndefined();
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
  });

  it('a store from before era 2 (no record, messages): both windows open', async () => {
    await storeLeftBy(undefined);
    const store = await tmp.open({ retention: { retentionDays: 30 } });
    expect(store.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(true);
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    await store.close();
    const again = await tmp.open({ retention: { retentionDays: 30 } });
    expect(again.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(true);
    expect(again.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
  });

  it('a new store: no window, also after a restart with messages', async () => {
    const store = await tmp.open();
    expect(store.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(false);
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
    expect(store.mayHoldEarlierReleaseKeys()).toBe(false);
    expect(store.earlierReleaseKeysBefore(CONSUMPTION_KEY_ERA)).toBeUndefined();
    await store.commit(inboundMessage('E-1'), []);
    await store.close();
    const again = await tmp.open();
    expect(again.mayHoldEarlierReleaseKeys(FINGERPRINT_ERA)).toBe(false);
    expect(again.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
  });
});

/** Sends the messages on one connection to an HL7 endpoint on `store`; the replies. */
async function sendAll(store: EventStore, messages: string[]): Promise<string[]> {
  const endpoint = new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log: silentLogger });
  await endpoint.start();
  const client = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
  const replies: string[] = [];
  try {
    for (const m of messages) replies.push((await client.send(Buffer.from(m, 'latin1'))).toString('latin1'));
  } finally {
    await client.close();
    await endpoint.stop(2_000);
  }
  return replies;
}

describe('the HL7 intake asks for the window of the fingerprints (era 2)', () => {
  /**
   * A message a release before era 2 took without its final CR is under the fingerprint of that
   * form. The intake looks a message in the usual form up under it only while era 2's window is
   * open (by its end, retention has pruned such a message): past it, on a store era 2 wrote, the
   * upgrade to era 3 does not reopen the look-ups for the HL7 messages.
   */
  /** The ACK that release sent, kept with the message (framed, as the intake keeps it). */
  const STORED_ACK = 'MSH|^~\\&|GW|LAB|LIS|LAB|20240101120000||ACK^A01^ACK|EARLIER-ACK-1|P|2.5\rMSA|AA|W-1\r';

  async function storeHoldingAnEarlierForm(record: object): Promise<EventStore> {
    const first = await tmp.open();
    const noCr = adtA01('W-1').slice(0, -1);
    const earlier = messageFingerprints(Buffer.from(noCr, 'latin1')).legacy;
    expect(earlier).toBeDefined();
    await first.commit(inboundMessage('W-1', { raw: Buffer.from(noCr, 'latin1'), ack: Buffer.from(`\x0b${STORED_ACK}\x1c\r`, 'latin1'), dedupKey: `lis|LIS^LAB|W-1|${earlier}` }), []);
    await first.close();
    await setKeyEra(tmp.dir, record);
    return tmp.open({ retention: { retentionDays: 30 } });
  }

  it("within era 2's window, the message in the usual form is found under the earlier form", async () => {
    const store = await storeHoldingAnEarlierForm({ version: 2, since: Date.now() - 10 * DAY_MS, earlier: true });
    const [reply] = await sendAll(store, [adtA01('W-1')]);
    expect(reply).toBe(STORED_ACK);
    expect(store.intake()).toMatchObject({ duplicates: 1 });
  });

  it("past era 2's window, on a store era 2 wrote: not looked up under the earlier forms (the consumption window open)", async () => {
    const store = await storeHoldingAnEarlierForm({ version: 2, since: Date.now() - 40 * DAY_MS, earlier: true });
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    const [reply] = await sendAll(store, [adtA01('W-1')]);
    expect(reply).toMatch(/MSA\|AA\|W-1/);
    expect(reply).not.toContain('EARLIER-ACK-1');
    expect(store.intake()).toMatchObject({ duplicates: 0 });
  });
});
