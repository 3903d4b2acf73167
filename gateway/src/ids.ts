import { randomBytes } from 'node:crypto';

/**
 * Time-ordered identifiers: 12 hex digits of milliseconds, 6 of a per-millisecond counter,
 * 6 random. Lexicographic order equals creation order within one process, and across restarts as
 * long as the clock does not go backwards (the generator never goes backwards itself).
 */
export class IdGenerator {
  #lastMs = 0;
  #counter = 0;
  readonly #suffix: string;

  constructor(suffix?: string) {
    this.#suffix = suffix ?? randomBytes(3).toString('hex');
  }

  next(now: number = Date.now()): string {
    if (now > this.#lastMs) {
      this.#lastMs = now;
      this.#counter = 0;
    } else {
      this.#counter++;
      if (this.#counter > 0xffffff) {
        this.#lastMs++;
        this.#counter = 0;
      }
    }
    return this.#lastMs.toString(16).padStart(12, '0') + this.#counter.toString(16).padStart(6, '0') + this.#suffix;
  }

  /**
   * Make sure later ids sort after `id` (used at start-up with the newest stored ids). Never moves
   * back: an id of the same millisecond with a lower counter (the newest event's, observed after
   * a newer message without events) used to lower the counter, and the next id sorted before ids
   * already stored (test/unit/store-ids-restart.test.ts).
   */
  observe(id: string): void {
    const ms = Number.parseInt(id.slice(0, 12), 16);
    const counter = Number.parseInt(id.slice(12, 18), 16) || 0;
    if (Number.isFinite(ms) && (ms > this.#lastMs || (ms === this.#lastMs && counter > this.#counter))) {
      this.#lastMs = ms;
      this.#counter = counter;
    }
  }
}

export const ids = new IdGenerator();

/** Milliseconds of a time-ordered id. */
export function idTime(id: string): number {
  return Number.parseInt(id.slice(0, 12), 16);
}
