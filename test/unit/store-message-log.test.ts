import { readdir, readFile, stat, open as openFile } from 'node:fs/promises';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { MessageLog } from '../../gateway/src/store/message-log.ts';
import type { Payload } from '../../gateway/src/store/message-record.ts';
import type { InboundMessage } from '../../gateway/src/store/types.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { eio, hookFileHandle } from '../fixtures/store/file-handle-hook.ts';
import { inboundMessage, resultValidated as validated } from '../fixtures/store/inbound.ts';

const tmp = useTempStore('lgw-msglog-', { pruneIntervalMs: 0, healthCheckIntervalMs: 50, minFreeBytes: 0, messageLogMinBatch: 1 });
const logDir = (): string => path.join(tmp.dir, 'store', 'messages');
/** The message log's zero fill ahead of the appends (message-log.ts FILL_BYTES). */
const FILL = 512 * 1024;
const segmentFiles = async (): Promise<string[]> => (await readdir(logDir())).filter((f) => f.endsWith('.seg')).sort();

// messageLogMinBatch 1 (above, also the default): every message goes to the log.
const openStore = tmp.open;

/** Latin-1 bytes with a patient name, a framed ACK and a search term. */
function message(controlId: string, extra: Partial<InboundMessage> = {}): InboundMessage {
  return inboundMessage(controlId, {
    encoding: 'latin1',
    raw: Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20260101||ORU^R01|${controlId}|P|2.5\rPID|1||M1||M\xfcller^J\r`, 'latin1'),
    ack: Buffer.from(`\x0bMSH|^~\\&|GW|LAB|LIS|LAB|20260101||ACK|A${controlId}|P|2.5\rMSA|AA|${controlId}\r\x1c\r`, 'latin1'),
    searchTerms: [`ACC-${controlId}`],
    ...extra,
  });
}



/**
 * The disk refuses the next write to a file: a real file handle's writev fails with EIO, once the
 * following write has been issued beside it; later writes go through. `restore` puts writev back.
 */
async function failFirstWriteBesideSecond(): Promise<{ restore: () => void; calls: () => number }> {
  let secondIssued!: () => void;
  const second = new Promise<void>((r) => (secondIssued = r));
  return hookFileHandle(tmp.dir, 'writev', async (call, original) => {
    if (call === 1) {
      await second;
      throw eio();
    }
    if (call === 2) secondIssued();
    return original();
  });
}

describe('message log', () => {
  it('keeps each message byte-exact in the log, with LevelDB holding only a pointer; survives a restart', async () => {
    const s = await openStore();
    const sent = message('L1');
    const { messageId } = await s.commit(sent, [validated('A1', 'k-l1')]);
    // The raw bytes are in a segment file, not in LevelDB.
    const segs = await segmentFiles();
    expect(segs).toHaveLength(1);
    const segBytes = await readFile(path.join(logDir(), segs[0] as string));
    expect(segBytes.includes(sent.raw)).toBe(true);
    await s.close();

    const db = new ClassicLevel<string, Buffer>(path.join(tmp.dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    let pointer: Buffer | undefined;
    for await (const [k, v] of db.iterator()) {
      expect(v.includes(Buffer.from('M\xfcller', 'latin1'))).toBe(false);
      if (k === `!m!${messageId}`) pointer = v;
    }
    await db.close();
    expect(pointer?.length).toBe(17);

    const again = await openStore();
    const stored = await again.getMessage(messageId);
    expect(stored?.raw.equals(sent.raw)).toBe(true);
    expect(stored?.ack?.equals(sent.ack as Buffer)).toBe(true);
    expect(stored?.message).toMatchObject({ controlId: 'L1', status: 'accepted', encoding: 'latin1', duplicates: 0 });
    // A new segment per open: appends never follow a torn tail.
    expect(await segmentFiles()).toHaveLength(2);
    const listed = await again.listMessages({ q: 'ACC-L1' });
    expect(listed.map((m) => m.id)).toEqual([messageId]);
  });

  it('lone messages arriving while the previous one is being written are written beside it; every one is kept once, in order', async () => {
    const s = await openStore({ messageLogMinBatch: 1 });
    const commits: Array<Promise<{ messageId: string }>> = [];
    // Each message arrives a moment after the previous one, while its synced write is in flight.
    for (let i = 0; i < 200; i++) {
      commits.push(s.commit(message(`B${i}`), [validated(`AB${i}`, `k-b${i}`)]));
      await new Promise<void>((r) => setImmediate(r));
    }
    const ids = (await Promise.all(commits)).map((c) => c.messageId);
    expect(s.commitStats.besideStage1).toBeGreaterThan(0);
    await s.close();
    const again = await openStore({ messageLogMinBatch: 1 });
    expect(again.replayedBatches).toBe(0);
    for (let i = 0; i < ids.length; i++) expect((await again.getMessage(ids[i]!))?.message.controlId).toBe(`B${i}`);
    expect(again.stats().pending).toBe(200);
    expect(again.intake()).toMatchObject({ received: 200, accepted: 200, duplicates: 0 });
    // A resend of any of them is a duplicate.
    expect((await again.commit(message('B137'), [validated('AB137', 'k-b137')])).duplicate).toBe(true);
  });

  it('keeps the messages of a small batch inline in LevelDB (one fsync), those of a large batch in the log', async () => {
    const s = await openStore({ messageLogMinBatch: 4 });
    const lone = await s.commit(message('S1'), []);
    const burst = await Promise.all(['B1', 'B2', 'B3', 'B4', 'B5'].map((c) => s.commit(message(c), [])));
    const segs = await segmentFiles();
    const segBytes = await readFile(path.join(logDir(), segs[0] as string));
    expect(segBytes.includes(message('S1').raw)).toBe(false);
    for (const c of ['B1', 'B5']) expect(segBytes.includes(message(c).raw)).toBe(true);
    // Both read back the same way, and both survive a restart.
    await s.close();
    const again = await openStore({ messageLogMinBatch: 4 });
    for (const [id, c] of [[lone.messageId, 'S1'], [burst[4]!.messageId, 'B5']] as const) {
      const stored = await again.getMessage(id);
      expect(stored?.raw.equals(message(c).raw)).toBe(true);
      expect(stored?.ack?.equals(message(c).ack as Buffer)).toBe(true);
    }
    // A duplicate of the inline one moves it to the log with its count.
    await again.commit(message('S1'), []);
    await again.flush();
    expect((await again.getMessage(lone.messageId))?.message.duplicates).toBe(1);
  });

  it('counts duplicates in the pointer and replays the stored ACK after a restart', async () => {
    const s = await openStore();
    const first = await s.commit(message('D1'), []);
    await s.close();
    const again = await openStore();
    const dup = await again.commit(message('D1', { ack: Buffer.from('another ACK') }), []);
    expect(dup.duplicate).toBe(true);
    expect(dup.ack?.equals(message('D1').ack as Buffer)).toBe(true);
    await again.flush();
    expect((await again.getMessage(first.messageId))?.message.duplicates).toBe(1);
  });

  it('a segment left with records nobody points at (crash between the two writes) is removed at start-up', async () => {
    const s = await openStore();
    const kept = await s.commit(message('K1'), []);
    await s.close();
    // The records of a batch whose LevelDB write never happened: a segment of its own.
    const orphan = await MessageLog.open(logDir());
    await orphan.append([Buffer.from('never acknowledged')]);
    await orphan.close();
    expect(await segmentFiles()).toEqual(['0000000001.seg', '0000000002.seg']);
    const again = await openStore();
    // The first segment (pointed at) and the new active one stay; the orphan goes.
    expect(await segmentFiles()).toEqual(['0000000001.seg', '0000000003.seg']);
    expect((await again.getMessage(kept.messageId))?.raw.equals(message('K1').raw)).toBe(true);
  });

  it('a segment made ready ahead and left by a crash is removed at start-up, with the orphan records before it', async () => {
    const s = await openStore();
    const kept = await s.commit(message('K2'), []);
    await s.close();
    // Records nobody points at, far enough into segment 2 that segment 3 is made ready; then the
    // process dies (the log is never closed, so the ready segment stays on disk).
    const orphan = await MessageLog.open(logDir(), { segmentBytes: 8 * 1024 * 1024 });
    for (let i = 0; i < 110; i++) await orphan.append([Buffer.alloc(64 * 1024, 'o')]);
    const ready = path.join(logDir(), '0000000003.seg');
    for (let i = 0; i < 300 && ((await stat(ready).catch(() => undefined))?.size ?? 0) < FILL; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await segmentFiles()).toEqual(['0000000001.seg', '0000000002.seg', '0000000003.seg']);
    const again = await openStore();
    expect(await segmentFiles()).toEqual(['0000000001.seg', '0000000004.seg']);
    expect((await again.getMessage(kept.messageId))?.raw.equals(message('K2').raw)).toBe(true);
    const next = await again.commit(message('K3'), []);
    expect((await again.getMessage(next.messageId))?.raw.equals(message('K3').raw)).toBe(true);
  });

  it('a damaged record is reported, never returned as other bytes', async () => {
    const s = await openStore();
    const { messageId } = await s.commit(message('X1'), []);
    await s.close();
    const file = path.join(logDir(), '0000000001.seg');
    const fh = await openFile(file, 'r+');
    await fh.write(Buffer.from('#'), 0, 1, 20); // one byte inside the payload
    await fh.close();
    const again = await openStore();
    const err = await again.getMessage(messageId).catch((e: unknown) => e);
    expect(isGatewayError(err) && err.code).toBe('GW_STORE_CORRUPT');
    // The listing skips it rather than failing the whole page.
    expect(await again.listMessages({})).toEqual([]);
  });

  it('starts a new segment at the size limit and deletes a segment once every message in it is pruned', async () => {
    const s = await openStore({ messageLogSegmentBytes: 400 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await s.commit(message(`P${i}`), [])).messageId);
    expect((await segmentFiles()).length).toBeGreaterThan(2);
    await s.prune(Date.now() + 31 * 86_400_000);
    for (const id of ids) expect(await s.getMessage(id)).toBeUndefined();
    // Only the active segment remains.
    expect(await segmentFiles()).toHaveLength(1);
  });

  it('retention never deletes a segment whose batch is still being written (segments rolling under load)', async () => {
    // Every batch starts a new segment; retention runs while batches are in flight. A segment the
    // log just moved past holds a batch whose pointers are not counted yet: it must stay.
    const s = await openStore({ messageLogSegmentBytes: 400 });
    const ids: string[] = [];
    let running = true;
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; running; n++) ids.push((await s.commit(message(`R${w}-${n}`), [])).messageId);
    };
    const writers = Array.from({ length: 64 }, (_, w) => writer(w)); // enough waiting writes for the stages to overlap
    for (let round = 0; round < 30; round++) await s.prune();
    running = false;
    await Promise.all(writers);
    expect(ids.length).toBeGreaterThan(100);
    for (const id of ids) expect((await s.getMessage(id))?.raw.length).toBeGreaterThan(0);
  });

  it('a message kept past the age moves to the active segment, so its old segment can go; it reads back identical', async () => {
    // Segments of a few messages each: the rejected one shares its segment with accepted ones
    // (a segment holding only kept messages has nothing to free and stays where it is).
    const s = await openStore({ messageLogSegmentBytes: 4096 });
    // A rejected message keeps a 180-day floor; the accepted ones around it go after 30 days.
    const rejected = await s.commit(message('R1', { status: 'rejected', rejectReason: 'unsupported message type' }), []);
    const others: string[] = [];
    for (let i = 0; i < 20; i++) others.push((await s.commit(message(`O${i}`), [])).messageId);
    const before = await segmentFiles();
    expect(before.length).toBeGreaterThan(2);
    await s.prune(Date.now() + 31 * 86_400_000);
    await s.prune(Date.now() + 31 * 86_400_000);
    const after = await segmentFiles();
    expect(after).toHaveLength(1); // the active segment, holding the moved message
    expect(after[0]).not.toBe(before[0]);
    const stored = await s.getMessage(rejected.messageId);
    expect(stored?.raw.equals(message('R1').raw)).toBe(true);
    expect(stored?.message.rejectReason).toBe('unsupported message type');
    for (const id of others) expect(await s.getMessage(id)).toBeUndefined();
    // ...and survives a restart at its new place.
    await s.close();
    const again = await openStore();
    expect((await again.getMessage(rejected.messageId))?.raw.equals(message('R1').raw)).toBe(true);
  });

  it('reads messages stored by the earlier layout (metadata JSON, raw and ACK under their own keys)', async () => {
    await (await openStore()).close();
    const db = new ClassicLevel<string, string | Buffer>(path.join(tmp.dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    const id = '019000000000000001aaaaaa';
    const record = { id, kind: 'hl7', endpoint: 'lis', receivedAt: '2026-01-01T00:00:00.000Z', encoding: 'ascii', status: 'accepted', size: 3, eventIds: [], duplicates: 2, controlId: 'OLD1' };
    await db.put(`!m!${id}`, JSON.stringify(record));
    await db.put(`!r!${id}`, Buffer.from('MSH'), { valueEncoding: 'buffer' });
    await db.put(`!a!${id}`, Buffer.from('ACK'), { valueEncoding: 'buffer' });
    await db.close();
    const s = await openStore();
    const stored = await s.getMessage(id);
    expect(stored?.raw.toString()).toBe('MSH');
    expect(stored?.ack?.toString()).toBe('ACK');
    expect(stored?.message.duplicates).toBe(2);
    expect((await s.listMessages({})).map((m) => m.controlId)).toEqual(['OLD1']);
  });

  it('zero-fills the active segment ahead of the appends, and records written over the fill read back', async () => {
    const log = await MessageLog.open(logDir());
    const first = await log.append([Buffer.from('before the fill is known')]);
    // Appends go on while the fill runs; wait until the file has room ahead of the end.
    const file = path.join(logDir(), '0000000001.seg');
    for (let i = 0; i < 200 && (await stat(file)).size < FILL; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await stat(file)).size).toBeGreaterThanOrEqual(FILL);
    const later = await log.append(Array.from({ length: 50 }, (_, i) => Buffer.from(`record ${i}`)));
    expect((await log.read(first[0]!)).toString()).toBe('before the fill is known');
    expect((await log.read(later[49]!)).toString()).toBe('record 49');
    // Past the last record there are only zeros: a pointer there is refused.
    const err = await log.read({ segment: 1, offset: later[49]!.offset + 40, length: 10 }).catch((e: unknown) => e);
    expect(isGatewayError(err) && err.code).toBe('GW_STORE_CORRUPT');
    await log.close();
  });

  it('makes the next segment ready (created, zero-filled) before the active one is full; the roll switches to it; an unused one goes at close', async () => {
    // 8 MiB segments (the smallest that are prepared ahead): the next one once 2 MiB (a quarter) are left.
    const segmentBytes = 8 * 1024 * 1024;
    const log = await MessageLog.open(logDir(), { segmentBytes });
    const next = path.join(logDir(), '0000000002.seg');
    const record = Buffer.alloc(64 * 1024, 'r');
    const pointers = [];
    for (let i = 0; i < 90; i++) pointers.push(...(await log.append([record])));
    // 5.6 MiB in: only the active segment.
    expect(await segmentFiles()).toEqual(['0000000001.seg']);
    for (let i = 0; i < 12; i++) pointers.push(...(await log.append([record])));
    // 6.4 MiB in, still in segment 1: segment 2 exists and is filled in the background.
    expect(pointers.every((p) => p.segment === 1)).toBe(true);
    for (let i = 0; i < 300 && ((await stat(next).catch(() => undefined))?.size ?? 0) < FILL; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await stat(next)).size).toBe(FILL);
    expect(log.segments()).toEqual([1]); // not a segment of the log until it is active
    // Past 8 MiB the log rolls onto it: records land at its start, over the zeros.
    while (pointers[pointers.length - 1]!.segment === 1) pointers.push(...(await log.append([record])));
    const first2 = pointers[pointers.length - 1]!;
    expect(first2).toEqual({ segment: 2, offset: 0, length: record.length });
    expect(log.segments()).toEqual([1, 2]);
    for (const p of [pointers[0]!, pointers[100]!, first2]) expect((await log.read(p)).equals(record)).toBe(true);
    // Fill segment 2 until segment 3 is made ready, then close: the unused one is removed.
    const next3 = path.join(logDir(), '0000000003.seg');
    for (let i = 0; i < 120 && !(await stat(next3).catch(() => undefined)); i++) await log.append([record]);
    expect(await stat(next3).catch(() => undefined)).toBeDefined();
    await log.close();
    expect(await segmentFiles()).toEqual(['0000000001.seg', '0000000002.seg']);
    // Reopened, every record of both segments reads back, and appends start a new segment.
    const again = await MessageLog.open(logDir(), { segmentBytes });
    let count = 0;
    for await (const payload of again.scan({ segment: 1, offset: 0 })) {
      expect(payload.equals(record)).toBe(true);
      count++;
    }
    expect(count).toBeGreaterThan(pointers.length);
    expect((await again.append([record]))[0]!.segment).toBe(3);
    await again.close();
  });

  it('appends a large batch in one write and reads every record back by its pointer', async () => {
    const log = await MessageLog.open(logDir());
    const payloads = Array.from({ length: 700 }, (_, i) => Buffer.from(`record ${i} `.repeat(1 + (i % 7))));
    const pointers = await log.append(payloads);
    expect(pointers).toHaveLength(700);
    for (let i = 0; i < payloads.length; i += 37) expect((await log.read(pointers[i]!)).equals(payloads[i]!)).toBe(true);
    expect((await log.read(pointers[699]!)).equals(payloads[699]!)).toBe(true);
    // A pointer past what was written is an error, not stray bytes.
    const err = await log.read({ ...pointers[699]!, offset: pointers[699]!.offset + 5 }).catch((e: unknown) => e);
    expect(isGatewayError(err) && err.code).toBe('GW_STORE_CORRUPT');
    await log.close();
  });

  it('encodes records given by size into its reused write buffer, beside plain buffers and records too large for it, side by side', async () => {
    const log = await MessageLog.open(logDir());
    const asPayload = (text: string): Payload => ({ size: Buffer.byteLength(text), writeTo: (out, at) => void out.write(text, at) });
    const large = 'L'.repeat(1_500_000); // over a quarter of the write buffer: a buffer of its own
    const expected: string[] = [];
    const appends: Array<Promise<unknown>> = [];
    for (let round = 0; round < 400; round++) {
      const texts = Array.from({ length: 1 + (round % 5) }, (_, i) => `r${round}-${i} `.repeat(1 + ((round * 7 + i) % 300)));
      if (round === 200) texts.push(large);
      const trailer = `batch ${round}`;
      expected.push(...texts, trailer);
      // Up to three in flight at once, as the store's writes side by side.
      appends.push(log.append(texts.map((t, i) => (i % 2 === 0 ? asPayload(t) : Buffer.from(t))), () => asPayload(trailer)));
      if (appends.length === 3) await appends.shift();
    }
    await Promise.all(appends);
    const all: string[] = [];
    for await (const payload of log.scan({ segment: 1, offset: 0 })) all.push(payload.toString());
    expect(all.length).toBe(expected.length);
    expect(all).toEqual(expected);
    await log.close();
  });

  it('writes appends side by side: places are reserved in call order, every record reads back, the trailer sees its place', async () => {
    const log = await MessageLog.open(logDir());
    const trailers: number[] = [];
    // Not awaited one by one: all five are in flight together.
    const appends = Array.from({ length: 5 }, (_, i) =>
      log.append([Buffer.from(`message ${i}`)], (pointers, at) => {
        trailers.push(i);
        expect(at.offset).toBe(pointers[0]!.offset + 8 + `message ${i}`.length);
        return Buffer.from(`batch ${i}`);
      }),
    );
    const pointers = (await Promise.all(appends)).map((p) => p[0]!);
    expect(trailers).toEqual([0, 1, 2, 3, 4]);
    for (let i = 1; i < pointers.length; i++) expect(pointers[i]!.offset).toBeGreaterThan(pointers[i - 1]!.offset);
    for (let i = 0; i < pointers.length; i++) expect((await log.read(pointers[i]!)).toString()).toBe(`message ${i}`);
    const all: string[] = [];
    for await (const payload of log.scan({ segment: 1, offset: 0 })) all.push(payload.toString());
    expect(all).toEqual([0, 1, 2, 3, 4].flatMap((i) => [`message ${i}`, `batch ${i}`]));
    await log.close();
  });

  it('a failed write leaves a gap no reader crosses, so the next append starts a new segment, where a replay finds it', async () => {
    const log = await MessageLog.open(logDir());
    await log.append([Buffer.from('before')]);
    const disk = await failFirstWriteBesideSecond();
    try {
      const failed = log.append([Buffer.from('refused')]);
      // Written beside the failing one, after the gap: its batch is refused by the store.
      const beside = log.append([Buffer.from('behind the gap')]);
      await expect(failed).rejects.toThrow('EIO');
      await beside;
    } finally {
      disk.restore();
    }
    const after = await log.append([Buffer.from('after')]);
    expect(after[0]!.segment).toBe(2);
    expect(log.end.segment).toBe(2);
    const all: string[] = [];
    for await (const payload of log.scan({ segment: 1, offset: 0 })) all.push(payload.toString());
    expect(all).toEqual(['before', 'after']);
    await log.close();
  });

  it('a failed log write refuses its commit and the one written beside it; after the probe, resends are kept once, in a new segment', async () => {
    const s = await openStore({ messageLogMinBatch: 1 });
    await s.commit(message('G0'), [validated('AG0', 'k-g0')]);
    const disk = await failFirstWriteBesideSecond();
    let a: PromiseSettledResult<unknown>;
    let b: PromiseSettledResult<unknown>;
    try {
      const first = s.commit(message('G1'), [validated('AG1', 'k-g1')]);
      await new Promise<void>((r) => setImmediate(r));
      const beside = s.commit(message('G2'), [validated('AG2', 'k-g2')]);
      [a, b] = await Promise.allSettled([first, beside]);
    } finally {
      disk.restore();
    }
    expect(disk.calls()).toBeGreaterThanOrEqual(2);
    expect(s.commitStats.besideStage1).toBeGreaterThan(0);
    // Neither sender sees a positive answer: the second was written, but behind the gap.
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    // Ingress counts them (countRejectedWithoutCommit); the store took its own counts back.
    expect(s.intake()).toMatchObject({ received: 1, accepted: 1, rejected: 0 });
    await expect.poll(() => s.health, { timeout: 5_000 }).toBe('ok');
    // The senders resend: both are new messages now, in a new segment.
    const g1 = await s.commit(message('G1'), [validated('AG1', 'k-g1')]);
    const g2 = await s.commit(message('G2'), [validated('AG2', 'k-g2')]);
    expect(g1.duplicate || g2.duplicate).toBe(false);
    await s.close();
    const again = await openStore({ messageLogMinBatch: 1 });
    for (const controlId of ['G0', 'G1', 'G2']) expect((await again.listMessages({ controlId })).map((m) => m.controlId)).toEqual([controlId]);
    expect(again.stats().pending).toBe(3);
    expect(again.intake()).toMatchObject({ received: 3, accepted: 3, rejected: 0 });
    expect((await again.getMessage(g2.messageId))?.message.controlId).toBe('G2');
  });
});
