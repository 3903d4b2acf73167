/**
 * A reagent consumption's identity is what its row of the profile's `consumption` table is, not
 * where the row stands. Until now each `consumable.used` key ended with the row's index in the
 * table: when IT added a row above, removed one or reordered the table, a run the analyzer sent
 * again (a resend of a message whose ACK it missed, a result the operator re-transmits) got new
 * keys for every row below the edit, the store took them as new, and the relay drew the reagent
 * from Odoo's stock a second time. Now a draw is known by its per, its test (or the run) and its
 * product, with an occurrence number only among the run's draws identical in those (two identical
 * rows are two draws, as before): profiles/consumption.ts. A draw an earlier release stored under
 * the row-index key is still found after the upgrade, while the store may hold such keys
 * (profiles/consumption-keys.ts).
 *
 * Real parts: the LevelDB store in a temp dir, the ASTM endpoint over TCP (and the HL7 analyzer
 * endpoint over MLLP) wired as gateway.ts wires them (normalize, resolveAnalyzerResult, commit).
 * The earlier release is the tree before this change (PREVIOUS, from `git archive`): its store and
 * endpoints take the first run on the same data dir.
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
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { ConsumptionRow, Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { connectTcpSim } from '../fixtures/astm-link/sim-wires.ts';
import { endpointConfig } from '../fixtures/hl7/helpers.ts';
import { unpackPreviousRelease } from '../fixtures/previous-release.ts';

/** The tree before consumption keys stopped naming the row index (HEAD when this test was written). */
const PREVIOUS = '1c29f8b';

let work: string;
let prevSrc: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'lgw-s23-consumption-'));
  prevSrc = await unpackPreviousRelease(PREVIOUS, work);
}, 120_000);

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  return mkdtemp(path.join(work, 'data-'));
}

async function openStore(dir: string, extra: Record<string, unknown> = {}): Promise<EventStore> {
  const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, ...extra });
  cleanups.push(() => store.close());
  return store;
}

async function until(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 10));
  expect(await cond()).toBe(true);
}

interface StoreLike {
  listMessages(query: { limit: number }): Promise<unknown[]>;
  close(): Promise<void>;
}
interface EndpointLike {
  start(): Promise<void>;
  stop(deadline?: number): Promise<void>;
  address(): { port: number } | undefined;
}

// ------------------------------------------------------------------ ASTM (generic profile)

const generic = loadProfile('generic-astm');
const row = {
  glu: { per: 'test', test: 'GLU', productCode: 'GLU-R1', quantity: 0.2, uom: 'mL' },
  crea: { per: 'test', test: 'CREA', productCode: 'CREA-R1', quantity: 0.1, uom: 'mL' },
  dead: { per: 'run', productCode: 'DEAD', quantity: 0.05, uom: 'mL', deadVolume: true },
  tsh: { per: 'test', test: 'TSH', productCode: 'TSH-R1', quantity: 0.05, uom: 'mL' },
  cuvette: { per: 'test', test: '*', productCode: 'CUVETTE', quantity: 1, uom: 'Units' },
  qcWash: { per: 'run', runTypes: ['qc'], productCode: 'QC-WASH', quantity: 1, uom: 'mL' },
} satisfies Record<string, ConsumptionRow>;
const astmProfile = (...consumption: ConsumptionRow[]): Profile => ({ ...generic, consumption });

/** One run of GLU and CREA on specimen `specimen`, sent in a session at `h14` (a resend has another). */
const astmRun = (h14: string, specimen = 'S-1'): string[] => [
  `H|\\^&|||M1|||||||P|1|${h14}`,
  'P|1',
  `O|1|${specimen}||^^^GLU\\^^^CREA|R|20260114080000`,
  'R|1|^^^GLU|5.0|mmol/L||||F||op||20260114090000',
  'R|2|^^^CREA|80|umol/L||||F||op||20260114090000',
  'L|1|N',
];

/** The run sent to an ASTM endpoint on `store` (ACKed, committed), the endpoint stopped after. */
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

/** This release's ASTM endpoint, wired as gateway.ts #addAstm wires it. */
function astmEndpoint(store: EventStore, profile: Profile): AstmEndpoint<HostQuery> {
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

/** The draws the store holds: `<specimen> <product> <test or run>`, sorted. */
async function draws(store: EventStore): Promise<string[]> {
  const events = await store.listEvents({ type: 'consumable.used', limit: 1000 });
  return events.flatMap((e) => (e.event.type === 'consumable.used' ? [`${e.event.data.specimenId} ${e.event.data.productCode} ${e.event.data.testCode ?? 'run'}`] : [])).sort();
}

describe('ASTM: a resend after the consumption table was edited', () => {
  it('a row inserted above, or the rows reordered: the resent run draws nothing more', async () => {
    const store = await openStore(await dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);

    // IT adds a TSH reagent at the top of the table (not part of this run); the analyzer resends.
    await sendAstm(astmEndpoint(store, astmProfile(row.tsh, row.glu, row.crea, row.dead)), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);

    // IT reorders the table, and removes the TSH row again; another resend.
    await sendAstm(astmEndpoint(store, astmProfile(row.dead, row.crea, row.glu)), store, astmRun('20260114100000'));
    expect(await draws(store)).toEqual(first);
  });

  it('a row limited to QC runs inserted above: a patient run resent draws nothing more', async () => {
    const store = await openStore(await dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);
    await sendAstm(astmEndpoint(store, astmProfile(row.qcWash, row.glu, row.crea, row.dead)), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);
  });

  it('two identical rows are two draws, once each; a resend, also after a row went between them, draws nothing more', async () => {
    const store = await openStore(await dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.glu, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);
    expect(first).toEqual(['S-1 DEAD run', 'S-1 GLU-R1 GLU', 'S-1 GLU-R1 GLU']);

    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.glu, row.dead)), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead, row.glu)), store, astmRun('20260114100000'));
    // The CREA row is new for this run: its one draw, nothing else.
    expect(await draws(store)).toEqual([...first, 'S-1 CREA-R1 CREA'].sort());
  });

  it('a new row draws once: on a new run with the others, on a resent run alone', async () => {
    const store = await openStore(await dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);

    // A cuvette per test, added at the top.
    const edited = astmProfile(row.cuvette, row.glu, row.crea, row.dead);
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114110000', 'S-2'));
    const second = await draws(store);
    expect(second).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 CUVETTE CREA', 'S-2 CUVETTE GLU', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
    // The first run resent: its cuvettes (the row is new for it), nothing else.
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114113000'));
    expect(await draws(store)).toEqual([...second, 'S-1 CUVETTE CREA', 'S-1 CUVETTE GLU'].sort());
    // And again: nothing more.
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114120000'));
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114120500', 'S-2'));
    expect(await draws(store)).toEqual([...second, 'S-1 CUVETTE CREA', 'S-1 CUVETTE GLU'].sort());
  });
});

// ------------------------------------------------------------------ HL7 analyzer (Mindray BS)

const mindray = loadProfile('mindray-bs-series');
const bsMessage = (controlId: string, msh7: string, barcode = 'B-2'): string =>
  [
    `MSH|^~\\&|Mindray|BS-200|||${msh7}||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
    'PID|1|854||32|Anon||19830719000000|F',
    `OBR|1|${barcode}|32|Mindray^BS-200|N||20260114102500||||||||serum`,
    'OBX|1|NM|1|t|35.000000|U/L|-||||F|||20260114102930||',
  ].join('\r');

/** This release's HL7 analyzer endpoint, wired as gateway.ts wires it. */
function hl7AnalyzerEndpoint(store: EventStore, profile: Profile): MllpEndpoint {
  return new MllpEndpoint({
    config: hl7Config(),
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
    normalize: createAnalyzerHl7Normalizer({ analyzerId: 'bs-1', profile }),
    resolveEvents: (draft) => resolveAnalyzerResult(draft, store),
  });
}

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

const extraRow: ConsumptionRow = { per: 'test', test: 'TSH', productCode: 'MR-BS-TSH', quantity: 1, uom: 'Units' };

describe('HL7 analyzer: a resend after the consumption table was edited', () => {
  it('a row inserted above: the resent run draws nothing more', async () => {
    const store = await openStore(await dataDir());
    const [ack] = await sendHl7(hl7AnalyzerEndpoint(store, mindray), [bsMessage('61', '20260114103000')]);
    expect(ack).toMatch(/MSA\|AA\|61/);
    const first = await draws(store);
    expect(first).toEqual(['B-2 MR-BS-ALT ALT', 'B-2 MR-BS-CUVETTE-WASH ALT', 'B-2 MR-BS-PROBE-WASH run']);

    const [again] = await sendHl7(hl7AnalyzerEndpoint(store, { ...mindray, consumption: [extraRow, ...mindray.consumption] }), [bsMessage('62', '20260114104500')]);
    expect(again).toMatch(/MSA\|AA\|62/);
    expect(await draws(store)).toEqual(first);
  });
});

// ------------------------------------------------------------------ upgrade

describe('upgrade: draws an earlier release stored under row-index keys', () => {
  it('ASTM: the run the earlier release took, resent after the upgrade, draws nothing more; a new run draws', async () => {
    const dir = await dataDir();
    const profile = astmProfile(row.glu, row.crea, row.dead);
    {
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
          normalize: (text: string, ctx: { receivedAt: string }) => prevAccessions.resolveAnalyzerResult(prevNormalize.normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt: ctx.receivedAt }), old),
        }) as EndpointLike;
        await sendAstm(endpoint, old, astmRun('20260114090500'));
      } finally {
        await old.close();
      }
    }
    const store = await openStore(dir);
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);
    expect(store.mayHoldEarlierReleaseKeys()).toBe(true);

    // The analyzer resends the run after the upgrade (the table unchanged).
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);
    // A run first seen now draws, once.
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114110000', 'S-2'));
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114110500', 'S-2'));
    expect(await draws(store)).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
  });

  it('HL7 analyzer: the run the earlier release took, resent after the upgrade, draws nothing more', async () => {
    const dir = await dataDir();
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
    const store = await openStore(dir);
    const first = await draws(store);
    expect(first).toEqual(['B-2 MR-BS-ALT ALT', 'B-2 MR-BS-CUVETTE-WASH ALT', 'B-2 MR-BS-PROBE-WASH run']);

    const [again] = await sendHl7(hl7AnalyzerEndpoint(store, mindray), [bsMessage('62', '20260114104500')]);
    expect(again).toMatch(/MSA\|AA\|62/);
    expect(await draws(store)).toEqual(first);
  });

  it('a store this release began is not looked up under row-index keys: no store read beyond the new key', async () => {
    const store = await openStore(await dataDir());
    expect(store.mayHoldEarlierReleaseKeys()).toBe(false);
    const profile = astmProfile(row.glu, row.crea, row.dead);
    const asked: string[] = [];
    const used = store.idempotencyKeyUsed.bind(store);
    store.idempotencyKeyUsed = (key: string) => {
      asked.push(key);
      return used(key);
    };
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114090500'));
    expect(asked.filter((k) => k.includes('|consumption|'))).toEqual([]);
    expect(await draws(store)).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);
  });
});
