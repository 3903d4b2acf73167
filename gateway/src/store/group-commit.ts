/**
 * Group commit: every write of the store goes through one queue. While a batch is being written
 * with `sync: true`, later writes accumulate and share the next batch, so durable throughput is
 * bounded by CPU and LevelDB's write path, not by one fsync per message.
 *
 * A promise returned by `write()` resolves only after the batch holding its operations is on
 * disk (LevelDB's `sync: true` = fsync of the write-ahead log before the write returns).
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

export interface BatchTarget {
  batch(ops: BatchOp[], options: { sync: boolean }): Promise<void>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitStats {
  batches: number;
  operations: number;
  writes: number;
  largestBatch: number;
}

export class GroupCommitter {
  readonly #target: BatchTarget;
  /** Called at the moment a batch is sealed; returns operations appended to it (e.g. counters). */
  readonly #seal: () => BatchOp[];
  readonly #beforeWrite: () => Error | undefined;
  #ops: BatchOp[] = [];
  #waiters: Waiter[] = [];
  #writing = false;
  #scheduled = false;
  readonly stats: GroupCommitStats = { batches: 0, operations: 0, writes: 0, largestBatch: 0 };

  constructor(target: BatchTarget, options: { seal?: () => BatchOp[]; beforeWrite?: () => Error | undefined } = {}) {
    this.#target = target;
    this.#seal = options.seal ?? (() => []);
    this.#beforeWrite = options.beforeWrite ?? (() => undefined);
  }

  /** Queue operations; resolves after the batch holding them is durable. */
  write(ops: BatchOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      for (const op of ops) this.#ops.push(op);
      this.#waiters.push({ resolve, reject });
      this.stats.writes++;
      this.#schedule();
    });
  }

  /** Resolves when everything queued before this call is durable (or failed). */
  barrier(): Promise<void> {
    if (!this.#writing && this.#waiters.length === 0) return Promise.resolve();
    return this.write([]).catch(() => undefined);
  }

  get idle(): boolean {
    return !this.#writing && this.#waiters.length === 0;
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
        const ops = this.#ops;
        const waiters = this.#waiters;
        this.#ops = [];
        this.#waiters = [];
        try {
          const injected = this.#beforeWrite();
          if (injected) throw injected;
          if (ops.length > 0) {
            for (const op of this.#seal()) ops.push(op);
            await this.#target.batch(ops, { sync: true });
            this.stats.batches++;
            this.stats.operations += ops.length;
            if (ops.length > this.stats.largestBatch) this.stats.largestBatch = ops.length;
          }
          for (const w of waiters) w.resolve();
        } catch (err) {
          for (const w of waiters) w.reject(err);
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}
