/**
 * An analyzer on an ASTM link resends a result message whose record in the store's message log is
 * damaged on disk (a failed length or CRC check: GW_STORE_CORRUPT, what a bad sector does). The
 * lab has the message: its dedup key (endpoint + SHA-256 of the text), its events and their queue
 * entries are in the index.
 *
 * The resend is answered as the duplicate it is: the frame that ends it is ACKed as the first time
 * (not NAKed, which would make the analyzer retransmit it and give up with an error on its screen),
 * it is counted as a duplicate, no event is created, the record is written again from the resend
 * (store README "A resend of a damaged record") and the message reads again. And the operator hears
 * of the damage: a warning names the message id and says the record was written again, as on an
 * HL7 link (test/integration/mllp-resend-damaged-record.test.ts); before, an ASTM link said
 * nothing of it.
 *
 * Real parts: a LevelDB EventStore in a temp dir, the AstmEndpoint listening on a real TCP port
 * with the generic-astm profile and the real record layer, the analyzer simulator speaking E1381 on
 * a socket; a byte of the record is changed in its segment file with the store closed.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { HostQuery } from '../../gateway/src/astm/types.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { connectTcpSim, type Cleanups } from '../fixtures/astm-link/sim-wires.ts';
import { damageRecord } from '../fixtures/store/damage.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const profile = loadProfile('generic-astm', path.join(repoRoot, 'firmware-profiles'));
/** A patient result (H.3 GEN-0001, accession ACC-26-0001, GLU and CREA): one frame per record. */
const RECORDS = readFileSync(path.join(repoRoot, 'test/fixtures/astm/generic-astm/patient-result.astm'), 'latin1')
  .split(/\r\n|\r|\n/)
  .filter(Boolean);
const ANALYZER = 'chem-1';

let dir = '';
let store: EventStore | undefined;
let endpoint: AstmEndpoint<HostQuery> | undefined;
const cleanups: Cleanups = [];
let logLines: Array<Record<string, unknown>> = [];
let intake: Array<TelemetryEvents['intake.message']> = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-astm-resend-damaged-'));
  logLines = [];
  intake = [];
});

afterEach(async () => {
  await stopGateway();
  await rm(dir, { recursive: true, force: true });
});

async function startGateway(): Promise<void> {
  store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
  const log = createLogger({ level: 'debug', write: (line) => logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const telemetry = new Telemetry();
  telemetry.on('intake.message', (e) => intake.push(e));
  const ep = new AstmEndpoint({
    analyzer: { id: ANALYZER, profile: profile.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } },
    profile,
    store,
    telemetry,
    log,
    normalize: (text, ctx) => normalizeAstmMessage(text, { analyzerId: ANALYZER, endpoint: ANALYZER, profile, receivedAt: ctx.receivedAt }),
  });
  endpoint = ep;
  await ep.start();
}

async function stopGateway(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
  await endpoint?.stop(2_000);
  await store?.close();
  endpoint = undefined;
  store = undefined;
}

const live = (): EventStore => store as EventStore;

/** The analyzer connects (a new connection, a new session) and sends the result message. */
async function analyzerSends(): Promise<{ replies: string; sent: Buffer }> {
  const { sim } = await connectTcpSim(endpoint!.address()!.port, cleanups);
  return sim.sendMessage(RECORDS);
}

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const ACK_ALL = '<ACK>'.repeat(RECORDS.length + 1);

describe('ASTM: a resend of a message whose stored record is damaged', () => {
  it('is ACKed as the first time, counted as a duplicate, no new event, a warning names the record written again, and the message reads again', async () => {
    // The first time: ENQ and every frame ACKed, the message stored with its events.
    await startGateway();
    const first = await analyzerSends();
    expect(first.replies).toBe(ACK_ALL);
    const [message] = await live().listMessages({ endpoint: ANALYZER });
    expect(message).toMatchObject({ status: 'accepted', controlId: 'GEN-0001' });
    const messageId = message!.id;
    const events = await live().listEvents({});
    expect(events.map((e) => e.event.type).sort()).toEqual(['specimen.received', 'test.completed', 'test.completed']);
    const eventIds = events.map((e) => e.event.id);
    await stopGateway();

    // A bad sector in its record; the gateway starts again and cannot read the message.
    await damageRecord(dir, messageId);
    await startGateway();
    expect(isGatewayError(await live().getMessage(messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);
    const intakeBefore = live().intake();

    // The analyzer sends the same message again, in a new session on a new connection.
    const resend = await analyzerSends();
    expect(resend.replies, 'ENQ and every frame ACKed, the end frame too (not NAKed)').toBe(ACK_ALL);
    await until(() => intake.length === 2);
    expect(intake.map((e) => e.outcome)).toEqual(['accepted', 'duplicate']);
    expect(live().intake()).toEqual({ ...intakeBefore, received: intakeBefore.received + 1, duplicates: intakeBefore.duplicates + 1 });

    // No event was created; the stored ones read with their bodies.
    const after = await live().listEvents({});
    expect(after.map((e) => e.event.id)).toEqual(eventIds);
    for (const e of after) expect(e.bodyError).toBeUndefined();
    expect(await live().listMessages({ endpoint: ANALYZER })).toHaveLength(1);

    // The operator hears of it: the damaged record, and that it was written again from the resend.
    const warning = logLines.find((l) => l.level === 'warn' && l.msg === 'resend of a message whose stored record is damaged: answered as a duplicate');
    expect(warning, 'a warning names the damaged record').toBeDefined();
    expect(warning).toMatchObject({ controlId: 'GEN-0001', messageId, rewritten: true, detail: expect.stringMatching(/GW_STORE_CORRUPT.*written again from this resend/) });

    // The message reads again: the resend's bytes, the same message id, its ACK.
    const read = await live().getMessage(messageId);
    expect(read?.raw.equals(resend.sent)).toBe(true);
    expect(read?.ack?.toString('latin1')).toBe('\x06');
    expect(read?.message).toMatchObject({ id: messageId, status: 'accepted', controlId: 'GEN-0001', eventIds, duplicates: 1 });
  });
});
