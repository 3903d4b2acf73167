/**
 * The LIS resends a message whose record in the store's message log is damaged on disk (a failed
 * length or CRC check: GW_STORE_CORRUPT, what a bad sector does). The lab has the message: its
 * dedup key, its events and their queue entries are in the index. Before, the resend found the
 * dedup key, the store failed reading the stored ACK to replay it, and the intake answered AE
 * "store unavailable", every time, for as long as the message was kept (30 days by default): the
 * LIS operator saw an error on a message the lab had, and the LIS kept resending.
 *
 * Now the resend is answered as the duplicate it is (AA, counted as a duplicate, a warning naming
 * the damaged record) and the record is written again from the resend (store README "The message
 * log", "A resend of a damaged record"): its bytes, its metadata and the bodies of its events, for
 * the same message id and event ids, no event created. A result dead-lettered as unreadable because
 * of the damage is readable again and an operator's replay delivers it.
 *
 * Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a real TCP port, the
 * project's MllpClient as the LIS; a byte of the record is changed in its segment file with the
 * store closed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { endpointConfig, field, segmentsOf } from '../fixtures/hl7/helpers.ts';
import { damageRecord as damage } from '../fixtures/store/damage.ts';

const oruFinal = (id: string, acc: string, msh7 = '20240101120000'): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|${msh7}||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|RE|${acc}\rOBR|1|${acc}|S-${id}|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\rOBX|2|NM|NA^Sodium||140|mmol/L|||||F\r`,
    'latin1',
  );

let dir = '';
let store: EventStore | undefined;
let endpoint: MllpEndpoint | undefined;
let client: MllpClient | undefined;
let logLines: Array<Record<string, unknown>> = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-resend-damaged-'));
  logLines = [];
});

afterEach(async () => {
  await stopGateway();
  await rm(dir, { recursive: true, force: true });
});

async function startGateway(): Promise<void> {
  store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
  const log = createLogger({ level: 'debug', write: (line) => logLines.push(JSON.parse(line) as Record<string, unknown>) });
  endpoint = new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log });
  await endpoint.start();
  client = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
}

async function stopGateway(): Promise<void> {
  await client?.close().catch(() => undefined);
  await endpoint?.stop();
  await store?.close();
  client = undefined;
  endpoint = undefined;
  store = undefined;
}

/** Change one byte inside a message's record in its segment file (the store closed). */
const damageRecord = (messageId: string): Promise<void> => damage(dir, messageId);

const live = (): EventStore => store as EventStore;
const msa = (reply: Buffer): { code?: string; controlId?: string } => {
  const frame = segmentsOf(reply);
  return { code: field(frame, 'MSA', 1), controlId: field(frame, 'MSA', 2) };
};

/** Send the original, note what the store made of it, and damage its record on disk. */
async function storedThenDamaged(id: string, acc: string): Promise<{ messageId: string; eventIds: string[]; keys: string[] }> {
  await startGateway();
  expect(msa(await client!.send(oruFinal(id, acc)))).toEqual({ code: 'AA', controlId: id });
  const [message] = await live().listMessages({ endpoint: 'lis' });
  const events = await live().listEvents({});
  expect(events.map((e) => e.event.type)).toEqual(['result.validated']);
  const stored = { messageId: message!.id, eventIds: events.map((e) => e.event.id), keys: events.map((e) => e.event.idempotencyKey) };
  await stopGateway();
  await damageRecord(stored.messageId);
  return stored;
}

describe('a resend of a message whose stored record is damaged', () => {
  it('is answered AA as a duplicate, and the record is written again from it, same message and event ids, no new event', async () => {
    const original = await storedThenDamaged('DMG-R1', 'ACC-R1');
    await startGateway();
    expect(isGatewayError(await live().getMessage(original.messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);
    const intakeBefore = live().intake();

    // The LIS resends it (MSH-7 refreshed, as a LIS does on a resend: the same message by its key).
    const resend = oruFinal('DMG-R1', 'ACC-R1', '20240102080000');
    const reply = await client!.send(resend);
    expect(msa(reply), 'a positive ACK for a message the lab has').toEqual({ code: 'AA', controlId: 'DMG-R1' });
    expect(live().intake()).toEqual({ ...intakeBefore, received: intakeBefore.received + 1, duplicates: intakeBefore.duplicates + 1 });
    const warning = logLines.find((l) => l.level === 'warn' && JSON.stringify(l).includes(original.messageId));
    expect(warning, 'a warning names the damaged record').toBeDefined();
    expect(warning).toMatchObject({ controlId: 'DMG-R1', messageId: original.messageId, rewritten: true, detail: expect.stringMatching(/GW_STORE_CORRUPT.*written again from this resend/) });

    // The record reads again: the resend's bytes, the same message, the ACK just sent.
    const read = await live().getMessage(original.messageId);
    expect(read?.raw.equals(resend)).toBe(true);
    expect(unwrapFrame(read!.ack!).equals(reply)).toBe(true);
    expect(read?.message).toMatchObject({ id: original.messageId, status: 'accepted', controlId: 'DMG-R1', eventIds: original.eventIds, duplicates: 1 });
    // No event was created; the stored one has its body back.
    const events = await live().listEvents({});
    expect(events.map((e) => e.event.id)).toEqual(original.eventIds);
    for (const [i, e] of events.entries()) {
      expect(e.bodyError).toBeUndefined();
      expect(e.event).toMatchObject({ id: original.eventIds[i], type: 'result.validated', idempotencyKey: original.keys[i], correlationId: 'ACC-R1', source: { messageId: original.messageId } });
    }
    expect(live().stats()).toMatchObject({ pending: 1, deadLettered: 0 });

    // Another resend is a plain duplicate: the ACK stored with the rewritten record, byte for byte.
    const again = await client!.send(resend);
    expect(again.equals(reply)).toBe(true);
    expect(live().intake().duplicates).toBe(intakeBefore.duplicates + 2);
    expect((await live().listEvents({})).map((e) => e.event.id)).toEqual(original.eventIds);

    // And after a restart the record still reads (the rewrite is durable, its pointer in LevelDB).
    await stopGateway();
    await startGateway();
    expect((await live().getMessage(original.messageId))?.raw.equals(resend)).toBe(true);
    expect((await live().getEvent(original.eventIds[0]!))?.event.type).toBe('result.validated');
  });

  it('a result dead-lettered as unreadable because of the damage: readable again after the resend, an operator replay delivers it', async () => {
    const original = await storedThenDamaged('DMG-R2', 'ACC-R2');
    await startGateway();
    // The relay comes to the order: its head cannot be read, a dead letter (README "Event bodies").
    expect(await live().lease({ limit: 10 })).toEqual([]);
    const dead = await live().getEvent(original.eventIds[0]!);
    expect(dead).toMatchObject({ state: 'dead', event: { type: 'unreadable' } });
    expect(dead?.deadReason).toMatch(/GW_STORE_CORRUPT/);

    expect(msa(await client!.send(oruFinal('DMG-R2', 'ACC-R2')))).toEqual({ code: 'AA', controlId: 'DMG-R2' });

    // Still a dead letter (never replayed by itself), but with its body: an operator sees what it is.
    const readable = await live().getEvent(original.eventIds[0]!);
    expect(readable).toMatchObject({ state: 'dead', event: { type: 'result.validated', correlationId: 'ACC-R2' } });
    expect(readable?.bodyError).toBeUndefined();
    expect(live().stats()).toMatchObject({ deadLettered: 1 });
    expect(await live().lease({ limit: 10 })).toEqual([]);

    await live().replay(original.eventIds[0]!, 'admin', 'record rewritten from the LIS resend');
    const [lease] = await live().lease({ limit: 10, maxPerPartition: 10 });
    expect(lease?.events.map((e) => e.event.id)).toEqual(original.eventIds);
    expect(lease?.events.every((e) => e.event.type === 'result.validated' && e.bodyError === undefined)).toBe(true);
    await live().complete(lease!, original.eventIds.map((eventId) => ({ eventId, outcome: 'delivered' as const })));
    expect(live().stats()).toMatchObject({ delivered: 1, deadLettered: 0, pending: 0 });
  });
});
