import { describe, expect, it } from 'vitest';
import { GroupCommitter, type BatchOp, type BatchTarget } from '../../gateway/src/store/group-commit.ts';

/** A target whose stages finish when the test says so, recording what happened in which order. */
function controlledTarget(): {
  target: BatchTarget<string>;
  log: string[];
  finishPrepare: (i: number, err?: Error) => void;
  finishBatch: (i: number, err?: Error) => void;
  waitFor: (entry: string) => Promise<void>;
} {
  const log: string[] = [];
  const prepares: Array<{ resolve: (v: string) => void; reject: (e: Error) => void }> = [];
  const batches: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const watchers: Array<() => void> = [];
  const note = (entry: string): void => {
    log.push(entry);
    for (const w of watchers.splice(0)) w();
  };
  const keys = (ops: BatchOp[]): string => ops.filter((o) => o.key !== 'seal').map((o) => o.key).join(',');
  return {
    log,
    target: {
      prepare: (ops) =>
        new Promise<string>((resolve, reject) => {
          note(`prepare ${prepares.length}: ${keys(ops)}`);
          prepares.push({ resolve, reject });
        }),
      batch: (ops, _options, prepared) =>
        new Promise<void>((resolve, reject) => {
          note(`batch ${batches.length}: ${keys(ops)} (${prepared})`);
          batches.push({ resolve, reject });
        }),
    },
    finishPrepare: (i, err) => (err ? prepares[i]?.reject(err) : prepares[i]?.resolve(`p${i}`)),
    finishBatch: (i, err) => (err ? batches[i]?.reject(err) : batches[i]?.resolve()),
    waitFor: async (entry) => {
      while (!log.includes(entry)) await new Promise<void>((r) => watchers.push(r));
    },
  };
}

const put = (key: string): BatchOp[] => [{ type: 'put', key, value: 1 }];

/**
 * Write one key and take its batch through stage 1 (prepare `prepare`) into stage 2 (batch
 * `batch`), which is left in flight. Resolves with the write's promise, not yet settled.
 */
async function intoStage2(
  t: ReturnType<typeof controlledTarget>,
  committer: GroupCommitter<string>,
  key: string,
  prepare: number,
  batch = prepare,
): Promise<{ written: Promise<void> }> {
  const written = committer.write(put(key));
  await t.waitFor(`prepare ${prepare}: ${key}`);
  t.finishPrepare(prepare);
  await t.waitFor(`batch ${batch}: ${key} (p${prepare})`);
  // Wrapped: awaiting the helper must not wait for the write itself.
  return { written };
}
const settled = async <T>(p: Promise<T>): Promise<'resolved' | 'rejected' | 'pending'> => {
  const marker = Symbol('pending');
  const r = await Promise.race([p.then(() => 'resolved' as const, () => 'rejected' as const), new Promise<symbol>((res) => setImmediate(() => res(marker)))]);
  return r === marker ? 'pending' : (r as 'resolved' | 'rejected');
};

describe('group commit pipeline', () => {
  it("runs the next batch's stage 1 while this batch's stage 2 is in flight, and stage 2 strictly in order", async () => {
    const t = controlledTarget();
    const committer = new GroupCommitter(t.target, { seal: () => [{ type: 'put', key: 'seal', value: 0 }], overlapAt: 1 });
    // Four writes: not a small batch, so the next one is not written beside it (see the stage-1 tests).
    const a = Promise.all(['a', 'a', 'a', 'a'].map((k) => committer.write(put(k)))).then(() => undefined);
    await t.waitFor('prepare 0: a,a,a,a');
    const b = committer.write(put('b')); // queued while batch 0 is in stage 1
    expect(t.log).not.toContain('prepare 1: b');
    t.finishPrepare(0);
    await t.waitFor('batch 0: a,a,a,a (p0)');
    // Batch 1 is sealed and in stage 1 while batch 0 is in stage 2.
    await t.waitFor('prepare 1: b');
    t.finishPrepare(1);
    expect(await settled(b)).toBe('pending');
    // Its stage 2 waits for batch 0's.
    expect(t.log).not.toContain('batch 1: b (p1)');
    t.finishBatch(0);
    expect(await a).toBeUndefined();
    await t.waitFor('batch 1: b (p1)');
    expect(await settled(b)).toBe('pending');
    t.finishBatch(1);
    await b;
    // Batch 1's stage 1 and batch 0's stage 2 may start in either order; the stages of one batch
    // and the stage 2s are in order.
    expect([...t.log].sort()).toEqual(['batch 0: a,a,a,a (p0)', 'batch 1: b (p1)', 'prepare 0: a,a,a,a', 'prepare 1: b']);
    expect(t.log.indexOf('batch 0: a,a,a,a (p0)')).toBeLessThan(t.log.indexOf('batch 1: b (p1)'));
    expect(t.log.indexOf('prepare 1: b')).toBeLessThan(t.log.indexOf('batch 1: b (p1)'));
    expect(committer.stats.batches).toBe(2);
  });

  it('a batch sealed while its predecessor was being written fails with it; one sealed afterwards is written', async () => {
    const t = controlledTarget();
    const committer = new GroupCommitter(t.target, { overlapAt: 1 });
    const { written: a } = await intoStage2(t, committer, 'a', 0);
    const b = committer.write(put('b'));
    await t.waitFor('prepare 1: b');
    t.finishPrepare(1);
    t.finishBatch(0, new Error('disk gone'));
    await expect(a).rejects.toThrow('disk gone');
    await expect(b).rejects.toThrow(/earlier batch failed/);
    expect(t.log).not.toContain('batch 1: b (p1)');
    // After the failure is known, a new batch (e.g. a health probe) is written normally.
    const { written: c } = await intoStage2(t, committer, 'c', 2, 1);
    t.finishBatch(1);
    await expect(c).resolves.toBeUndefined();
  });

  it('a failed stage 1 fails its batch without a stage 2; barrier() waits for everything before it', async () => {
    const t = controlledTarget();
    const committer = new GroupCommitter(t.target, { overlapAt: 1 });
    const a = committer.write(put('a'));
    await t.waitFor('prepare 0: a');
    t.finishPrepare(0, new Error('log write failed'));
    await expect(a).rejects.toThrow('log write failed');
    expect(t.log.some((e) => e.startsWith('batch'))).toBe(false);
    const b = committer.write(put('b'));
    await t.waitFor('prepare 1: b');
    const barrier = committer.barrier();
    t.finishPrepare(1);
    await t.waitFor('batch 0: b (p1)');
    expect(await settled(barrier)).toBe('pending');
    t.finishBatch(0);
    await barrier;
    await b;
    expect(committer.idle).toBe(true);
  });

  it('with few writes waiting it lets the batch in flight finish and seals one larger batch; many waiting writes overlap at once', async () => {
    const t = controlledTarget();
    const committer = new GroupCommitter(t.target, { overlapAt: 6, lingerMs: 0 });
    // A batch of four: not small, so the next one waits for its stage 2 (after a small one it would not).
    const a = ['a1', 'a2', 'a3', 'a4'].map((k) => committer.write(put(k)));
    await t.waitFor('prepare 0: a1,a2,a3,a4');
    t.finishPrepare(0);
    await t.waitFor('batch 0: a1,a2,a3,a4 (p0)');
    const b = committer.write(put('b'));
    await new Promise((r) => setImmediate(r));
    // One write waiting: no second batch while batch 0 is being written.
    expect(t.log).toEqual(['prepare 0: a1,a2,a3,a4', 'batch 0: a1,a2,a3,a4 (p0)']);
    const more = ['c', 'd', 'e', 'f', 'g'].map((k) => committer.write(put(k))); // six waiting: worth overlapping now
    await t.waitFor('prepare 1: b,c,d,e,f,g');
    t.finishPrepare(1);
    t.finishBatch(0);
    await t.waitFor('batch 1: b,c,d,e,f,g (p1)');
    t.finishBatch(1);
    await Promise.all([...a, b, ...more]);
  });

  it("after a small batch the next one is sealed while its stage 2 is in flight, stage 2 still in order; at most 8 batches wait for stage 2", async () => {
    const t = controlledTarget();
    const committer = new GroupCommitter(t.target, { overlapAt: 16, lingerMs: 0 });
    const writes: Array<Promise<void>> = [];
    // Lone writes, each after the one before has finished stage 1, while batch 0's stage 2 is held.
    for (let i = 0; i < 8; i++) {
      writes.push(committer.write(put(`w${i}`)));
      await t.waitFor(`prepare ${i}: w${i}`);
      t.finishPrepare(i);
      if (i === 0) await t.waitFor('batch 0: w0 (p0)');
    }
    writes.push(committer.write(put('w8')));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    // Eight batches sealed, none but the first in stage 2; the ninth waits for LevelDB to catch up.
    expect(t.log.filter((e) => e.startsWith('prepare'))).toHaveLength(8);
    expect(t.log.filter((e) => e.startsWith('batch'))).toEqual(['batch 0: w0 (p0)']);
    for (const w of writes) expect(await settled(w)).toBe('pending');
    t.finishBatch(0);
    for (let i = 1; i < 8; i++) {
      await t.waitFor(`batch ${i}: w${i} (p${i})`);
      // Stage 2 strictly in order: the next one starts only after this one finished.
      expect(t.log).not.toContain(`batch ${i + 1}: w${i + 1} (p${i + 1})`);
      t.finishBatch(i);
    }
    await t.waitFor('prepare 8: w8');
    t.finishPrepare(8);
    await t.waitFor('batch 8: w8 (p8)');
    t.finishBatch(8);
    await Promise.all(writes);
    expect(committer.stats.batches).toBe(9);
  });

  it('one larger batch after a pause is not steady load: the write after it goes at once; after two, the next batch fills', async () => {
    const t = controlledTarget();
    // A wait of a minute would time the test out: only the last batch may wait for company.
    const committer = new GroupCommitter(t.target, { overlapAt: 16, lingerMs: 60_000, steadyWithinMs: 60_000 });
    const four = (prefix: string): Array<Promise<void>> => [1, 2, 3, 4].map((n) => committer.write(put(`${prefix}${n}`)));
    const run = async (i: number, keys: string, writes: Array<Promise<void>>): Promise<void> => {
      await t.waitFor(`prepare ${i}: ${keys}`);
      t.finishPrepare(i);
      await t.waitFor(`batch ${i}: ${keys} (p${i})`);
      t.finishBatch(i);
      await Promise.all(writes);
    };
    await run(0, 'a1,a2,a3,a4', four('a')); // four gathered by a pause
    await run(1, 'b', [committer.write(put('b'))]); // a lone write right after: not held for company
    await run(2, 'c1,c2,c3,c4', four('c'));
    await run(3, 'e1,e2,e3,e4', four('e')); // two batches of four in a row: steady load
    const f = [committer.write(put('f1'))];
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(t.log).not.toContain('prepare 4: f1');
    f.push(committer.write(put('f2')), committer.write(put('f3')), committer.write(put('f4')));
    await run(4, 'f1,f2,f3,f4', f);
  }, 10_000);

  it('a write during a larger batch\'s stage 2 waits for it and shares the next batch with the writes after it; a lone write after a small batch does not wait', async () => {
    const t = controlledTarget();
    const committer = new GroupCommitter(t.target, { overlapAt: 16, lingerMs: 200, steadyWithinMs: 60_000 });
    const first = ['a1', 'a2', 'a3', 'a4'].map((k) => committer.write(put(k)));
    await t.waitFor('prepare 0: a1,a2,a3,a4');
    t.finishPrepare(0);
    await t.waitFor('batch 0: a1,a2,a3,a4 (p0)');
    const late = [committer.write(put('b1'))];
    t.finishBatch(0);
    await Promise.all(first);
    // A batch of 4 was steady load: the next one waits for company...
    late.push(committer.write(put('b2')), committer.write(put('b3')));
    await t.waitFor('prepare 1: b1,b2,b3');
    t.finishPrepare(1);
    await t.waitFor('batch 1: b1,b2,b3 (p1)');
    // ...and after a batch of 3 a lone write goes on its own, at once.
    const lone = committer.write(put('c1'));
    t.finishBatch(1);
    await Promise.all(late);
    await t.waitFor('prepare 2: c1');
    t.finishPrepare(2);
    await t.waitFor('batch 2: c1 (p2)');
    t.finishBatch(2);
    await lone;
  });

  it('stops waiting as soon as as many writes wait as the last batch had (LIS links waiting for their ACKs)', async () => {
    const t = controlledTarget();
    // A wait of a minute would time the test out: it must end on the fourth write.
    const committer = new GroupCommitter(t.target, { overlapAt: 16, lingerMs: 60_000, steadyWithinMs: 60_000 });
    for (const [i, prefix] of [[0, 'a'], [1, 'b']] as const) {
      // Two batches of four in a row: steady load.
      const writes = [1, 2, 3, 4].map((n) => committer.write(put(`${prefix}${n}`)));
      const keys = [1, 2, 3, 4].map((n) => `${prefix}${n}`).join(',');
      await t.waitFor(`prepare ${i}: ${keys}`);
      t.finishPrepare(i);
      await t.waitFor(`batch ${i}: ${keys} (p${i})`);
      t.finishBatch(i);
      await Promise.all(writes);
    }
    const next: Array<Promise<void>> = [];
    for (const k of ['c1', 'c2', 'c3']) {
      next.push(committer.write(put(k)));
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      expect(t.log.some((e) => e.startsWith('prepare 2'))).toBe(false);
    }
    next.push(committer.write(put('c4')));
    await t.waitFor('prepare 2: c1,c2,c3,c4');
    t.finishPrepare(2);
    await t.waitFor('batch 2: c1,c2,c3,c4 (p2)');
    t.finishBatch(2);
    await Promise.all(next);
  }, 10_000);
});

describe('answered at the commit point (a target whose stage 1 makes some batches durable)', () => {
  /** The controlled target, with batches whose keys start with `L` durable after stage 1. */
  function durableWhenLogged(): ReturnType<typeof controlledTarget> & { prepared: Map<string, string> } {
    const t = controlledTarget();
    const prepared = new Map<string, string>();
    const prepare = t.target.prepare!;
    t.target.prepare = async (ops) => {
      const p = await prepare(ops);
      prepared.set(p, ops.map((o) => o.key).join(','));
      return p;
    };
    t.target.durable = (p) => (prepared.get(p) ?? '').startsWith('L');
    return { ...t, prepared };
  }

  it('resolves a durable batch after stage 1, before its stage 2; applied() waits for stage 2', async () => {
    const t = durableWhenLogged();
    const early: string[] = [];
    const committer = new GroupCommitter(t.target, { overlapAt: 1, onEarly: (p) => early.push(p) });
    const { written: a } = await intoStage2(t, committer, 'La', 0);
    expect(await a).toBeUndefined();
    expect(early).toEqual(['p0']);
    const applied = committer.applied();
    expect(await settled(applied)).toBe('pending');
    expect(committer.idle).toBe(false);
    t.finishBatch(0);
    await applied;
    expect(committer.idle).toBe(true);
  });

  it('a durable batch behind one that is not durable and still being written waits for it, and fails with it', async () => {
    const t = durableWhenLogged();
    const committer = new GroupCommitter(t.target, { overlapAt: 1 });
    const { written: a } = await intoStage2(t, committer, 'doc', 0);
    const b = committer.write(put('Lb'));
    await t.waitFor('prepare 1: Lb');
    t.finishPrepare(1);
    expect(await settled(b)).toBe('pending');
    t.finishBatch(0, new Error('disk gone'));
    await expect(a).rejects.toThrow('disk gone');
    await expect(b).rejects.toThrow(/earlier batch failed/);
  });

  it('a stage 2 that fails after its batch was answered is reported as a late failure; no batch is answered early again until a stage 2 succeeds', async () => {
    const t = durableWhenLogged();
    const late: unknown[] = [];
    const committer = new GroupCommitter(t.target, { overlapAt: 1, onLateFailure: (err) => late.push(err) });
    const a = committer.write(put('La'));
    await t.waitFor('prepare 0: La');
    t.finishPrepare(0);
    await a;
    await t.waitFor('batch 0: La (p0)');
    t.finishBatch(0, new Error('EIO'));
    await committer.applied();
    expect(late.map((e) => (e as Error).message)).toEqual(['EIO']);
    const { written: b } = await intoStage2(t, committer, 'Lb', 1);
    expect(await settled(b)).toBe('pending');
    t.finishBatch(1);
    await b;
    const { written: c } = await intoStage2(t, committer, 'Lc', 2);
    // Answered early again, before its stage 2 finished.
    expect(await settled(c)).toBe('resolved');
    t.finishBatch(2);
    await committer.applied();
  });

  it("writes a small batch's stage 1 beside the previous one (at most two), and answers them in the order they were sealed", async () => {
    const t = durableWhenLogged();
    const answered: string[] = [];
    const committer = new GroupCommitter(t.target, { overlapAt: 16 });
    const track = (key: string): Promise<void> => committer.write(put(key)).then(() => void answered.push(key));
    const a = track('La');
    await t.waitFor('prepare 0: La');
    const b = track('Lb');
    // Sealed and in stage 1 while batch 0 is still in its stage 1.
    await t.waitFor('prepare 1: Lb');
    const c = track('Lc');
    await new Promise<void>((r) => setImmediate(r));
    expect(t.log).not.toContain('prepare 2: Lc'); // two in flight already
    // The second finishes first: it is not answered ahead of the first.
    t.finishPrepare(1);
    expect(await settled(b)).toBe('pending');
    t.finishPrepare(0);
    await Promise.all([a, b]);
    expect(answered).toEqual(['La', 'Lb']);
    // Both were answered at their commit point; stage 2 runs in order.
    await t.waitFor('batch 0: La (p0)');
    expect(t.log).not.toContain('batch 1: Lb (p1)');
    t.finishBatch(0);
    await t.waitFor('batch 1: Lb (p1)');
    t.finishBatch(1);
    await t.waitFor('prepare 2: Lc');
    t.finishPrepare(2);
    await c;
    await t.waitFor('batch 2: Lc (p2)');
    t.finishBatch(2);
    await committer.applied();
    expect(answered).toEqual(['La', 'Lb', 'Lc']);
    expect(committer.idle).toBe(true);
  });

  it('a batch written beside one whose stage 1 fails is refused with it, though its own stage 1 succeeded', async () => {
    const t = durableWhenLogged();
    const early: string[] = [];
    const committer = new GroupCommitter(t.target, { overlapAt: 16, onEarly: (p) => early.push(p) });
    const a = committer.write(put('La'));
    await t.waitFor('prepare 0: La');
    const b = committer.write(put('Lb'));
    await t.waitFor('prepare 1: Lb');
    t.finishPrepare(1);
    t.finishPrepare(0, new Error('EIO: the log write failed'));
    await expect(a).rejects.toThrow('EIO');
    await expect(b).rejects.toThrow(/earlier batch failed/);
    expect(early).toEqual([]);
    expect(t.log.filter((e) => e.startsWith('batch'))).toEqual([]);
    // A batch sealed after the failure is known is written and answered.
    const { written: c } = await intoStage2(t, committer, 'Lc', 2, 0);
    t.finishBatch(0);
    await c;
    await committer.applied();
    expect(committer.idle).toBe(true);
  });

  it("a refused batch's seal is undone before its writers hear; a batch answered early whose stage 2 fails later is not undone", async () => {
    const t = durableWhenLogged();
    const undone: string[] = [];
    let n = 0;
    const committer = new GroupCommitter(t.target, {
      overlapAt: 16,
      seal: () => {
        const id = `s${n++}`;
        return { ops: [{ type: 'put', key: 'seal', value: id }], undo: () => void undone.push(id) };
      },
    });
    // Refused in stage 1: undone before the rejection reaches the writer.
    const a = committer.write(put('La')).catch((err: unknown) => {
      expect(undone).toEqual(['s0']);
      throw err;
    });
    await t.waitFor('prepare 0: La');
    t.finishPrepare(0, new Error('EIO'));
    await expect(a).rejects.toThrow('EIO');
    // Answered early, then its stage 2 fails: its writers hold a positive answer, nothing is undone.
    const t2 = durableWhenLogged();
    const late = new GroupCommitter(t2.target, {
      overlapAt: 16,
      seal: () => ({ ops: [{ type: 'put', key: 'seal', value: 'late' }], undo: () => void undone.push('late') }),
    });
    const b = late.write(put('Lb'));
    await t2.waitFor('prepare 0: Lb');
    t2.finishPrepare(0);
    await b;
    await t2.waitFor('batch 0: Lb (p0)');
    t2.finishBatch(0, new Error('LevelDB gone'));
    await late.applied();
    expect(undone).toEqual(['s0']);
    expect(committer.idle && late.idle).toBe(true);
  });
});
