/**
 * A run the release before the consumption keys changed (era 2: keys ending with the row's index
 * in the profile's table) took, sent again by the analyzer after the upgrade window: past
 * `retentionDays` after the upgrade. The idempotency keys of that release's draws stay in the store
 * for good (tombstones, also after retention pruned the events), so that release never drew a
 * resent run again, however late it came: a c 111 or an ASTM analyzer re-transmitting results
 * from its memory after a LIS outage, the operator re-sending one. Since e0bdc86 the row-index
 * form was looked up only within the window (KEY_ERA 3's `retentionDays`): past it the resent run
 * had new keys for every draw, and its reagents were taken from Odoo's stock a second time. Now a
 * draw of a run dated before the store's upgrade to era 3 (two days' margin for the analyzer's
 * clock) is looked up in the row-index form after the window too; a run dated after it never is,
 * nor any run on a store era 3 began.
 *
 * Real parts: the release before (PREVIOUS, from `git archive`) takes the run over TCP into a
 * LevelDB data dir; this release opens the same dir with `retentionDays: 0` (the window over at
 * once, as it is `retentionDays` after the upgrade) and takes the resend over TCP, the endpoint
 * wired as gateway.ts wires it (normalize, resolveAnalyzerResult, commit).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolveAnalyzerResult } from '../../gateway/src/astm/accessions.ts';
import { type HostQuery, normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { AnalyzerConfig, Hl7EndpointConfig } from '../../gateway/src/config/types.ts';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { createAnalyzerHl7Normalizer } from '../../gateway/src/profiles/hl7-analyzer-normalize.ts';
import { CONSUMPTION_KEY_ERA } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { ConsumptionRow, Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { connectTcpSim } from '../fixtures/astm-link/sim-wires.ts';
import { endpointConfig } from '../fixtures/hl7/helpers.ts';
import { unpackPreviousRelease } from '../fixtures/previous-release.ts';

/** The release before consumption keys stopped naming the row index (KEY_ERA 2). */
const PREVIOUS = '1c29f8b';

let work: string;
let prevSrc: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'lgw-s23b-consumption-window-'));
  prevSrc = await unpackPreviousRelease(PREVIOUS, work);
}, 120_000);

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface StoreLike {
  listMessages(query: { limit: number }): Promise<unknown[]>;
  close(): Promise<void>;
}
interface EndpointLike {
  start(): Promise<void>;
  stop(deadline?: number): Promise<void>;
  address(): { port: number } | undefined;
}

async function until(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 10));
  expect(await cond()).toBe(true);
}

const generic = loadProfile('generic-astm');
const profile: Profile = {
  ...generic,
  consumption: [
    { per: 'test', test: 'GLU', productCode: 'GLU-R1', quantity: 0.2, uom: 'mL' },
    { per: 'test', test: 'CREA', productCode: 'CREA-R1', quantity: 0.1, uom: 'mL' },
    { per: 'run', productCode: 'DEAD', quantity: 0.05, uom: 'mL', deadVolume: true },
  ] satisfies ConsumptionRow[],
};

/** ASTM time (local, as the analyzer sends it) of `ms`. */
function astmTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** One run of GLU and CREA on `specimen` measured at `r13`, sent in a session at `h14` (a resend has another). */
const astmRun = (h14: string, r13: string, specimen = 'S-1'): string[] => [
  `H|\\^&|||M1|||||||P|1|${h14}`,
  'P|1',
  `O|1|${specimen}||^^^GLU\\^^^CREA|R|${r13}`,
  `R|1|^^^GLU|5.0|mmol/L||||F||op||${r13}`,
  `R|2|^^^CREA|80|umol/L||||F||op||${r13}`,
  'L|1|N',
];

async function sendAstm(endpoint: EndpointLike, store: StoreLike, records: string[]): Promise<void> {
  await endpoint.start();
  const before = (await store.listMessages({ limit: 1000 })).length;
  try {
    const { sim, socket } = await connectTcpSim(endpoint.address()!.port);
    try {
      const r = await sim.sendMessage(records);
      expect(r.replies).toBe('<ACK>'.repeat(records.length + 1));
      await until(async () => (await store.listMessages({ limit: 1000 })).length === before + 1);
    } finally {
      socket.destroy();
    }
  } finally {
    await endpoint.stop(2_000);
  }
}

function astmEndpoint(store: EventStore): AstmEndpoint<HostQuery> {
  const analyzer = { id: 'an-1', profile: profile.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } } as AnalyzerConfig;
  return new AstmEndpoint<HostQuery>({
    analyzer,
    profile,
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
    normalize: (text, ctx) => resolveAnalyzerResult(normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt: ctx.receivedAt }), store),
  });
}

async function draws(store: EventStore): Promise<string[]> {
  const events = await store.listEvents({ type: 'consumable.used', limit: 1000 });
  return events.flatMap((e) => (e.event.type === 'consumable.used' ? [`${e.event.data.specimenId} ${e.event.data.productCode} ${e.event.data.testCode ?? 'run'}`] : [])).sort();
}

/** The release before takes `records` into `dir` over TCP. */
async function takenByPrevious(dir: string, records: string[]): Promise<void> {
  const prevStore = await import(path.join(prevSrc, 'gateway/src/store/event-store.ts'));
  const prevEndpoint = await import(path.join(prevSrc, 'gateway/src/ingress/astm/astm-endpoint.ts'));
  const prevNormalize = await import(path.join(prevSrc, 'gateway/src/astm/normalize.ts'));
  const prevAccessions = await import(path.join(prevSrc, 'gateway/src/astm/accessions.ts'));
  const prevTelemetry = await import(path.join(prevSrc, 'gateway/src/telemetry.ts'));
  const old = (await prevStore.EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 })) as StoreLike;
  try {
    const analyzer = { id: 'an-1', profile: profile.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } };
    const endpoint = new prevEndpoint.AstmEndpoint({
      analyzer,
      profile,
      store: old,
      telemetry: new prevTelemetry.Telemetry(),
      log: silentLogger,
      normalize: (text: string, ctx: { receivedAt: string }) =>
        prevAccessions.resolveAnalyzerResult(prevNormalize.normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt: ctx.receivedAt }), old),
    }) as EndpointLike;
    await sendAstm(endpoint, old, records);
  } finally {
    await old.close();
  }
}

describe('a run the release before took, resent past the upgrade window', () => {
  it('draws nothing more; a run measured after the upgrade draws once, and is not looked up in the row-index form', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    const ranAt = astmTime(Date.now() - 3_600_000);
    await takenByPrevious(dir, astmRun(astmTime(Date.now() - 3_000_000), ranAt));

    // This release, past the window (retentionDays 0: over at once, as it is retentionDays after the upgrade).
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);

    // The analyzer re-transmits the run from its memory.
    await sendAstm(astmEndpoint(store), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);

    // A run measured three days after the upgrade: drawn once, its keys of now alone looked up.
    const asked: string[] = [];
    const used = store.idempotencyKeyUsed.bind(store);
    store.idempotencyKeyUsed = (key: string) => {
      asked.push(key);
      return used(key);
    };
    const later = astmTime(Date.now() + 3 * 86_400_000);
    await sendAstm(astmEndpoint(store), store, astmRun(later, later, 'S-2'));
    expect(asked.filter((k) => k.includes('|consumption|'))).toEqual([]);
    expect(await draws(store)).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
  });

  it('a store this release began: no row-index look-up, whatever the run date', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    cleanups.push(() => store.close());
    const asked: string[] = [];
    const used = store.idempotencyKeyUsed.bind(store);
    store.idempotencyKeyUsed = (key: string) => {
      asked.push(key);
      return used(key);
    };
    const longAgo = astmTime(Date.now() - 90 * 86_400_000);
    await sendAstm(astmEndpoint(store), store, astmRun(astmTime(Date.now()), longAgo));
    expect(asked.filter((k) => k.includes('|consumption|'))).toEqual([]);
    expect(await draws(store)).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);
  });
});

// ------------------------------------------------------------------ cobas c 111: an undated calibration

/**
 * An undated calibration (c 111 M.CR without a calibration time) is dated by its message's
 * header: a re-send is dated when it is sent, so the run date does not tell it was taken before
 * the upgrade. Calibration-keys.ts looks its earlier forms up for good (an earlier release's
 * place, M|2 to M|32); the place the release before keyed it at, M|1, in the row-index form, is
 * one of them now. Before, past the window, the operator sending the calibration again from the
 * c 111's menu drew its reagent, cuvette and cleaner a second time.
 */
describe('cobas c 111: an undated calibration the release before took, sent again past the upgrade window', () => {
  const c111 = loadProfile('roche-cobas-c111');
  const HEADER = (h14: string): string => `H|\\^&|||c111^Roche^c111^4.2.2.1730^1^13147|||||host|RSUPL^REAL|P|1|${h14}`;
  const albumin = (seq: number): string =>
    `M|${seq}|CR^BM^c111^1|413^ALB|64521301|g/L|BS^ALB||N^R|2||A^$SYS$||1.212000E+01^5.310000E-01|SD^^^65432101|0^0.0012^0.0011^0.0013^0^0\\45.3^0.4210^0.4205^0.4215^0^0`;
  const message = (h14: string, ...records: string[]): string => [HEADER(h14), ...records, 'L|1|N'].join('\r');
  const inbound = (text: string, receivedAt: string) => ({
    kind: 'astm' as const,
    endpoint: 'c111-1',
    receivedAt,
    encoding: 'latin1',
    raw: Buffer.from(text, 'latin1'),
    status: 'accepted' as const,
    dedupKey: `astm|c111-1|${text.length}|${h14Of(text)}`,
    messageType: 'ASTM^CALIBRATION',
  });
  const h14Of = (text: string): string => text.split('\r')[0]!.split('|').at(-1)!;

  it('draws nothing more', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    const taken = message(astmTime(Date.now() - 3_600_000), albumin(1));
    {
      const prevStore = await import(path.join(prevSrc, 'gateway/src/store/event-store.ts'));
      const prevNormalize = await import(path.join(prevSrc, 'gateway/src/astm/normalize.ts'));
      const prevAccessions = await import(path.join(prevSrc, 'gateway/src/astm/accessions.ts'));
      const old = await prevStore.EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
      try {
        const receivedAt = new Date(Date.now() - 3_600_000).toISOString();
        const result = await prevAccessions.resolveAnalyzerResult(prevNormalize.normalizeAstmMessage(taken, { analyzerId: 'c111-1', endpoint: 'c111-1', profile: c111, receivedAt }), old);
        await old.commit(inbound(taken, receivedAt), result.events);
      } finally {
        await old.close();
      }
    }
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    cleanups.push(() => store.close());
    const calibrationDraws = async (): Promise<string[]> =>
      (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) => (e.event.type === 'consumable.used' ? [e.event.data.productCode] : [])).sort();
    const first = await calibrationDraws();
    expect(first.length).toBeGreaterThan(0);

    // The operator sends the calibration again from the analyzer's menu, 40 days later (past the
    // window, and past the margin for a run date: the message is dated when it is sent).
    const again = message(astmTime(Date.now() + 40 * 86_400_000), albumin(1));
    const receivedAt = new Date().toISOString();
    const result = await resolveAnalyzerResult(normalizeAstmMessage(again, { analyzerId: 'c111-1', endpoint: 'c111-1', profile: c111, receivedAt }), store);
    const committed = await store.commit(inbound(again, receivedAt), result.events);
    expect(committed.eventIds).toEqual([]);
    expect(await calibrationDraws()).toEqual(first);
  });
});

// ------------------------------------------------------------------ the table edited after the upgrade

/**
 * The upgrade is what lets IT edit a consumption table freely, and it may do so at once: a run the
 * release before took (row-index keys) and the analyzer sends again after the edit has its rows at
 * other indices. Before, only the row's index now was looked up: every row the edit moved drew its
 * reagent a second time. Now a draw not found there is looked up at the other indices the table
 * can have had, its earlier release's draws of the same per, test and product matched in table
 * order (the second identical row to the second).
 */
describe('a run the release before took, resent after IT edited the table', () => {
  const r = {
    glu: { per: 'test', test: 'GLU', productCode: 'GLU-R1', quantity: 0.2, uom: 'mL' },
    crea: { per: 'test', test: 'CREA', productCode: 'CREA-R1', quantity: 0.1, uom: 'mL' },
    dead: { per: 'run', productCode: 'DEAD', quantity: 0.05, uom: 'mL', deadVolume: true },
    tsh: { per: 'test', test: 'TSH', productCode: 'TSH-R1', quantity: 0.05, uom: 'mL' },
    cuvette: { per: 'test', test: '*', productCode: 'CUVETTE', quantity: 1, uom: 'Units' },
  } satisfies Record<string, ConsumptionRow>;

  async function takenByPreviousWith(dir: string, consumption: ConsumptionRow[], records: string[]): Promise<void> {
    const withTable: Profile = { ...generic, consumption };
    const prevStore = await import(path.join(prevSrc, 'gateway/src/store/event-store.ts'));
    const prevEndpoint = await import(path.join(prevSrc, 'gateway/src/ingress/astm/astm-endpoint.ts'));
    const prevNormalize = await import(path.join(prevSrc, 'gateway/src/astm/normalize.ts'));
    const prevAccessions = await import(path.join(prevSrc, 'gateway/src/astm/accessions.ts'));
    const prevTelemetry = await import(path.join(prevSrc, 'gateway/src/telemetry.ts'));
    const old = (await prevStore.EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 })) as StoreLike;
    try {
      const endpoint = new prevEndpoint.AstmEndpoint({
        analyzer: { id: 'an-1', profile: withTable.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } },
        profile: withTable,
        store: old,
        telemetry: new prevTelemetry.Telemetry(),
        log: silentLogger,
        normalize: (text: string, ctx: { receivedAt: string }) =>
          prevAccessions.resolveAnalyzerResult(prevNormalize.normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile: withTable, receivedAt: ctx.receivedAt }), old),
      }) as EndpointLike;
      await sendAstm(endpoint, old, records);
    } finally {
      await old.close();
    }
  }

  function endpointWith(store: EventStore, consumption: ConsumptionRow[]): AstmEndpoint<HostQuery> {
    const withTable: Profile = { ...generic, consumption };
    const analyzer = { id: 'an-1', profile: withTable.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } } as AnalyzerConfig;
    return new AstmEndpoint<HostQuery>({
      analyzer,
      profile: withTable,
      store,
      telemetry: new Telemetry(),
      log: silentLogger,
      normalize: (text, ctx) => resolveAnalyzerResult(normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile: withTable, receivedAt: ctx.receivedAt }), store),
    });
  }

  it('a row added at the top, the rows reordered, one removed: draws nothing more; a new run draws with the table as it is', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    const ranAt = astmTime(Date.now() - 3_600_000);
    await takenByPreviousWith(dir, [r.glu, r.crea, r.cuvette, r.dead], astmRun(astmTime(Date.now() - 3_000_000), ranAt));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 CUVETTE CREA', 'S-1 CUVETTE GLU', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);

    // IT adds TSH at the top and moves the dead volume first; the analyzer resends the run.
    await sendAstm(endpointWith(store, [r.tsh, r.dead, r.crea, r.glu, r.cuvette]), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);
    // IT removes the TSH row again and the cuvettes; another resend.
    await sendAstm(endpointWith(store, [r.dead, r.glu, r.crea]), store, astmRun(astmTime(Date.now() + 60_000), ranAt));
    expect(await draws(store)).toEqual(first);

    // A run first seen now draws once, with the table as it is.
    await sendAstm(endpointWith(store, [r.dead, r.glu, r.crea]), store, astmRun(astmTime(Date.now()), ranAt, 'S-2'));
    expect(await draws(store)).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
  });

  it('two identical rows moved apart, and a third added: the two draw nothing more, the third once', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    const ranAt = astmTime(Date.now() - 3_600_000);
    await takenByPreviousWith(dir, [r.glu, r.crea, r.glu, r.dead], astmRun(astmTime(Date.now() - 3_000_000), ranAt));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    cleanups.push(() => store.close());
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU', 'S-1 GLU-R1 GLU']);

    await sendAstm(endpointWith(store, [r.dead, r.glu, r.tsh, r.crea, r.glu]), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);
    await sendAstm(endpointWith(store, [r.glu, r.glu, r.glu, r.crea, r.dead]), store, astmRun(astmTime(Date.now() + 60_000), ranAt));
    expect(await draws(store)).toEqual([...first, 'S-1 GLU-R1 GLU'].sort());
  });

  /**
   * Two rows drawing the same product for the same test (x2), and IT removes the first: the run
   * drew both when it ran, so its resend draws nothing more (the remaining row takes the first
   * draw's key); a new run draws the one row left, with its own quantity.
   */
  it('of two identical rows, the first removed: a resend draws nothing more, a new run the row left', async () => {
    const store = await EventStore.open({ dataDir: await mkdtemp(path.join(work, 'data-')), pruneIntervalMs: 0, minFreeBytes: 0 });
    cleanups.push(() => store.close());
    const second = { ...r.glu, quantity: 0.3, note: 'second pipetting' };
    const ranAt = astmTime(Date.now() - 3_600_000);
    await sendAstm(endpointWith(store, [r.glu, second, r.dead]), store, astmRun(astmTime(Date.now() - 3_000_000), ranAt));
    const first = await draws(store);
    expect(first).toEqual(['S-1 DEAD run', 'S-1 GLU-R1 GLU', 'S-1 GLU-R1 GLU']);
    await sendAstm(endpointWith(store, [second, r.dead]), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);
    await sendAstm(endpointWith(store, [second, r.dead]), store, astmRun(astmTime(Date.now()), ranAt, 'S-2'));
    const quantities = (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) =>
      e.event.type === 'consumable.used' && e.event.data.specimenId === 'S-2' && e.event.data.productCode === 'GLU-R1' ? [e.event.data.quantity] : [],
    );
    expect(quantities).toEqual([0.3]);
  });
});

// ------------------------------------------------------------------ HL7 analyzer (Mindray BS)

describe('HL7 analyzer: a run the release before took, resent after IT edited the table', () => {
  const mindray = loadProfile('mindray-bs-series');
  const bsMessage = (controlId: string, msh7: string): string =>
    [
      `MSH|^~\\&|Mindray|BS-200|||${msh7}||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
      'PID|1|854||32|Anon||19830719000000|F',
      'OBR|1|B-2|32|Mindray^BS-200|N||20260114102500||||||||serum',
      'OBX|1|NM|1|t|35.000000|U/L|-||||F|||20260114102930||',
    ].join('\r');
  const hl7Config = (): Hl7EndpointConfig => endpointConfig({ id: 'bs-1', analyzer: 'bs-1', defaultCharset: 'utf8', maxConnections: 4 });

  async function sendHl7(endpoint: EndpointLike, messages: string[]): Promise<string[]> {
    await endpoint.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
    const acks: string[] = [];
    try {
      for (const m of messages) acks.push((await client.send(Buffer.from(m, 'latin1'))).toString('latin1'));
    } finally {
      await client.close();
      await endpoint.stop(2_000);
    }
    return acks;
  }

  it('a row added at the top and the table reversed: the resent run (another control id) draws nothing more', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    {
      const prevStore = await import(path.join(prevSrc, 'gateway/src/store/event-store.ts'));
      const prevEndpoint = await import(path.join(prevSrc, 'gateway/src/ingress/mllp/mllp-endpoint.ts'));
      const prevNormalize = await import(path.join(prevSrc, 'gateway/src/profiles/hl7-analyzer-normalize.ts'));
      const prevAccessions = await import(path.join(prevSrc, 'gateway/src/astm/accessions.ts'));
      const prevTelemetry = await import(path.join(prevSrc, 'gateway/src/telemetry.ts'));
      const old = (await prevStore.EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 })) as StoreLike;
      try {
        const endpoint = new prevEndpoint.MllpEndpoint({
          config: hl7Config(),
          store: old,
          telemetry: new prevTelemetry.Telemetry(),
          log: silentLogger,
          normalize: prevNormalize.createAnalyzerHl7Normalizer({ analyzerId: 'bs-1', profile: mindray }),
          resolveEvents: (draft: unknown) => prevAccessions.resolveAnalyzerResult(draft, old),
        }) as EndpointLike;
        const [ack] = await sendHl7(endpoint, [bsMessage('61', '20260114103000')]);
        expect(ack).toMatch(/MSA\|AA\|61/);
      } finally {
        await old.close();
      }
    }
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    cleanups.push(() => store.close());
    const first = await draws(store);
    expect(first).toEqual(['B-2 MR-BS-ALT ALT', 'B-2 MR-BS-CUVETTE-WASH ALT', 'B-2 MR-BS-PROBE-WASH run']);

    const edited: Profile = { ...mindray, consumption: [{ per: 'test', test: 'TSH', productCode: 'MR-BS-TSH', quantity: 1, uom: 'Units' }, ...[...mindray.consumption].reverse()] };
    const endpoint = new MllpEndpoint({
      config: hl7Config(),
      store,
      telemetry: new Telemetry(),
      log: silentLogger,
      normalize: createAnalyzerHl7Normalizer({ analyzerId: 'bs-1', profile: edited }),
      resolveEvents: (draft) => resolveAnalyzerResult(draft, store),
    });
    const [again] = await sendHl7(endpoint, [bsMessage('62', '20260114104500')]);
    expect(again).toMatch(/MSA\|AA\|62/);
    expect(await draws(store)).toEqual(first);
  });
});
