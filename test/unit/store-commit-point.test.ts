import { cp, readdir, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { decodeBatchRecord, encodeBatchRecord, type EncodedOp } from '../../gateway/src/store/batch-record.ts';
import { decodePointer } from '../../gateway/src/store/message-log.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

const validated = (accession: string): DraftEvent => resultValidated(accession, `k-${accession}`);

// A batch that goes through the message log commits with ONE synced write: its message records and
// a batch record holding all of its LevelDB operations. LevelDB is written after it without a sync
// of its own. These tests take LevelDB back to an older state on disk — what a power cut does to
// writes that were never synced — and check that start-up catches up from the log: every commit
// that resolved is there, once, and a batch whose record never completed is not.

const tmp = useTempStore('lgw-commit-point-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1 });
const levelDir = (): string => path.join(tmp.dir, 'store');
const backupDir = (): string => path.join(tmp.dir, 'backup');

const openStore = (): Promise<EventStore> => tmp.open();


/** Copy LevelDB's files (not the message log) aside, the store closed. */
async function backUpLevel(): Promise<void> {
  await cp(levelDir(), backupDir(), { recursive: true, filter: (src) => !src.includes(`${path.sep}messages`) });
}

/** Put LevelDB's files back as they were at the backup: its later writes are lost. */
async function restoreLevel(): Promise<void> {
  for (const name of await readdir(levelDir())) if (name !== 'messages') await rm(path.join(levelDir(), name), { recursive: true, force: true });
  await cp(backupDir(), levelDir(), { recursive: true });
}

async function pointerOf(messageId: string): Promise<{ segment: number; offset: number; length: number }> {
  const db = new ClassicLevel<string, Buffer>(levelDir(), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  const value = await db.get(`!m!${messageId}`);
  await db.close();
  const pointer = value ? decodePointer(value) : undefined;
  if (!pointer) throw new Error(`no log pointer for ${messageId}`);
  return pointer;
}

const segmentPath = (segment: number): string => path.join(levelDir(), 'messages', `${String(segment).padStart(10, '0')}.seg`);


describe('the message log is the commit point of a logged batch', () => {
  it('batch records round-trip every operation (puts of text and bytes, deletes)', () => {
    const ops: EncodedOp[] = [['!e!1', '{"state":"pending"}'], ['!m!1', Buffer.from([2, 0, 255])], ['!u!x', null], ['!s!Müller\u0000id', '']];
    expect(decodeBatchRecord(encodeBatchRecord(ops))).toEqual(ops);
    const cut = encodeBatchRecord(ops).subarray(0, 20);
    let err: unknown;
    try {
      decodeBatchRecord(cut);
    } catch (e) {
      err = e;
    }
    expect(isGatewayError(err) && err.code).toBe('GW_STORE_CORRUPT');
  });

  it('after LevelDB lost its unsynced writes, start-up re-applies them from the log: every resolved commit is back, once', async () => {
    let s = await openStore();
    const before = await Promise.all(['P1', 'P2'].map((c) => s.commit(inboundMessage(c), [validated(`A-${c}`)])));
    await s.close();
    await backUpLevel();

    // Two more batches, committed (resolved) within the sync interval: LevelDB is not synced.
    s = await openStore();
    const batch1 = await Promise.all(['Q1', 'Q2', 'Q3'].map((c) => s.commit(inboundMessage(c), [validated(`A-${c}`)])));
    const batch2 = await Promise.all(['R1', 'R2'].map((c) => s.commit(inboundMessage(c), [validated(`A-${c}`)])));
    const statsThen = s.stats();
    const intakeThen = s.intake();
    await s.close();
    await restoreLevel();

    s = await openStore();
    expect(s.replayedBatches).toBeGreaterThanOrEqual(2);
    for (const r of [...before, ...batch1, ...batch2]) {
      expect((await s.getMessage(r.messageId))?.raw.length).toBeGreaterThan(0);
      expect((await s.getEvent(r.eventIds[0] as string))?.state).toBe('pending');
    }
    expect(s.stats()).toMatchObject({ pending: statsThen.pending });
    expect(s.stats().pending).toBe(7);
    expect(s.intake()).toMatchObject({ received: intakeThen.received, accepted: intakeThen.accepted });
    // Once: a resend is a duplicate, and each event is queued once.
    expect((await s.commit(inboundMessage('Q2'), [validated('A-Q2')])).duplicate).toBe(true);
    const leased = await s.lease({ limit: 20 });
    expect(leased.map((l) => l.events.length)).toEqual(Array(7).fill(1));
    expect(new Set(leased.map((l) => l.events[0]?.event.id)).size).toBe(7);
    await s.close();

    // The next start-up replays nothing new: the checkpoint moved to the end of the log.
    s = await openStore();
    expect(s.replayedBatches).toBe(0);
    expect(s.stats()).toMatchObject({ pending: 0, inFlight: 0, retrying: 7 });
  });

  it('a batch whose record did not reach the log in full (torn write, commit never resolved) is not applied', async () => {
    let s = await openStore();
    await s.close();
    await backUpLevel();
    s = await openStore();
    const kept = await s.commit(inboundMessage('T1'), [validated('A-T1')]);
    const torn = await s.commit(inboundMessage('T2'), [validated('A-T2')]);
    await s.close();
    // Cut the log inside T2's batch record (right after its message record).
    const p = await pointerOf(torn.messageId);
    await truncate(segmentPath(p.segment), p.offset + 8 + p.length + 12);
    await restoreLevel();

    s = await openStore();
    expect(await s.getMessage(kept.messageId)).toBeDefined();
    expect(await s.getEvent(kept.eventIds[0] as string)).toBeDefined();
    expect(await s.getMessage(torn.messageId)).toBeUndefined();
    expect(await s.getEvent(torn.eventIds[0] as string)).toBeUndefined();
    expect(s.stats().pending).toBe(1);
    // The sender never saw T2 acknowledged: its resend is a new message.
    expect((await s.commit(inboundMessage('T2'), [validated('A-T2')])).duplicate).toBe(false);
  });
});

describe('start-up replay never undoes later writes', () => {
  it('an event leased after its logged batch stays leased across a restart (ambiguous, not back to pending)', async () => {
    let s = await openStore();
    const { eventIds } = await s.commit(inboundMessage('L1'), [validated('A-L1')]);
    const [lease] = await s.lease({ limit: 1 });
    expect(lease?.events[0]?.event.id).toBe(eventIds[0]);
    await s.close(); // the process stops while the lease is open

    s = await openStore();
    const ev = await s.getEvent(eventIds[0] as string);
    // The relay must look it up in Odoo before any resend: the lease survives the restart.
    expect(ev).toMatchObject({ state: 'retrying', ambiguous: true });
    expect(s.stats()).toMatchObject({ pending: 0, retrying: 1, inFlight: 0 });
  });
});
