/**
 * A wall clock for due times and ages that never goes backwards.
 *
 * Due times are wall-clock instants because they are kept on disk (an event's `dueAt`, a lease's
 * `leasedAt`) and must mean something after a restart. The system clock, though, can step back:
 * a box that booted with its clock ahead (an RTC kept in local time, no NTP while the link is
 * down) is set right by NTP once the Internet is back. Read straight from `Date.now()`, every due
 * time written before the step lay in the future: nothing went to Odoo for as long as the step
 * (two hours), and ages counted from then read 0, so the status said all was well.
 *
 * `now()` is `Date.now()` while the system clock moves forward. After a step back it does not
 * follow: it goes on from its last reading at half the speed of a monotonic clock until the
 * system clock has caught up (twice the step), then follows it again. Half speed rather than
 * standing still: a clock that stood still for two hours would let no back-off written in that
 * time (a retry in 30 s, an ambiguous write's 180 s) ever come due, nor any age grow; running at
 * full speed it would stay ahead of the true time for good. Meanwhile waits measured on it last
 * up to twice as long, which only delays. Due times written meanwhile lie ahead of the true time
 * by at most what is left of the step; a restart within that time waits that much for them.
 *
 * Each component keeps its own instance (no process-wide state: a test setting the system time
 * back for one store must not move another's). Waits that need no persisting (the relay's
 * back-off) use `performance.now()` instead.
 */
export class SteadyWallClock {
  /** A step back larger than this is reported (ms): NTP's own slewing and timer jitter stay well below. */
  static readonly STEP_REPORT_MS = 5_000;

  readonly #wall: () => number;
  readonly #mono: () => number;
  /** The last value returned, the monotonic time and the system time when it was read. */
  #last: { value: number; mono: number; wall: number } | undefined;
  #ahead = 0;
  readonly #listeners = new Set<(stepMs: number) => void>();

  constructor(options: { wall?: () => number; mono?: () => number } = {}) {
    this.#wall = options.wall ?? (() => Date.now());
    this.#mono = options.mono ?? (() => performance.now());
  }

  now(): number {
    const wall = this.#wall();
    const mono = this.#mono();
    const last = this.#last;
    if (last === undefined) {
      this.#last = { value: wall, mono, wall };
      return wall;
    }
    const elapsed = Math.max(0, mono - last.mono);
    // The system clock went back by more than the time that passed since the last reading.
    const stepMs = last.wall + elapsed - wall;
    const value = wall >= last.value ? wall : Math.max(wall, last.value + elapsed / 2);
    this.#last = { value, mono, wall };
    this.#ahead = value - wall;
    if (stepMs > SteadyWallClock.STEP_REPORT_MS) for (const l of this.#listeners) l(stepMs);
    return value;
  }

  /**
   * The clock reads no earlier than `instant` (epoch ms): when `instant` lies ahead of the system
   * clock, the clock goes on from it as after a step back (half speed until the system clock has
   * caught up). For a step back across a restart, which a new instance cannot see: the store starts
   * its due clock at the newest instant it holds, since a box without a battery-backed clock boots
   * with the time of its last shutdown or its build date, behind the due times it wrote. Not a
   * step back for `onStepBack`: the caller knows what it started from and says so itself.
   */
  startFrom(instant: number): void {
    const wall = this.#wall();
    const mono = this.#mono();
    const current = this.#last === undefined ? wall : Math.max(wall, this.#last.value + Math.max(0, mono - this.#last.mono) / 2);
    if (!(instant > current)) return;
    this.#last = { value: instant, mono, wall };
    this.#ahead = instant - wall;
  }

  /**
   * How far the last reading was ahead of the system clock (ms): 0 while the system clock moves
   * forward; after a step back, what is left of it. No reading of its own (a field read).
   */
  get aheadMs(): number {
    return this.#ahead;
  }

  /** Called once per step back larger than STEP_REPORT_MS, with its size (ms), at the reading that saw it. */
  onStepBack(listener: (stepMs: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/**
 * A span of time as an operator reads it: "40 s", "25 min", "2 h", "3 days" (how far the system
 * clock is off, in the relay's and the status's clock alerts).
 */
export function span(ms: number): string {
  if (ms >= 2 * 86_400_000) return `${Math.round(ms / 86_400_000)} days`;
  if (ms >= 90 * 60_000) return `${Math.round(ms / 3_600_000)} h`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 1000)} s`;
}
