import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveAccessions } from '../../gateway/src/astm/accessions.ts';
import { type HostQuery, normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { AnalyzerConfig } from '../../gateway/src/config/types.ts';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { checkProfile, defaultProfilesDir } from '../../gateway/src/profiles/check.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import { profileFingerprint } from '../../gateway/src/profiles/fingerprint.ts';
import { loadProfile, profileNames } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { connectTcpSim } from '../fixtures/astm-link/sim-wires.ts';
import { corpusMessages } from '../fixtures/astm/corpus.ts';

/**
 * Review of today's ingress/store changes (bb04432..HEAD). Each test failed when written; each
 * names what the user sees, the commit and line that caused it, and the suggested fix.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const msg = (...records: string[]): string => records.join('\r');

async function tempStore(name: string): Promise<EventStore> {
  const dir = await mkdtemp(path.join(tmpdir(), `sr4-${name}-`));
  const store = await EventStore.open({ dataDir: dir, healthCheckIntervalMs: 50, pruneIntervalMs: 0 });
  cleanups.push(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return store;
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An ASTM analyzer endpoint on a TCP port, wired as gateway.ts #addAstm wires it. */
async function astmEndpoint(store: EventStore, id: string, profile: Profile): Promise<{ ep: AstmEndpoint<HostQuery>; port: number }> {
  const analyzer: AnalyzerConfig = { id, profile: profile.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } } as AnalyzerConfig;
  const ep = new AstmEndpoint({
    analyzer,
    profile,
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
    normalize: (text, ctx) => resolveAccessions(normalizeAstmMessage(text, { analyzerId: id, endpoint: id, profile, receivedAt: ctx.receivedAt }), store),
  });
  await ep.start();
  return { ep, port: ep.address()?.port as number };
}

describe('Beckman DxH: results resent across the upgrade (5f3aebf)', () => {
  // What the user sees: a DxH run stored by the release before 5f3aebf and resent by the analyzer
  // after the upgrade (a new session: new H.14 message time, as the DxH "retransmit" does) is
  // counted again: every result a second test.completed (a second chatter note per test) and the
  // run's reagents consumed twice in Odoo stock (diluent, lyse, diff pack, cleaner). The astm
  // README promises "a result resent in a new session … gets the same key and the store skips it".
  // Cause: 5f3aebf, firmware-profiles/beckman-unicel-dxh.json fields.runTime (R.13, R.12 → R.14):
  // normalize.ts:359 builds the result key from the run time, so every DxH result and consumption
  // key changed from `<O.23>~<hash>` to `<R.14>` (the commit message says so), with no migration.
  // Fix: keep the keys of existing profiles stable across releases: read R.14 for completedAt and
  // occurredAt only, and keep the key's time source as it was (a per-profile `keyTime` list, default
  // runTime, set to the old R.13/R.12/O.23/O.7 for the DxH), or version the key and look the
  // previous form up before committing (store idempotency check on both keys).
  it('a run stored before the upgrade and resent in a new session after it adds no events', async () => {
    const store = await tempStore('dxh');
    const now = loadProfile('beckman-unicel-dxh');
    // The profile as shipped before 5f3aebf (fields read by the normalizer then: R.7 flags, R.9 status).
    // That release built its keys on the run time: keyTime is set to it here, not taken from `now`,
    // so the keys stored below are the old release's whatever the current profile says.
    const shippedRunTime = ['R.13', 'R.12', 'O.23', 'O.7'];
    const before: Profile = { ...now, fields: { ...now.fields, runTime: shippedRunTime, keyTime: shippedRunTime, abnormalFlags: ['R.7'], resultStatus: ['R.9'] } };
    const [text] = corpusMessages('beckman_unicel-dxh_result_1.astm');
    const records = (text as string).split('\r').filter((r) => r !== '');
    expect(records[0]).toMatch(/^H\|/);

    const old = await astmEndpoint(store, 'dxh-1', before);
    {
      const { sim, socket } = await connectTcpSim(old.port);
      const r = await sim.sendMessage(records);
      expect(r.replies).toBe('<ACK>'.repeat(records.length + 1));
      socket.destroy();
    }
    await old.ep.stop(2_000);
    const counted = async (type: 'test.completed' | 'consumable.used'): Promise<number> => (await store.listEvents({ type, limit: 1000 })).length;
    const results = await counted('test.completed');
    const consumption = await counted('consumable.used');
    expect(results).toBeGreaterThan(10);
    expect(consumption).toBeGreaterThan(0);

    // The upgraded gateway; the analyzer resends the run in a new session (new message time H.14).
    const upgraded = await astmEndpoint(store, 'dxh-1', now);
    cleanups.push(() => upgraded.ep.stop(2_000));
    const resent = [(records[0] as string).replace('20211028082841', '20211028093012'), ...records.slice(1)];
    const { sim, socket } = await connectTcpSim(upgraded.port);
    cleanups.push(() => void socket.destroy());
    const r = await sim.sendMessage(resent);
    expect(r.replies).toBe('<ACK>'.repeat(records.length + 1));
    await until(async () => (await store.listMessages({ endpoint: 'dxh-1', limit: 10 })).length === 2);
    expect(await counted('test.completed'), 'no second test.completed per result').toBe(results);
    expect(await counted('consumable.used'), 'the run consumed once').toBe(consumption);
  });
});

describe('fields.keyTime: keys keep their time source when the run time moves (added with the fix)', () => {
  const ctx = (profile: Profile, receivedAt = '2026-01-14T12:00:00.000Z') => ({ analyzerId: 'an-1', endpoint: 'ep-1', profile, receivedAt });
  const keysOf = (r: ReturnType<typeof normalizeAstmMessage>, type?: string): string[] =>
    r.events
      .filter((e) => type === undefined || e.type === type)
      .map((e) => e.idempotencyKey)
      .sort();

  it('the DxH is timed by R.14 and keyed exactly as the release before 5f3aebf keyed it', () => {
    const [text] = corpusMessages('beckman_unicel-dxh_result_1.astm');
    const r = normalizeAstmMessage(text as string, ctx(loadProfile('beckman-unicel-dxh')));
    const wbc = r.events.find((e) => e.type === 'test.completed' && e.data.analyzerTestCode === 'WBC');
    expect(wbc?.type === 'test.completed' ? wbc.data.completedAt : undefined).toBe('2021-10-28T08:28:26.000Z');
    // Key strings produced by the release before 5f3aebf (O.23 results-reported time, `~`, hash).
    expect(wbc?.idempotencyKey).toBe('astm|an-1|result|000004287888|WBC|20211028082838~672a0c94d64e6255');
    expect(keysOf(r, 'specimen.received')).toEqual(['astm|an-1|specimen|000004287888|20211028']);
    // Consumption: the same run identity; the key names the draw, its row-index form is the release's (looked up in the upgrade window).
    expect(keysOf(r, 'consumable.used')).toContain('astm|an-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|WBC|BEC-DXH-DILUENT');
    expect(r.events.map((e) => rowIndexKeyOf(e))).toContain('astm|an-1|consumption|000004287888|20211028082838~01ba0fedcc82b831|run|WBC|BEC-DXH-DILUENT|0');
  });

  it('every other shipped profile keys on its run time (keyTime defaults to runTime)', () => {
    for (const name of profileNames()) {
      const profile = loadProfile(name);
      if (name === 'beckman-unicel-dxh') expect(profile.fields.keyTime).toEqual(['R.13', 'R.12', 'O.23', 'O.7']);
      else expect(profile.fields.keyTime, name).toEqual(profile.fields.runTime);
    }
  });

  it('a run time moved to another field keeps every key and the pending → final match on R.12', () => {
    const shipped = loadProfile('sysmex-xn-l');
    expect(shipped.fields.keyTime).toContain('R.12');
    // The run time no longer reads R.12 (say it turned out to hold something else on a firmware);
    // the keys keep the list they were built on, R.12 included.
    const moved: Profile = { ...shipped, fields: { ...shipped.fields, runTime: ['R.13', 'O.7'], keyTime: shipped.fields.runTime } };
    // Same run (started 10:00:00, R.12): first reported pending without a completion time, then final.
    const body = (status: string, completed: string) => ['P|1', 'O|1||^^S-77^B||^^^^WBC', `R|1|^^^^WBC^1|${status === 'I' ? '' : '7.1'}|10*3/uL||||${status}|||20260114100000|${completed}`];
    const pending = msg('H|\\^&|||XN-350^00-22^11001^^^^12345678||||||||E1394-97|20260114100010', ...body('I', ''), 'L|1|N');
    const final = msg('H|\\^&|||XN-350^00-22^11001^^^^12345678||||||||E1394-97|20260114100130', ...body('F', '20260114100125'), 'L|1|N');
    for (const text of [pending, final]) expect(keysOf(normalizeAstmMessage(text, ctx(moved)))).toEqual(keysOf(normalizeAstmMessage(text, ctx(shipped))));
    // Times follow the run time: the pending report has none of its own now (message time H.14).
    const pendingMoved = normalizeAstmMessage(pending, ctx(moved));
    expect(pendingMoved.events.find((e) => e.type === 'consumable.used')?.occurredAt).toBe('2026-01-14T10:00:10.000Z');
    expect(normalizeAstmMessage(pending, ctx(shipped)).events.find((e) => e.type === 'consumable.used')?.occurredAt).toBe('2026-01-14T10:00:00.000Z');
    // The pending report and its final still share their consumption (R.12, listed in keyTime).
    expect(keysOf(pendingMoved, 'consumable.used').length).toBeGreaterThan(0);
    expect(keysOf(normalizeAstmMessage(final, ctx(moved)), 'consumable.used')).toEqual(keysOf(pendingMoved, 'consumable.used'));
  });

  it('`profiles check` refuses keyTime references on records the normalizer does not read there', () => {
    const obj = JSON.parse(readFileSync(path.join(defaultProfilesDir(), 'beckman-unicel-dxh.json'), 'utf8')) as Record<string, unknown>;
    const fields = { ...(obj.fields as object), keyTime: ['R.13', 'C.4'] };
    const issues = checkProfile({ ...obj, fields, revision: profileFingerprint({ ...obj, fields }) }, { fileName: 'beckman-unicel-dxh' }).filter((i) => i.severity === 'error');
    expect(issues.map((i) => i.path)).toEqual(['fields.keyTime[1]']);
    expect(checkProfile(obj, { fileName: 'beckman-unicel-dxh' }).filter((i) => i.severity === 'error')).toEqual([]);
  });
});
