/**
 * Group commit: every write of the store goes through one queue. While a batch is being written,
 * later writes accumulate and share the next batch, so durable throughput is bounded by CPU and
 * the write path, not by one fsync per message.
 *
 * A batch is written in two stages: `prepare` (the store encodes the batch and, for a batch with
 * messages for the log, makes it durable there with one synced write) and `batch` (the LevelDB
 * write, which needs what `prepare` returned; the store decides whether it is synced). The stages
 * form a pipeline: the next batch's `prepare` runs while this batch's LevelDB write is in flight.
 * LevelDB writes stay strictly in order, one at a time, each after its own `prepare`. A small
 * batch's `prepare` (a lone message's synced log write) may have the next batch's beside it, at
 * most two at a time; batches are still decided and written in the order they were sealed.
 *
 * A promise returned by `write()` resolves once the batch holding its operations is durable. For
 * most batches that is after both stages. A batch that stage 1 made durable by itself (the
 * target's `durable()`: the store's logged batches, whose message-log write is the commit point)
 * resolves right after stage 1, while its stage 2 still runs: the senders get their ACKs one
 * LevelDB write earlier. It does so only when every batch ahead of it that is still being written
 * resolved early too, and no stage 2 has failed since the last that succeeded; so a batch whose
 * sender was answered early never depends on one whose sender was refused. `applied()` resolves
 * when every batch handed over so far has been through stage 2 (reads wait for it). A stage 2
 * that fails after its batch resolved early is reported to `onLateFailure`: the store then
 * refuses writes until it has caught LevelDB up from the log.
 *
 * A batch whose predecessor failed is not written (it fails too), so the counters each batch
 * carries never land on top of a lost batch.
 */

/** One LevelDB batch operation (the shape abstract-level's `batch()` takes, sublevel included). */
export interface BatchOp {
  type: 'put' | 'del';
  key: string;
  value?: unknown;
  // abstract-level's sublevel type is generic over its database; any sublevel of ours fits here.
  sublevel?: unknown;
  /** For the delete of a message: the message-log segment its record is in (live counts). */
  logSegment?: number;
}

export interface BatchTarget<P = unknown> {
  /** Stage 1 (may overlap the previous batch's stage 2). */
  prepare?(ops: BatchOp[]): Promise<P>;
  /** Stage 2: strictly in order, one at a time. */
  batch(ops: BatchOp[], options: { sync: boolean }, prepared?: P): Promise<void>;
  /** Stage 1 made this batch durable by itself: its writers may be answered before stage 2. */
  durable?(prepared: P): boolean;
}

/** What a batch's seal appended, and how to take back in memory what the batch would have done. */
export interface Sealed {
  ops: BatchOp[];
  undo: () => void;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * A batch of fewer writes is small (a quiet link: see #lastSmall); two in a row of at least this
 * many, the last sealed within the last few ms, are steady load (lingerMs).
 */
const LINGER_FROM = 4;
const STEADY_WITHIN_MS = 10;
/** Batches whose stage 1 may be in flight at once (see #gather). */
const MAX_STAGE1 = 2;
/**
 * Batches sealed but not yet through stage 2 after which even a small batch's successor waits for
 * the stage 2 before it (see #gather): bounds what sits between the commit point and LevelDB.
 */
const MAX_BEHIND_STAGE2 = 8;

export interface GroupCommitStats {
  batches: number;
  operations: number;
  writes: number;
  largestBatch: number;
  /** Batches sealed while another batch's stage 1 was still in flight (see #gather). */
  besideStage1: number;
}

export class GroupCommitter<P = unknown> {
  readonly #target: BatchTarget<P>;
  /** Called at the moment a batch is sealed; returns operations appended to it (e.g. counters). */
  readonly #seal: () => BatchOp[] | Sealed;
  readonly #beforeWrite: () => Error | undefined;
  readonly #onEarly: (prepared: P) => void;
  readonly #onLateFailure: (err: unknown) => void;
  #ops: BatchOp[] = [];
  #waiters: Waiter[] = [];
  #writing = false;
  #scheduled = false;
  /** Stage 2 of the last batch handed over (settles after every earlier one), and whether it has. */
  /**
   * The last batch sealed. `behind`: writes were queued while it was still being written; their
   * in-memory effects were taken on top of its own, so the batch that holds them fails with it.
   */
  #tail: { done: Promise<void>; settled: boolean; behind?: boolean; applied?: Promise<void> } = { done: Promise.resolve(), settled: true };
  #inFlight = 0;
  /** Batches in stage 1, and the stage 1 of the last batch sealed (settles after its writes). */
  #stage1InFlight = 0;
  #stage1Last: Promise<void> = Promise.resolve();
  /** Settles once the last batch sealed is decided: answered early (true) or held for stage 2. */
  #decided: Promise<boolean> = Promise.resolve(true);
  /** Batches handed to stage 2, not yet through it, whose writers were not answered early. */
  #heldInFlight = 0;
  /** The last stage 2 to settle failed: no batch resolves early until one succeeds. */
  #lastStage2Failed = false;
  /** Writes that make it worth sealing a batch before the previous one is fully written. */
  readonly #overlapAt: number;
  /** How long (ms) to let a batch fill under steady load (see #drain); 0 = never wait. */
  readonly #lingerMs: number;
  /** Steady load: the last batch was sealed less than this long ago (ms). */
  readonly #steadyWithinMs: number;
  /** Wakes the drain loop waiting for enough writes (see #gather). */
  #enough: (() => void) | undefined;
  /** Waiting writes that wake it. */
  #enoughAt = 1;
  /** Size and sealing time of the last batch, and the size of the one before it. */
  #lastBatch = { writes: 0, at: 0, before: 0 };
  /**
   * When each batch not yet through stage 2 was sealed (performance.now()), oldest first: batches
   * settle in the order they were sealed, so the head is the oldest write still on its way to the
   * disk (oldestUnwrittenMs: a write that does not return).
   */
  readonly #sealedAt: number[] = [];
  readonly stats: GroupCommitStats = { batches: 0, operations: 0, writes: 0, largestBatch: 0, besideStage1: 0 };

  constructor(
    target: BatchTarget<P>,
    options: {
      /**
       * Operations appended to each batch when it is sealed (e.g. a counter snapshot), and what to
       * undo in memory if the batch is refused (not written, its writers rejected).
       */
      seal?: () => BatchOp[] | Sealed;
      beforeWrite?: () => Error | undefined;
      overlapAt?: number;
      lingerMs?: number;
      /** Steady load means the last batch was sealed less than this long ago (ms; default 10). */
      steadyWithinMs?: number;
      /** A batch's writers were answered after stage 1 (called before they are). */
      onEarly?: (prepared: P) => void;
      /** The stage 2 of a batch answered early failed. */
      onLateFailure?: (err: unknown) => void;
    } = {},
  ) {
    this.#target = target;
    this.#onEarly = options.onEarly ?? (() => undefined);
    this.#onLateFailure = options.onLateFailure ?? (() => undefined);
    this.#overlapAt = options.overlapAt ?? 16;
    this.#lingerMs = options.lingerMs ?? 1;
    this.#steadyWithinMs = options.steadyWithinMs ?? STEADY_WITHIN_MS;
    this.#seal = options.seal ?? (() => []);
    this.#beforeWrite = options.beforeWrite ?? (() => undefined);
  }

  /** Queue operations; resolves after the batch holding them is durable. */
  write(ops: BatchOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      for (const op of ops) this.#ops.push(op);
      this.#waiters.push({ resolve, reject });
      if (!this.#tail.settled) this.#tail.behind = true;
      this.stats.writes++;
      if (this.#enough && this.#waiters.length >= this.#enoughAt) this.#enough();
      this.#schedule();
    });
  }

  /** Resolves when everything queued before this call is durable (or failed). */
  barrier(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return this.write([]).catch(() => undefined);
  }

  /**
   * Resolves when every batch handed to stage 2 so far has been through it (whether it succeeded
   * or not): what a commit answered early wrote is then readable from LevelDB.
   */
  applied(): Promise<void> {
    const tail = this.#tail;
    if (tail.settled) return Promise.resolve();
    // One promise per batch, shared by every commit and read that waits for it.
    tail.applied ??= tail.done.catch(() => undefined);
    return tail.applied;
  }

  /**
   * How long the oldest batch still being written has been on its way (ms), undefined when none
   * is: a log or LevelDB write that does not return (a dying disk, a hung mount) shows here, as
   * nothing else fails.
   */
  oldestUnwrittenMs(): number | undefined {
    const at = this.#sealedAt[0];
    return at === undefined ? undefined : performance.now() - at;
  }

  get idle(): boolean {
    return !this.#writing && this.#waiters.length === 0 && this.#inFlight === 0;
  }

  #schedule(): void {
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    // A microtask lets every write queued in the same tick share the first batch.
    queueMicrotask(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#waiters.length > 0) {
        await this.#gather();
        const ops = this.#ops;
        const waiters = this.#waiters;
        this.#ops = [];
        this.#waiters = [];
        this.#lastBatch = { writes: waiters.length, at: performance.now(), before: this.#lastBatch.writes };
        if (this.#stage1InFlight > 0) this.stats.besideStage1++;
        // A batch sealed while its predecessor was still being written fails with it (its counters
        // were taken on top of the predecessor's), and so does one holding writes queued meanwhile
        // (sealed later, after a large predecessor: their in-memory effects, e.g. a partition's
        // count and whether it gets a due entry, were decided on top of it). One whose writes all
        // came after a failure was known does not.
        const previous = this.#tail;
        const poisoned = !previous.settled || previous.behind === true;
        const before = previous.done;
        let prepared: P | undefined;
        let failed: unknown;
        // Sealed now, in order (the counters, the target's encoding); stage 1 may still be writing
        // the batch before this one (see #gather).
        let undo: (() => void) | undefined;
        const stage1 = (async (): Promise<void> => {
          try {
            if (ops.length > 0) {
              const sealed = this.#seal();
              const appended = Array.isArray(sealed) ? sealed : sealed.ops;
              if (!Array.isArray(sealed)) undo = sealed.undo;
              for (const op of appended) ops.push(op);
            }
            const injected = this.#beforeWrite();
            if (injected) throw injected;
            if (ops.length > 0 && this.#target.prepare) prepared = await this.#target.prepare(ops);
          } catch (err) {
            failed = err;
          }
        })();
        this.#inFlight++;
        this.#stage1InFlight++;
        this.#sealedAt.push(this.#lastBatch.at);
        const stage1Done = stage1.then(() => void this.#stage1InFlight--);
        this.#stage1Last = stage1Done;
        // Batches are decided (answered early or held) in the order they were sealed.
        const decided = this.#decided.then(
          () => stage1Done,
          () => stage1Done,
        ).then(() => {
          // Answered at the commit point: durable after stage 1, and nothing still being written
          // ahead of it holds writers that could yet be refused.
          let early = false;
          try {
            early = failed === undefined && prepared !== undefined && this.#heldInFlight === 0 && !this.#lastStage2Failed && this.#target.durable?.(prepared) === true;
          } catch {
            early = false; // not known to be durable: answered after stage 2
          }
          if (!early) this.#heldInFlight++;
          if (early) {
            this.#onEarly(prepared as P);
            for (const w of waiters) w.resolve();
          }
          return early;
        });
        this.#decided = decided;
        const write = async (): Promise<void> => {
          await decided;
          if (failed !== undefined) throw failed;
          if (ops.length === 0) return;
          await this.#target.batch(ops, { sync: true }, prepared);
          this.stats.batches++;
          this.stats.operations += ops.length;
          if (ops.length > this.stats.largestBatch) this.stats.largestBatch = ops.length;
        };
        const stage2 = before.then(write, async (err: unknown) => {
          await decided;
          if (poisoned && failed === undefined) throw new Error(`an earlier batch failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
          return write();
        });
        const tail = { done: stage2, settled: false };
        this.#tail = tail;
        const settle = (): void => {
          tail.settled = true;
          this.#sealedAt.shift();
        };
        stage2.then(settle, settle);
        void decided.then((early) =>
          stage2.then(
            () => {
              this.#inFlight--;
              if (!early) this.#heldInFlight--;
              this.#lastStage2Failed = false;
              if (!early) for (const w of waiters) w.resolve();
            },
            (err: unknown) => {
              this.#inFlight--;
              if (!early) this.#heldInFlight--;
              this.#lastStage2Failed = true;
              if (early) this.#onLateFailure(err);
              else {
                // Refused: what its operations did in memory is taken back before its writers hear.
                try {
                  undo?.();
                } catch {
                  /* an undo never stops the writers' answers */
                }
                for (const w of waiters) w.reject(err);
              }
            },
          ),
        );
        // The next batch is gathered while this one's stage 2 runs, once the one before it is done;
        // after a small batch at once (see #gather).
        if (!this.#smallAhead()) await before.catch(() => undefined);
      }
    } finally {
      this.#writing = false;
    }
  }

  /**
   * The last batch was small (a lone message, a quiet link) and few batches are still on their way
   * to LevelDB: the next one is sealed without waiting for the stage 2 in flight. Waiting would put
   * LevelDB's write (now and then a synced one, a few ms) on the path of the next message's ACK,
   * while it saves nothing at that load: there is no larger batch to gather.
   */
  #smallAhead(): boolean {
    return this.#lastSmall && this.#inFlight < MAX_BEHIND_STAGE2;
  }

  /** The last batch sealed was small: a lone message or a few, not steady load. */
  get #lastSmall(): boolean {
    return this.#lastBatch.writes < LINGER_FROM;
  }

  /**
   * Before sealing: overlapping costs a batch (and its sync) per stage-2 time, so with few writes
   * waiting it is cheaper to let the batch in flight finish and seal a larger one; under heavy load
   * (overlapAt writes waiting) the stages overlap at once. After a small batch the next one does not
   * wait for the stage 2 in flight (#smallAhead). Under steady load (the last two batches, the last
   * one just now, were not small) the next one may also fill for up to lingerMs, or until as many
   * writes wait as the last batch had: each sync saved is ~100 µs of CPU on a small machine. One
   * larger batch alone is not steady load: it follows a pause (a collection, the disk), and the
   * messages after it would wait for company that does not come. A lone message at a quiet link
   * never waits.
   */
  async #gather(): Promise<void> {
    const enough = (at: number): Promise<void> => {
      this.#enoughAt = at;
      return new Promise<void>((resolve) => (this.#enough = resolve));
    };
    try {
      // A small batch's stage 1 (a lone message's synced log write) may have the next batch's
      // written beside it: the disk takes a second synced write while the first is in flight, and
      // a message arriving meanwhile does not wait for the other's sync first. Larger batches
      // (steady load) rather wait and share the next sync.
      if (this.#stage1InFlight > 0) {
        if (this.#lastSmall && this.#stage1InFlight < MAX_STAGE1) return;
        await this.#stage1Last;
      }
      if (!this.#tail.settled && this.#waiters.length < this.#overlapAt && !this.#smallAhead()) {
        await Promise.race([this.#tail.done.catch(() => undefined), enough(this.#overlapAt)]);
      }
      const last = this.#lastBatch;
      // The wait ends as soon as as many writes wait as the last batch had: a few LIS links that
      // each wait for their ACK are all back by then, and lose no time.
      const company = Math.min(this.#overlapAt, last.writes);
      if (this.#lingerMs > 0 && this.#waiters.length < company && last.writes >= LINGER_FROM && last.before >= LINGER_FROM && performance.now() - last.at < this.#steadyWithinMs) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([enough(company), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#lingerMs)))]);
        clearTimeout(timer);
      }
    } finally {
      this.#enough = undefined;
    }
  }
}
