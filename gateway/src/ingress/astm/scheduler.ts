/**
 * Time as an injected dependency: the state machines never call setTimeout or Date.now directly,
 * so unit tests drive them with a fake clock and every timer can be shown to fire at its bound.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Scheduler {
  /** Milliseconds (monotonic enough for timeouts and latency). */
  now(): number;
  /** Run `fn` once after `ms`; the returned handle cancels it. */
  schedule(ms: number, fn: () => void): TimerHandle;
}

/** The real clock. Timers are `unref()`ed: a pending link timer never keeps the process alive. */
export const realScheduler: Scheduler = {
  now: () => performance.now(),
  schedule(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** A manual clock for tests: `advance(ms)` runs every timer that falls due, in order. */
export class ManualScheduler implements Scheduler {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  schedule(ms: number, fn: () => void): TimerHandle {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return { cancel: () => void this.#timers.delete(id) };
  }

  /** Timers pending (for assertions). */
  get pending(): number {
    return this.#timers.size;
  }

  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, t] of this.#timers) {
        if (t.at <= target && (t.at < nextAt || (t.at === nextAt && id < nextId))) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const t = this.#timers.get(nextId);
      this.#timers.delete(nextId);
      this.#now = nextAt;
      t?.fn();
    }
    this.#now = target;
  }
}
