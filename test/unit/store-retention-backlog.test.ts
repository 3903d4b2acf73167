import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { decodePointer } from '../../gateway/src/store/message-log.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

// Retention and a backlog that does not drain: Odoo down for weeks, or the relay paused, so that
// undelivered messages grow older than store.retentionDays. Real LevelDB and message log in a
// temp dir; the store is closed before its LevelDB is read directly.

const tmp = useTempStore('lgw-retention-backlog-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1, healthCheckIntervalMs: 50 });
const DAY_MS = 86_400_000;

/** The message-log segment each message's pointer names (read with the store closed). */
async function segmentsOf(dir: string, ids: string[]): Promise<number[]> {
  const db = new ClassicLevel<string, Buffer>(path.join(dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  try {
    const m = db.sublevel<string, Buffer>('m', { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const out: number[] = [];
    for (const id of ids) out.push(decodePointer((await m.get(id))!)!.segment);
    return out;
  } finally {
    await db.close();
  }
}

describe('retention: a backlog older than store.retentionDays', () => {
  // What IT saw: Odoo was down for five weeks. Every retention sweep copied the undelivered
  // messages older than store.retentionDays into the message log again (up to 5,000 a minute,
  // for as long as the outage lasted): the messages a sweep had copied sat in a segment that had
  // rolled over by the next sweep, so they were copied again, and again. Gigabytes a day written
  // to the appliance's disk for nothing (a segment full of messages still waiting is freed by
  // none of it), each pass's batch of copies on the intake's commit pipeline. The store README
  // ("The message log", Retention) moves kept messages so that "a few kept messages never pin old
  // segments for months": a segment that is mostly messages still kept has nothing to free.
  it('leaves segments full of undelivered messages where they are, sweep after sweep', async () => {
    const segmentBytes = 16 * 1024;
    let store = await tmp.open({ messageLogSegmentBytes: segmentBytes });
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await store.commit(inboundMessage(`BL${i}`), [resultValidated(`BL-ACC-${i}`, `k-BL${i}`)]);
      ids.push(r.messageId);
    }
    await store.close();
    const intake = await segmentsOf(tmp.dir, ids);
    const last = Math.max(...intake);
    // Messages in segments that rolled over full (the last one was closed early by the restart).
    const inFull = ids.map((_, i) => i).filter((i) => intake[i]! < last);
    expect(inFull.length).toBeGreaterThan(30);

    const later = Date.now() + 40 * DAY_MS;
    store = await tmp.open({ messageLogSegmentBytes: segmentBytes });
    await store.prune(later);
    await store.close();
    const afterFirst = await segmentsOf(tmp.dir, ids);

    store = await tmp.open({ messageLogSegmentBytes: segmentBytes });
    await store.prune(later + 2 * 3_600_000); // the next hourly sweep

    // Nothing lost meanwhile: every message and its event are still there, still waiting.
    for (const id of ids) expect((await store.getMessage(id))?.message.id).toBe(id);
    expect(store.stats()).toMatchObject({ pending: 60, deadLettered: 0, delivered: 0 });
    await store.close();
    const second = await segmentsOf(tmp.dir, ids);

    expect(inFull.map((i) => afterFirst[i]), 'the first sweep past the age copied none of them').toEqual(inFull.map((i) => intake[i]));
    expect(inFull.map((i) => second[i]), 'nor did the next sweep').toEqual(inFull.map((i) => intake[i]));
  });
});
