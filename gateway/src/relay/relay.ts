import type { OdooConfig, RelayConfig } from '../config/types.ts';
import { describeError, GatewayError } from '../errors.ts';
import type { EventType } from '../events/types.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { AMBIGUOUS_SETTLE_MS, type GatewayStore, type Lease, type Outcome, type StoredEvent } from '../store/types.ts';
import type { OdooLinkState, Telemetry } from '../telemetry.ts';
import { CallLimit, isHalted } from './call-limit.ts';
import { LastSuccessRecord, savedLastSuccess, savedLinkHold, saveLinkHold, type LinkHold } from './last-success.ts';
import { savedPause, savePause, type RelayPauseDetail } from './paused.ts';
import type { OdooClientLike } from './odoo/odoo-client.ts';
import { checkMachine, thisMachine, type MachineIdentity } from './machine-guard.ts';
import { failureOf, isLinkDown, isServerChanged, looksLikeServerDrift, mayHaveLanded, refusedAsTooLarge, RETRY_AFTER_CAP_MS, queuedDueAt, retryAfterOf, serverChanged, stopsTheLink, waitsForQueued } from './odoo/odoo-error.ts';
import { ReferenceData, type RefusedModel } from './reference-data.ts';
import { rulesFor, type PostingRule, type RuleContext, type RuleResult } from './rules/index.ts';
import { StockWatch } from './stock-watch.ts';
import { stampOdooRefs, type OdooTarget } from './odoo-target.ts';
import { SteadyWallClock, span } from '../wall-clock.ts';

export interface RelayOptions {
  store: GatewayStore;
  odoo: OdooClientLike;
  config: RelayConfig;
  odooConfig: OdooConfig;
  telemetry: Telemetry;
  log: Logger;
  /**
   * The wall clock (epoch ms): the time the rules write to Odoo, and the `now` of the store's
   * lease (due times). Default: `Date.now` for the former; for the latter the store's own due
   * clock (never backwards, and started at the newest instant the store holds: see
   * EventStore.newestStoredAt). Back-offs and intervals are measured on `performance.now()`
   * whatever this is.
   */
  clock?: () => number;
  /** Idle poll when nothing is due (ms). Default 250. */
  idlePollMs?: number;
  /**
   * This machine, compared at start with the one the store last sent from (machine-guard.ts);
   * default /etc/machine-id. null: not checked.
   */
  machine?: MachineIdentity | null;
  /** Back-off while Odoo is unreachable: first wait, doubled up to max (ms). Default 1 s → 60 s. */
  linkBackoff?: { initialMs: number; maxMs: number };
  /** Back-off after refused credentials (ms). Default 2 min → 30 min: never a tight login loop (A.3 cooldown). */
  authBackoff?: { initialMs: number; maxMs: number };
  /**
   * Retry of a reference pull that failed for another reason than the link (ms), or that Odoo
   * refused for some models (the rest was pulled): first wait, doubled up to max. Default 2 s → 30 min.
   * A pull that meets the link down waits for the link's back-off (or Retry-After) instead.
   */
  referenceRetry?: { initialMs: number; maxMs: number };
  /** Partitions leased per round. Default concurrency × 50 (≤ 2000). */
  leaseLimit?: number;
  /** Consecutive events of one partition per lease (micro-batching). Default 500. */
  maxPerPartition?: number;
  /**
   * Runs (consecutive events of one posting rule) of one lease posted per round; the rest of the
   * lease is released unchanged and leased again after the partitions due before it. Default
   * MAX_RUNS_PER_ROUND (8).
   */
  maxRunsPerRound?: number;
  /** Compute stock.threshold_breached locally after each reference pull. Default true. */
  watchStock?: boolean;
  /** Also re-check after posting consumption, at most this often (ms). Default 60 s (it pages the queue). */
  stockWatchIntervalMs?: number;
  /** Close the Odoo client in stop(). Default true. */
  closeClientOnStop?: boolean;
  /** The Odoo posted to: documents posted to the sandbox are stored as the sandbox's (OdooRef.sandbox). */
  odooTarget?: OdooTarget;
  /**
   * How long an ambiguous write (sent, no answer) is given to land or die before the event's
   * look-up and resend (ms; default AMBIGUOUS_SETTLE_MS, 180 s): a request still held by a busy
   * Odoo worker or its proxy queue would otherwise run after the resend and create a second
   * document.
   */
  ambiguousSettleMs?: number;
}

export interface RelayStatus {
  state: OdooLinkState;
  paused: boolean;
  lastError?: string;
  lastSuccessAt?: string;
  serverVersion?: number;
  referencePulledAt?: string;
}

interface LeaseProgress {
  lease: Lease;
  runs: Array<{ rule: PostingRule | undefined; events: StoredEvent[] }>;
  /** Index of the run to post next. */
  next: number;
  /** Runs of this lease sent to a rule in this round (see RelayOptions.maxRunsPerRound). */
  posted: number;
  outcomes: Outcome[];
  stopped: boolean;
}

interface Batch {
  rule: PostingRule;
  runs: Array<{ st: LeaseProgress; events: StoredEvent[] }>;
}

/**
 * A system clock this far past the newest stored data at start-up is reported (see
 * #checkClockAgainstStore): a month, longer than an appliance is switched off for a holiday.
 */
const CLOCK_AHEAD_WARN_MS = 30 * 86_400_000;

/**
 * Runs of one lease posted per round (RelayOptions.maxRunsPerRound). A round posts its leases'
 * runs stage by stage and leases nothing new before its last stage: one partition whose events
 * alternate between rules (an order's completions and results, again and again) made a round of
 * hundreds of stages, each a round trip to Odoo, and every order sent meanwhile waited for all of
 * them (test/integration/relay-fair-drain-audit.test.ts). An order's usual history (its order,
 * specimen, milestones, results, a cancellation) fits in one round.
 */
const MAX_RUNS_PER_ROUND = 8;

/**
 * The relay loop (DESIGN.md §1 step 4): leases the heads of ready partitions, posts them to Odoo
 * through the posting rules — batched across partitions where Odoo allows it — and resolves every
 * event through store.complete: delivered, retry (the store's backoff with jitter) or dead with a
 * reason. FIFO within a partition comes from the store (one lease per partition at a time); the
 * first failure of a lease stops it and the rest are released unchanged.
 *
 * Failure handling (odoo-api.md §4 classes):
 * - permanent (incl. missing mappings) → dead at once, with an operator-readable reason;
 * - transient for this event / ambiguous → retry (ambiguous marked; the rule looks up first);
 *   dead after relay.maxAttempts;
 * - Odoo unreachable (network, 429/502/503/504) → the lease is released WITHOUT charging an attempt
 *   (Odoo down for a week must not dead-letter anything) and the loop backs off, at least as long
 *   as the server's Retry-After;
 * - credentials refused → link 'auth-failed', leases released, re-authentication after minutes.
 */
export class Relay implements Component {
  readonly name = 'relay';
  readonly #o: RelayOptions;
  readonly #rules: Map<EventType, PostingRule>;
  readonly #ref: ReferenceData;
  readonly #watch: StockWatch;
  readonly #clock: () => number;
  /**
   * A wall clock that never goes backwards (wall-clock.ts), read once per turn: it sees a step
   * back of the system clock, which the relay reports.
   */
  readonly #steady = new SteadyWallClock();
  /**
   * The lease's `now`: RelayOptions.clock when given; otherwise none, and the store compares due
   * times with its own due clock. That one starts at the newest instant the store holds, which a
   * clock of the relay's own cannot know: with it, a box that booted two hours behind its data
   * (no battery-backed clock, the time server not reached yet) sent nothing stored before the
   * restart for two hours (test/integration/relay-clock-restart-audit.test.ts).
   */
  readonly #dueNow: (() => number) | undefined;
  #unwatchClock: (() => void) | undefined;
  /** See RelayOptions.ambiguousSettleMs. */
  readonly #settleMs: number;
  /** The rules' Odoo: at most relay.concurrency requests in flight across all batches. */
  readonly #limited: CallLimit;
  #status: ComponentStatus = 'created';
  #paused = false;
  /** Who paused it, when and why, while paused and known (pause(), paused.ts). */
  #pausedBy: RelayPauseDetail | undefined;
  /** Writes of the operator's pause, one after another (#savePause). */
  #pauseWrites: Promise<void> = Promise.resolve();
  /**
   * The client has detected the server, signed in and read the field maps since the link last
   * failed. Cleared by refused credentials and by a link failure: the end of an outage is a new
   * connection (#connect), since the Odoo that answers may have been upgraded or had modules
   * installed meanwhile.
   */
  #connected = false;
  /** The major version of the last successful connection (0 before the first). */
  #connectedVersion = 0;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #linkWait = 0;
  #authWait = 0;
  /** ODOO_AUTH_FAILED was raised and not cleared yet. */
  #authAlerted = false;
  /**
   * No login or round before this time (`performance.now()` ms): the back-off of a refused login
   * or a link down. Monotonic: on the wall clock, NTP stepping the clock back two hours made it a
   * two-hour wait (test/e2e/outage-night-audit.test.ts).
   */
  #notBefore = 0;
  /** When the last reference pull began (`performance.now()` ms, as the intervals below). */
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #refOk = false;
  /** Wait before a failed (or partly refused) reference pull is tried again; see RelayOptions.referenceRetry. */
  #refWait = 0;
  /**
   * Models whose reference pull Odoo refused, with the alert raised and not cleared yet:
   * 'access' ODOO_REFERENCE_REFUSED, 'error' ODOO_REFERENCE_FAILED.
   */
  readonly #refusedAlerted = new Map<string, RefusedModel['kind']>();
  #lastWatch = Number.NEGATIVE_INFINITY;
  /**
   * Consumption was posted within stockWatchIntervalMs of the last check: the check it skipped is
   * owed and runs from #housekeeping once the interval has passed (a trailing run).
   */
  #watchOwed = false;
  #lastKeyCheck = Number.NEGATIVE_INFINITY;
  #lastSuccessAt: string | undefined;
  /** The last success kept in the store: the status shows it after a restart (last-success.ts). */
  readonly #lastSuccess: LastSuccessRecord;
  #lastError: string | undefined;
  /** Writes of the server's Retry-After to the store, one after another (#keepHold). */
  #holdWrites: Promise<void> = Promise.resolve();
  /** The store may hold a Retry-After: the next success drops it. */
  #holdKept = false;
  /**
   * The server's latest Retry-After ends then (`performance.now()` ms): one kept from before a
   * restart (#resumeHold) or given since to any call, the connection's (version, sign-in) included
   * (#linkTrouble). A resume() does not cut it short.
   */
  #serverHoldUntil = 0;
  /** A round is under way: a pause or a stop halts its calls not sent yet (CallLimit.halt). */
  #inRound = false;
  /** The server's version read afresh in this round (#recheckServer), once per round at most. */
  #versionNow: Promise<number | Error> | undefined;

  constructor(options: RelayOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
    this.#dueNow = options.clock;
    this.#settleMs = options.ambiguousSettleMs ?? AMBIGUOUS_SETTLE_MS;
    this.#limited = new CallLimit(options.odoo, options.config.concurrency);
    // relay.concurrency requests in flight need as many sockets: with fewer, a request waits for
    // one while its timeout runs, and a write that never left is reported ambiguous (held 180 s).
    options.odoo.reserveConnections?.(options.config.concurrency);
    this.#rules = rulesFor(options.config);
    this.#ref = new ReferenceData({ store: options.store, odoo: this.#limited, mapping: options.odooConfig.mapping, log: options.log });
    this.#watch = new StockWatch({ store: options.store, ref: this.#ref, log: options.log, clock: this.#clock });
    this.#lastSuccess = new LastSuccessRecord(options.store, options.log);
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  get reference(): ReferenceData {
    return this.#ref;
  }

  snapshot(): RelayStatus {
    return {
      state: this.#paused ? 'paused' : this.#o.odoo.state,
      paused: this.#paused,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
      ...(this.#lastSuccessAt ? { lastSuccessAt: this.#lastSuccessAt } : {}),
      ...(this.#o.odoo.serverVersion ? { serverVersion: this.#o.odoo.serverVersion } : {}),
      ...(this.#ref.snapshot.pulledAt ? { referencePulledAt: this.#ref.snapshot.pulledAt } : {}),
    };
  }

  async start(): Promise<void> {
    if (this.#status === 'running' || this.#status === 'starting') return;
    this.#status = 'starting';
    await this.#ref.loadCached().catch((err) => this.#o.log.warn('cached reference data unreadable', { error: describeError(err) }));
    this.#lastSuccessAt ??= await savedLastSuccess(this.#o.store).catch(() => undefined);
    // An operator's pause holds across a restart (paused.ts): set before the loop leases anything.
    // Unreadable, it is taken as set: sending into a period an operator closed is the worse error.
    const paused = await savedPause(this.#o.store).catch((err: unknown) => {
      this.#o.log.error('the relay pause kept in the store is unreadable: starting paused; resume it once checked', { error: describeError(err) });
      return { detail: undefined };
    });
    if (paused) {
      this.#paused = true;
      this.#pausedBy = paused.detail;
    }
    // A store last relayed from another machine (a restored backup, a copied disk): paused until an
    // administrator resumes, the other box perhaps still sending the same queue (machine-guard.ts).
    // Unreadable, it is left unchecked: the store's own errors say why.
    const moved = await checkMachine(this.#o.store, this.#o.machine === undefined ? thisMachine() : (this.#o.machine ?? undefined)).catch((err: unknown) => {
      this.#o.log.warn('the machine this store last sent from is unreadable: not checked', { error: describeError(err) });
      return undefined;
    });
    if (moved) {
      this.#o.log.error(`sending to Odoo paused: ${moved.reason}`);
      if (!this.#paused) {
        this.#paused = true;
        this.#pausedBy = moved;
        await this.#savePause(true, moved).catch((err: unknown) => this.#o.log.error('the relay pause could not be kept in the store', { error: describeError(err) }));
      }
    }
    // A Retry-After the server gave before a restart still holds (last-success.ts LinkHold).
    const hold = await savedLinkHold(this.#o.store).catch(() => undefined);
    const held = hold ? this.#resumeHold(hold) : 0;
    this.#status = 'running';
    this.#unwatchClock ??= this.#steady.onStepBack((stepMs) => this.#clockSteppedBack(stepMs));
    this.#checkClockAgainstStore();
    if (!this.#o.config.enabled) {
      this.#o.telemetry.emit('odoo.state', { state: 'disabled' });
      return;
    }
    if (this.#paused) this.#o.telemetry.emit('odoo.state', { state: 'paused' });
    else if (held > 0) this.#o.telemetry.emit('odoo.state', { state: 'unreachable', ...(this.#lastError ? { lastError: this.#lastError } : {}) });
    this.#limited.holdUntilReopened(true);
    this.#loop = this.#run().catch((err) => {
      this.#o.log.error('relay loop failed', { error: describeError(err) });
      this.#status = 'failed';
    });
  }

  async stop(deadlineMs = 10_000): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'created') {
      this.#status = 'stopped';
      return;
    }
    this.#status = 'stopping';
    // The round under way sends nothing more: the calls already sent are answered and recorded
    // before the deadline, the rest released unchanged (CallLimit.halt).
    if (this.#inRound) this.#limited.halt('stopping');
    this.#wake?.();
    if (this.#loop) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#loop, new Promise<void>((r) => (timer = setTimeout(r, deadlineMs).unref()))]);
      clearTimeout(timer);
    }
    await this.#lastSuccess.flush();
    await this.#holdWrites;
    if (this.#o.closeClientOnStop !== false) this.#o.odoo.close();
    this.#limited.holdUntilReopened(false);
    this.#unwatchClock?.();
    this.#unwatchClock = undefined;
    this.#status = 'stopped';
  }

  /**
   * Admin: stop posting until resume(), across restarts too (paused.ts). In effect at once: the
   * calls already sent to Odoo are answered and recorded; the round under way sends nothing more,
   * inside a batch too (CallLimit.halt: a chatter-note batch of many orders stops after the notes
   * in flight), starts no further batch or stage, and its events not sent are released unchanged
   * (not charged, not ambiguous). Resolves once the store holds it, with `detail` (who, when and
   * why: the status names them, after a restart too) when given.
   */
  pause(detail?: RelayPauseDetail): Promise<void> {
    this.#pausedBy = detail;
    const saved = this.#savePause(true, detail);
    if (this.#paused) return saved;
    this.#paused = true;
    if (this.#inRound) this.#limited.halt('paused');
    this.#o.telemetry.emit('odoo.state', { state: 'paused' });
    return saved;
  }

  /** Admin: post again; resolves once the store no longer holds the pause. */
  resume(): Promise<void> {
    this.#pausedBy = undefined;
    const saved = this.#savePause(false);
    if (!this.#paused) return saved;
    this.#paused = false;
    if (this.#running()) this.#limited.unhalt();
    // An operator resuming wants it tried now, though not before the time the server asked for
    // (#serverHoldUntil: before a restart or since, to a round, a pull or the connection). Before,
    // a 429 "Retry-After: 30" on the version check of a connection was forgotten by a resume,
    // and the gateway signed in again at once (test/integration/relay-fair-drain-audit.test.ts).
    this.#notBefore = this.#serverHoldUntil > performance.now() ? this.#serverHoldUntil : 0;
    this.#o.telemetry.emit('odoo.state', { state: this.#o.odoo.state });
    this.#wake?.();
    return saved;
  }

  /** The pause as the store keeps it, written in the order of the operator's actions. */
  #savePause(paused: boolean, detail?: RelayPauseDetail): Promise<void> {
    const write = this.#pauseWrites.then(() => savePause(this.#o.store, paused, detail));
    this.#pauseWrites = write.catch(() => undefined);
    return write;
  }

  /**
   * Who paused it, when and why, while paused: undefined when running, and when the pause was
   * kept without them (by an earlier version, or set with no detail).
   */
  get pausedBy(): RelayPauseDetail | undefined {
    return this.#pausedBy;
  }

  /** Nudge the loop (e.g. after a commit); otherwise it polls every idlePollMs. */
  notify(): void {
    this.#wake?.();
  }

  /** Pull reference data now (admin action / tests). */
  async refreshReference(): Promise<void> {
    // A running relay not connected yet pulls as soon as it connects. Pulled now, the client
    // refused the call ("not connected to Odoo", an auth failure) and the relay's own first pull,
    // which shares a pull in flight, failed with it as refused credentials: the demo's pull right
    // after start-up held every event for two minutes.
    if (this.#running() && this.#o.config.enabled && !this.#connected) return;
    await this.#ref.refresh();
    this.#lastRefresh = performance.now();
    this.#reportRefused();
    if (this.#o.watchStock !== false) {
      // This check sees every consumption posted so far: it pays what was owed.
      this.#watchOwed = false;
      await this.#watch.check();
    }
  }

  // ---------------------------------------------------------------------------------------------

  #running(): boolean {
    return this.#status === 'running';
  }

  /** Running and not paused: a round may start another batch or stage. */
  #posting(): boolean {
    return this.#running() && !this.#paused;
  }

  async #sleep(ms: number): Promise<void> {
    if (!this.#running()) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = undefined;
  }

  async #run(): Promise<void> {
    const idle = this.#o.idlePollMs ?? 250;
    while (this.#running()) {
      if (this.#paused) {
        await this.#sleep(idle * 4);
        continue;
      }
      // A refused login or an unreachable Odoo is tried again only after its back-off: a message
      // committed meanwhile wakes the loop (notify), it must not start a new login or a new round.
      // (Five messages made six logins with a wrong key, and Odoo then blocks the lab's address.)
      this.#steady.now(); // one reading per turn: a step back of the system clock is seen (and reported)
      const wait = this.#notBefore - performance.now();
      if (wait > 0) {
        await this.#sleep(wait);
        continue;
      }
      // The back-off has passed: calls go to Odoo again, unless a Retry-After still holds them.
      const held = this.#limited.reopen();
      if (held > 0) {
        this.#notBefore = performance.now() + held;
        continue;
      }
      if (!this.#connected && !(await this.#connect())) continue;
      // The pull at connect may have met the link down: its back-off holds for the next pull too.
      if (this.#notBefore > performance.now()) continue;
      await this.#housekeeping();
      // A reference pull that met the link down (or refused credentials) set a back-off: no round now.
      if (this.#paused || !this.#running() || !this.#connected || this.#notBefore > performance.now()) continue;
      let leases: Lease[];
      try {
        // Leased across types: a partition's runs are posted stage by stage in one round (#round),
        // and the milestone types share one rule, so an order's notes become ONE chatter post.
        leases = await this.#o.store.lease({ limit: this.#leaseLimit(), maxPerPartition: this.#o.maxPerPartition ?? 500, sameTypeOnly: false, ...(this.#dueNow ? { now: this.#dueNow() } : {}) });
      } catch (err) {
        this.#o.log.error('lease failed', { error: describeError(err) });
        await this.#sleep(1000);
        continue;
      }
      if (leases.length === 0) {
        await this.#sleep(idle);
        continue;
      }
      this.#inRound = true;
      const { trouble, retryAfterMs } = await this.#round(leases).finally(() => {
        // A pause or a stop halted what was left of it: the next round's calls go (once resumed).
        this.#inRound = false;
        this.#limited.unhalt();
      });
      if (trouble === 'auth') {
        this.#connected = false;
      } else if (trouble === 'link') {
        this.#linkTrouble(retryAfterMs);
      } else if (trouble === 'no-answer') {
        this.#linkTrouble(0, false);
      } else {
        this.#linkWait = 0;
      }
    }
  }

  #leaseLimit(): number {
    return this.#o.leaseLimit ?? Math.min(2000, Math.max(1, this.#o.config.concurrency) * 50);
  }
  #linkBackoff(): { initialMs: number; maxMs: number } {
    return this.#o.linkBackoff ?? { initialMs: 1000, maxMs: 60_000 };
  }

  /**
   * The link is down (unreachable, 429/502/503/504): nothing goes to Odoo (no round, no pull, no
   * login) before the loop's back-off (doubled at each failure) or the server's Retry-After
   * (`retryAfterMs`), whichever ends later. Returns the wait (ms).
   *
   * The first thing sent after it is a new connection (#connect: version, protocol, sign-in, field
   * maps), once per recovery: Odoo may come back upgraded (18 → 19 on the same URL: JSON-2, and
   * `product_uom_id` where 18 had `product_uom`) or with modules installed. Before, the client kept
   * what it had read before the outage, and every order of the night was dead-lettered by Odoo 19
   * ("KeyError: 'product_uom'", test/e2e/outage-night-audit.test.ts). `relink` false: a round
   * that resolved nothing without any link failure, which only backs off.
   */
  #linkTrouble(retryAfterMs = 0, relink = true): number {
    const b = this.#linkBackoff();
    this.#linkWait = Math.min(b.maxMs, this.#linkWait ? this.#linkWait * 2 : b.initialMs);
    const wait = Math.max(this.#linkWait, retryAfterMs);
    this.#notBefore = Math.max(this.#notBefore, performance.now() + wait);
    if (relink) this.#connected = false;
    // The server's own time is kept: a resume() does not cut it short, and it holds across a
    // restart too (last-success.ts LinkHold).
    if (retryAfterMs > 0) {
      this.#serverHoldUntil = Math.max(this.#serverHoldUntil, performance.now() + retryAfterMs);
      this.#keepHold({ until: this.#clock() + retryAfterMs, error: this.#lastError ?? `Odoo asked the gateway to wait ${Math.ceil(retryAfterMs / 1000)} s (Retry-After)` });
    }
    return wait;
  }

  /** Keep (or drop) the server's Retry-After in the store, in the order of the failures. */
  #keepHold(hold: LinkHold | undefined): void {
    this.#holdKept = hold !== undefined;
    this.#holdWrites = this.#holdWrites
      .then(() => saveLinkHold(this.#o.store, hold))
      .catch((err: unknown) => this.#o.log.warn('could not keep the time Odoo asked the gateway to wait until', { error: describeError(err) }));
  }

  /**
   * At start-up: a Retry-After kept before the restart that has not passed holds the loop (no
   * login, no pull, no round) for what is left of it, at most RETRY_AFTER_CAP_MS whatever the clock
   * did meanwhile; the status shows the failure that asked for it. Returns the wait (ms), 0 if none.
   */
  #resumeHold(hold: LinkHold): number {
    this.#holdKept = true;
    const left = Math.min(RETRY_AFTER_CAP_MS, hold.until - this.#clock());
    if (left <= 0) return 0;
    this.#serverHoldUntil = Math.max(this.#serverHoldUntil, performance.now() + left);
    this.#notBefore = Math.max(this.#notBefore, this.#serverHoldUntil);
    if (hold.error) this.#lastError = hold.error;
    this.#o.log.warn('Odoo asked the gateway to wait before the restart: nothing is sent until then', { until: new Date(hold.until).toISOString(), waitMs: Math.round(left), error: hold.error });
    return left;
  }

  /** Refused credentials: the link waits minutes (doubled at each refusal), ODOO_AUTH_FAILED once per episode. */
  #authTrouble(): void {
    const b = this.#o.authBackoff ?? { initialMs: 120_000, maxMs: 1_800_000 };
    this.#authWait = Math.min(b.maxMs, this.#authWait ? this.#authWait * 2 : b.initialMs);
    this.#o.log.error('Odoo refused the credentials; retrying later', { error: this.#lastError, retryInMs: this.#authWait });
    // Once per refusal episode (not at every re-login with the same key), cleared in #connect.
    if (!this.#authAlerted) this.#o.telemetry.alert('critical', 'ODOO_AUTH_FAILED', `Odoo refused the gateway's credentials: ${this.#lastError}`);
    this.#authAlerted = true;
    this.#notBefore = performance.now() + this.#authWait;
  }

  async #connect(): Promise<boolean> {
    try {
      await this.#o.odoo.connect();
      this.#connected = true;
      const version = this.#o.odoo.serverVersion;
      const before = this.#connectedVersion;
      this.#connectedVersion = version;
      if (before !== 0 && version !== before) this.#versionChanged(before, version);
      if (this.#authAlerted) {
        this.#authAlerted = false;
        this.#o.telemetry.alert('info', 'ODOO_AUTH_FAILED_CLEARED', 'Odoo accepted the gateway\'s credentials again');
      }
      this.#authWait = 0;
      this.#linkWait = 0;
      this.#lastError = undefined;
      this.#succeeded();
      this.#o.log.info('connected to Odoo', { version });
      // A reconnection after an outage to the same version keeps the reference data (pulled on its
      // schedule); a new version reads it again (units differ between 18 and 19).
      if (before === 0 || version !== before || !this.#refOk) await this.#pullReference();
      return true;
    } catch (err) {
      this.#lastError = describeError(err);
      if (failureOf(err) === 'auth') this.#authTrouble();
      else this.#o.log.warn('Odoo not reachable', { error: this.#lastError, retryInMs: this.#linkTrouble(retryAfterOf(err)) });
      return false;
    }
  }

  /**
   * The Odoo on the configured URL answers as another major version than at the last connection
   * (upgraded, or restored from an older one, while the link was down). The client has read the
   * version, protocol and fields again (#connect); said once, in the log and as an `info` alert.
   */
  #versionChanged(before: number, version: number): void {
    const text = `Odoo now answers as version ${version} (it was ${before}): the gateway has read its protocol and fields again and posts with them`;
    this.#o.log.warn('Odoo version changed', { from: before, to: version });
    this.#o.telemetry.alert('info', 'ODOO_VERSION_CHANGED', text);
  }

  /**
   * The system clock went back (NTP correcting a box that booted with its clock ahead). Due times
   * and ages keep to the steady clock (wall-clock.ts) and back-offs to the monotonic one, so the
   * queue keeps flowing; said once per step, in the log and as a `warning` alert, since times the
   * gateway wrote before the step (received at, delivered at) are off by as much.
   */
  #clockSteppedBack(stepMs: number): void {
    const minutes = Math.round(stepMs / 60_000);
    const size = minutes >= 1 ? `${minutes} min` : `${Math.round(stepMs / 1000)} s`;
    const text = `The system clock went back by ${size}; due times and ages follow a clock that does not go back until the system clock has caught up. Times recorded before the step are off by as much: check the box's time source (NTP, RTC)`;
    this.#o.log.warn('system clock stepped back', { stepMs: Math.round(stepMs) });
    this.#o.telemetry.alert('warning', 'CLOCK_STEPPED_BACK', text);
  }

  /**
   * At start-up, the system clock against the newest instant the store holds (its ids, completions
   * and open leases). A box without a battery-backed clock boots with the time of its last
   * shutdown or its build date and keeps it until the time server answers; one with a bad hardware
   * clock, or a wrong year typed in, is ahead. The queue and retention cope (the due clock starts
   * at the stored data, retention's clock runs ahead of it only by a day plus twice the time since
   * start-up: store/README.md "Which now", "Retention"), but every time the gateway writes now
   * (received at, delivered at, times sent to Odoo) is off by the error: said once, in the log and
   * as a `warning` alert, since the status otherwise looked fine. Behind by more than
   * SteadyWallClock.STEP_REPORT_MS, or ahead by more than CLOCK_AHEAD_WARN_MS (a box switched off
   * over a weekend with its clock right is ahead of its data too, and that is no error).
   */
  #checkClockAgainstStore(): void {
    const newest = this.#o.store.newestStoredAt?.();
    if (newest === undefined) return;
    const now = this.#clock();
    const at = new Date(newest).toISOString();
    if (newest - now > SteadyWallClock.STEP_REPORT_MS) {
      const text = `The system clock is ${span(newest - now)} behind the newest data the gateway stored (${at}): the box started with a wrong time (no battery-backed clock, or the time server not reached yet). Events stored before are sent as usual; times recorded until the clock is set right are off by as much: check the box's time source (NTP, RTC)`;
      this.#o.log.warn('system clock behind the stored data', { behindMs: Math.round(newest - now), newestStoredAt: at });
      this.#o.telemetry.alert('warning', 'CLOCK_BEHIND_STORED_DATA', text);
    } else if (now - newest > CLOCK_AHEAD_WARN_MS) {
      const text = `The system clock is ${span(now - newest)} past the newest data the gateway stored (${at}). If the gateway was not switched off that long, the clock is wrong (a mistyped date, a bad hardware clock): retention does not delete by it (its clock runs at most a day plus twice the time since start-up past the stored data), but times recorded now are off: check the box's time source (NTP, RTC)`;
      this.#o.log.warn('system clock far ahead of the stored data', { aheadMs: Math.round(now - newest), newestStoredAt: at });
      this.#o.telemetry.alert('warning', 'CLOCK_AHEAD_OF_STORED_DATA', text);
    }
  }

  /**
   * Pull the reference data. A pull that meets the link down (unreachable, 429/502/503/504) backs
   * the whole loop off as a round does (Retry-After honoured) and is tried again once that has
   * passed; refused credentials stop the link as in #connect. Any other failure, or a pull Odoo
   * refused for some models (the rest is pulled and used, ReferenceData.refused), is tried again
   * after a growing delay (RelayOptions.referenceRetry). Before, a failed pull was repeated every
   * 2 s whatever the cause: seven paged reads every 2 s at a rate-limited Odoo, and forever for a
   * model the bot may not read.
   */
  async #pullReference(): Promise<void> {
    this.#lastRefresh = performance.now();
    try {
      await this.refreshReference();
    } catch (err) {
      this.#refOk = false;
      if (isHalted(err)) {
        // A pause or a stop cut it short: no news of the link; pulled again once the loop runs.
        this.#refWait = 0;
        return;
      }
      this.#lastError = describeError(err);
      const failure = failureOf(err);
      if (failure === 'auth' || isLinkDown(err)) (this.#o.odoo as { noteFailure?: (e: unknown) => void }).noteFailure?.(err);
      if (failure === 'auth') {
        this.#connected = false;
        this.#authTrouble();
      } else if (isLinkDown(err)) {
        this.#refWait = 0;
        // #linkTrouble: the next call to Odoo after the back-off is a new connection.
        this.#o.log.warn('reference pull failed: Odoo not reachable', { error: this.#lastError, retryInMs: this.#linkTrouble(retryAfterOf(err)) });
      } else {
        this.#o.log.warn('reference pull failed', { error: this.#lastError, retryInMs: this.#growRefWait() });
      }
      return;
    }
    // Odoo answered the pull (some models may have been refused on their merits): the link is up.
    // A pull that met the link down set it 'unreachable' (noteFailure above); with nothing queued
    // no round would ever set it back, and /api/status kept "Odoo unreachable" while Odoo answered.
    this.#linkUp();
    this.#refOk = this.#ref.refused.length === 0;
    // Models Odoo failed to read (not refused for rights): an upgrade the gateway did not see go
    // down (no outage, no new connection) fails every pull on the old fields. A new version is a
    // new connection at once (#connect pulls again with the new fields). Before, the pull failed
    // every time until an event's round or a restart relinked, the stock watch blind meanwhile
    // (test/integration/relay-upgrade-unseen-audit.test.ts).
    if (!this.#refOk && this.#ref.refused.some((r) => r.kind === 'error') && (await this.#serverMoved())) {
      this.#refWait = 0;
      this.#connected = false;
      return;
    }
    if (this.#refOk) this.#refWait = 0;
    else this.#o.log.warn('reference pull incomplete: Odoo did not let the gateway read some models', { models: this.#ref.refused.map((r) => r.model), retryInMs: this.#growRefWait() });
  }

  /** Odoo answered: the link is connected again (after an outage) and no link error is current. */
  #linkUp(): void {
    this.#lastError = undefined;
    this.#succeeded();
    (this.#o.odoo as { noteSuccess?: () => void }).noteSuccess?.();
  }

  /** Odoo answered: the last success, kept in the store for the status after a restart. */
  #succeeded(): void {
    this.#lastSuccessAt = new Date(this.#clock()).toISOString();
    this.#lastSuccess.note(this.#lastSuccessAt);
    if (this.#holdKept) this.#keepHold(undefined);
  }

  #growRefWait(): number {
    const b = this.#o.referenceRetry ?? { initialMs: 2_000, maxMs: 1_800_000 };
    this.#refWait = Math.min(b.maxMs, this.#refWait ? this.#refWait * 2 : b.initialMs);
    return this.#refWait;
  }

  /**
   * One alert per model Odoo refused to read, naming the model, what it is for and Odoo's message:
   * ODOO_REFERENCE_REFUSED for an AccessError (the user may not read it: stock.warehouse.orderpoint
   * for a bot without inventory rights), with the right to give; ODOO_REFERENCE_FAILED for any other
   * permanent error (a ValueError on a field after an Odoo upgrade), which no right fixes. The
   * matching _CLEARED alert once the model is read again.
   */
  #reportRefused(): void {
    const refused = this.#ref.refused;
    const login = this.#o.odooConfig.login ? ` '${this.#o.odooConfig.login}'` : '';
    for (const r of refused) {
      if (this.#refusedAlerted.get(r.model) === r.kind) continue;
      this.#refusedAlerted.set(r.model, r.kind);
      const reason = r.reason.replace(/[.\s]+$/, '');
      if (r.kind === 'access') {
        this.#o.telemetry.alert(
          'warning',
          'ODOO_REFERENCE_REFUSED',
          `Odoo does not let the gateway's user${login} read ${r.model} (${r.label}): ${reason}. The other reference data was pulled and is used; ${r.effect}. Give the user read access to ${r.model} in Odoo (or ignore this if the site does not use it); the gateway tries again with a growing delay.`,
        );
      } else {
        this.#o.telemetry.alert(
          'warning',
          'ODOO_REFERENCE_FAILED',
          `Odoo answered the gateway's read of ${r.model} (${r.label}) with an error: ${reason}. The other reference data was pulled and is used; ${r.effect}. The gateway tries again with a growing delay; if the error stays, look at Odoo's log for this read (after an Odoo upgrade, a field the gateway reads may have changed).`,
        );
      }
    }
    for (const [model, kind] of [...this.#refusedAlerted]) {
      if (refused.some((r) => r.model === model)) continue;
      this.#refusedAlerted.delete(model);
      if (kind === 'access') this.#o.telemetry.alert('info', 'ODOO_REFERENCE_REFUSED_CLEARED', `Odoo lets the gateway read ${model} again`);
      else this.#o.telemetry.alert('info', 'ODOO_REFERENCE_FAILED_CLEARED', `Odoo answers the gateway's read of ${model} again`);
    }
  }

  async #housekeeping(): Promise<void> {
    const now = performance.now();
    if (now - this.#lastKeyCheck > 3_600_000) {
      this.#lastKeyCheck = now;
      (this.#o.odoo as { checkKeyExpiry?: (now?: number) => unknown }).checkKeyExpiry?.(this.#clock());
    }
    // A failed pull is retried after its back-off (#pullReference); a good one after referenceRefreshMs.
    const every = this.#o.config.referenceRefreshMs;
    if ((!this.#refOk && now - this.#lastRefresh >= this.#refWait) || (every > 0 && now - this.#lastRefresh >= every)) await this.#pullReference();
    if (this.#watchOwed && performance.now() - this.#lastWatch >= this.#watchEvery()) await this.#checkStock();
  }

  #watchEvery(): number {
    return this.#o.stockWatchIntervalMs ?? 60_000;
  }

  /** The stock watch after posted consumption (throttled by #round, owed runs from #housekeeping). */
  async #checkStock(): Promise<void> {
    this.#lastWatch = performance.now();
    this.#watchOwed = false;
    await this.#watch.check().catch((err) => this.#o.log.warn('stock watch failed', { error: describeError(err) }));
    // A re-read of the lab stock Odoo refused (ReferenceData.refused, `reread`): told once.
    this.#reportRefused();
  }

  /**
   * One round. A lease (one partition's consecutive due events) is split into runs of events that
   * share a posting rule — an order's `order.created` then its milestone notes. Stage by stage, the
   * k-th run of every lease still going is batched with the same rule's runs from other partitions
   * and posted with bounded concurrency; a lease stops at its first failure, and after
   * maxRunsPerRound runs (the rest released for a later round). Each lease is then completed ONCE
   * with all its outcomes (one store write per partition per round).
   */
  async #round(leases: Lease[]): Promise<{ trouble: 'ok' | 'link' | 'auth' | 'no-answer'; retryAfterMs: number }> {
    const started = performance.now();
    this.#versionNow = undefined;
    const states: LeaseProgress[] = leases.map((lease) => ({ lease, runs: this.#runs(lease.events), next: 0, posted: 0, outcomes: [], stopped: false }));
    // A head whose attempts are spent (its last one's answer lost, held since: #failureOutcome) is
    // dead-lettered now, without sending anything again.
    for (const st of states) {
      const head = st.lease.events[0];
      if (head && head.attempts >= this.#o.config.maxAttempts) {
        st.outcomes.push({ eventId: head.event.id, outcome: 'dead', reason: `gave up after ${head.attempts} attempts: ${head.lastError ?? 'no answer'}` });
        st.stopped = true;
      }
    }
    const maxRuns = Math.max(1, this.#o.maxRunsPerRound ?? MAX_RUNS_PER_ROUND);
    const store = this.#o.store;
    const ctx: RuleContext = {
      odoo: this.#limited,
      ref: this.#ref,
      config: this.#o.config,
      odooConfig: this.#o.odooConfig,
      log: this.#o.log,
      now: this.#clock,
      events: (correlationId, types) => store.eventsByCorrelation(correlationId, types),
      doc: (namespace, key) => store.getDoc(namespace, key),
    };
    let trouble = 'ok' as 'ok' | 'link' | 'auth';
    /** The longest Retry-After a link failure of this round carried (ms). */
    let retryAfterMs = 0;
    /** Odoo took something in this round (a batch that met no link trouble, with a result that is not a failure). */
    let answered = false;
    /** A pause or a stop kept some of its calls from being sent (CallLimit.halt). */
    let halted = false;
    for (;;) {
      // Stopping (stop()) or paused by an operator: no further stage. What was posted is recorded
      // below, the rest released unchanged. Before, the round went on stage after stage: past
      // stop()'s deadline, the store closed under it and its events stayed in flight (at the next
      // start, held as ambiguous for the settle time though never sent); after a pause for the
      // month-end close, notes and results kept reaching Odoo after the time the status gave for
      // the pause (test/integration/relay-fair-drain-audit.test.ts).
      if (!this.#posting()) break;
      const active = states.filter((st) => !st.stopped && st.next < st.runs.length);
      if (active.length === 0) break;
      const batches: Batch[] = [];
      const open = new Map<PostingRule, Batch>();
      for (const st of active) {
        const run = st.runs[st.next]!;
        if (!run.rule) {
          // Rule switched off (relay.rules.<type>: false): delivered with nothing posted.
          for (const e of run.events) st.outcomes.push({ eventId: e.event.id, outcome: 'delivered' });
          st.next++;
          continue;
        }
        if (st.posted >= maxRuns) {
          // Its share of this round is used: the rest is released unchanged (no outcome) and the
          // partition is due again behind those that waited meanwhile.
          st.stopped = true;
          continue;
        }
        st.posted++;
        if (!run.rule.crossPartition) {
          batches.push({ rule: run.rule, runs: [{ st, events: run.events }] });
          continue;
        }
        let b = open.get(run.rule);
        const size = b ? b.runs.reduce((n, r) => n + r.events.length, 0) : 0;
        if (!b || size + run.events.length > run.rule.maxBatch) {
          b = { rule: run.rule, runs: [] };
          open.set(run.rule, b);
          batches.push(b);
        }
        b.runs.push({ st, events: run.events });
      }
      let next = 0;
      const worker = async (): Promise<void> => {
        // Once a batch met the link down (or refused credentials), no worker starts another one:
        // their events stay as they are for the round after the back-off. (Before, the stage's
        // other batches were still sent, after a 429 "Retry-After: 60" too.) Nor once stopping or
        // paused.
        while (next < batches.length && trouble === 'ok' && this.#posting()) {
          const batch = batches[next++]!;
          const { results, trouble: t, retryAfterMs: wait } = await this.#postBatch(ctx, batch);
          if ([...results.values()].some((r) => !r.ok && isHalted(r.error))) halted = true;
          if (t === 'auth' || (t === 'link' && trouble === 'ok')) trouble = t;
          retryAfterMs = Math.max(retryAfterMs, wait);
          if (t === 'ok' && [...results.values()].some((r) => r.ok)) answered = true;
          for (const { st, events } of batch.runs) {
            const outcomes = this.#outcomes(events, results);
            st.outcomes.push(...outcomes);
            if (outcomes.length === events.length && outcomes.every((o) => o.outcome === 'delivered')) st.next++;
            else st.stopped = true;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(this.#o.config.concurrency, batches.length)) }, worker));
      if (trouble !== 'ok') break;
    }
    const latency = performance.now() - started;
    // The link's state is the round's, decided once it is over: a batch answered after another
    // batch of the round met the link down (a note sent before a 429, answered after it) set the
    // link back to connected, with no error, while the loop held back for the Retry-After
    // (test/integration/relay-fair-drain-audit.test.ts). Odoo did answer it: the last success.
    if (answered && trouble === 'ok') this.#linkUp();
    else if (answered) this.#succeeded();
    await Promise.all(states.map((st) => this.#complete(st.lease, st.outcomes, latency)));
    // Nothing resolved and no link trouble (a rule gave no answer): do not spin on the same heads.
    // (A round a stop or a pause cut short is no such case.)
    const resolved = trouble !== 'ok' || halted || !this.#posting() || states.some((st) => st.outcomes.length > 0);
    // Re-check after consumption, at most every stockWatchIntervalMs; a round within the interval
    // leaves the check owed (#housekeeping runs it once the interval has passed). Before, it was
    // skipped for good: stock crossing its minimum then raised no breach until the next pull.
    // After a link failure the check is owed too: nothing goes to Odoo before the back-off.
    const consumed = leases.some((l) => l.events.some((e) => e.event.type === 'consumable.used'));
    // The consumption rule's re-read of the lab stock Odoo refused (it posts from the last pull): told once.
    if (consumed) this.#reportRefused();
    if (this.#o.watchStock !== false && consumed) {
      if (trouble === 'ok' && performance.now() - this.#lastWatch >= this.#watchEvery()) await this.#checkStock();
      else this.#watchOwed = true;
    }
    return { trouble: resolved ? trouble : 'no-answer', retryAfterMs };
  }

  /** Consecutive events handled by the same rule. */
  #runs(events: StoredEvent[]): Array<{ rule: PostingRule | undefined; events: StoredEvent[] }> {
    const runs: Array<{ rule: PostingRule | undefined; events: StoredEvent[] }> = [];
    for (const e of events) {
      const rule = this.#rules.get(e.event.type);
      const last = runs[runs.length - 1];
      if (last && last.rule === rule) last.events.push(e);
      else runs.push({ rule, events: [e] });
    }
    return runs;
  }

  async #postBatch(ctx: RuleContext, batch: Batch): Promise<{ results: Map<string, RuleResult>; trouble: 'ok' | 'link' | 'auth'; retryAfterMs: number }> {
    const events = batch.runs.flatMap((r) => r.events);
    const results = new Map<string, RuleResult>();
    // A run longer than the rule's batch is posted in FIFO chunks; a failing chunk stops it.
    for (let i = 0; i < events.length; i += batch.rule.maxBatch) {
      if (!(await this.#postChunk(ctx, batch.rule, events.slice(i, i + batch.rule.maxBatch), results))) break;
    }
    await this.#recheckServer(results);
    const { trouble, retryAfterMs, error } = batchTrouble(results.values());
    if (error !== undefined) {
      this.#lastError = describeError(error);
      (this.#o.odoo as { noteFailure?: (e: unknown) => void }).noteFailure?.(error);
    }
    return { results, trouble, retryAfterMs };
  }

  /**
   * Posts `chunk`, its results into `results`; false when one of its events failed (the run
   * stops there). A web proxy between the gateway and Odoo that refused a call of the chunk as too
   * large (its own HTTP 413, nginx's client_max_body_size: odoo-error.ts `refusedAsTooLarge`)
   * refused it before Odoo saw it, so nothing of that call was applied: the chunk is posted again
   * in two halves, in order (the second only once the first is delivered, FIFO per partition),
   * each looked up first as after a lost answer (`ambiguous`), since calls of the chunk before the
   * refused one may have landed; every rule finds what they wrote. One event alone that is still
   * too large keeps the proxy's reason: a dead letter saying what to raise, to replay once it is.
   * Before, the whole batch was dead-lettered with nginx's HTML page as the reason
   * (test/integration/relay-proxy-413-audit.test.ts).
   */
  async #postChunk(ctx: RuleContext, rule: PostingRule, chunk: StoredEvent[], results: Map<string, RuleResult>): Promise<boolean> {
    let r: Map<string, RuleResult>;
    try {
      r = await rule.post(ctx, chunk);
    } catch (err) {
      r = new Map(chunk.map((e) => [e.event.id, { ok: false, error: err }]));
    }
    const refused = chunk.length > 1 ? [...r.values()].find((x) => !x.ok && refusedAsTooLarge(x.error)) : undefined;
    if (refused && !refused.ok) {
      // A partition with a write whose answer was lost (a timeout: Odoo may still be running it)
      // is not posted again now: its results stand, and the write is looked up once the settle
      // time has passed (#failureOutcome), as without the split; a refused event of it is released
      // unchanged (nothing of it was applied) for a later round. Before, the split posted it again
      // at once: the look-up found nothing yet, and a chatter note landed twice once Odoo finished
      // the first (test/integration/relay-proxy-413-audit.test.ts).
      const held = new Set(chunk.filter((e) => mayStillLand(r.get(e.event.id))).map((e) => e.event.partitionKey));
      for (const e of chunk) {
        const x = r.get(e.event.id);
        if (x && held.has(e.event.partitionKey) && (x.ok || !refusedAsTooLarge(x.error))) results.set(e.event.id, x);
      }
      const rest = chunk.filter((e) => !held.has(e.event.partitionKey));
      if (rest.length === 0) return false;
      const half = Math.ceil(rest.length / 2);
      const d = refused.error instanceof GatewayError ? (refused.error.details ?? {}) : {};
      const call = d['model'] ? `: ${String(d['model'])}.${String(d['method'] ?? '')}, ${String(d['requestBytes'])} bytes` : '';
      this.#o.log.warn(`the web proxy between the gateway and Odoo refused a call of ${chunk.length} ${rule.name} events as too large (HTTP 413${call}): nothing of it reached Odoo; sending ${rest.length === chunk.length ? 'them' : `${rest.length} of them`} again, ${half} at a time. IT: raise the proxy's request body limit (nginx: client_max_body_size) so that the gateway's batches pass`);
      const again = rest.map((e) => ({ ...e, ambiguous: true }));
      const posted = (await this.#postChunk(ctx, rule, again.slice(0, half), results)) && (again.length === half || (await this.#postChunk(ctx, rule, again.slice(half), results)));
      return posted && held.size === 0;
    }
    for (const [k, v] of r) results.set(k, v);
    return !chunk.some((e) => r.get(e.event.id)?.ok === false || !r.has(e.event.id));
  }

  /**
   * Odoo refused calls as a changed server would (an unknown field, load column or method:
   * odoo-error.ts `looksLikeServerDrift`): its version is read afresh, once per round, before any
   * of them is dead-lettered. Answering as another major version than at connect, it was upgraded
   * (or restored) while the gateway had nothing to send, so no outage was seen and no new
   * connection made: those events are released for one (serverChanged: version, protocol and
   * fields read again, ODOO_VERSION_CHANGED), uncharged, and looked up first (ambiguous: an
   * earlier step of the workflow may be written). Before, every order after an 18 → 19 upgrade on
   * a quiet Sunday was dead-lettered "KeyError: 'product_uom'" until the next outage or restart
   * (test/integration/relay-upgrade-unseen-audit.test.ts). The same version: the refusal stands.
   * The version unreadable for the link (down, credentials): released as the link failure.
   */
  async #recheckServer(results: Map<string, RuleResult>): Promise<void> {
    const odoo = this.#o.odoo;
    const drifted = [...results].filter(([, r]) => !r.ok && looksLikeServerDrift(r.error));
    if (drifted.length === 0 || !odoo.serverVersionNow) return;
    this.#versionNow ??= odoo.serverVersionNow().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    const now = await this.#versionNow;
    const before = odoo.serverVersion;
    if (now instanceof Error ? !stopsTheLink(now) : now === before) return;
    for (const [id, r] of drifted) {
      if (r.ok) continue;
      results.set(id, { ok: false, error: now instanceof Error ? now : serverChanged(before, now, r.error) });
    }
  }

  /** The server answers now as another major version than at connect (false when unreadable). */
  async #serverMoved(): Promise<boolean> {
    const odoo = this.#o.odoo;
    if (!odoo.serverVersionNow) return false;
    try {
      const now = await odoo.serverVersionNow();
      if (now === odoo.serverVersion) return false;
      this.#o.log.warn('Odoo answers as another version than at connect: reconnecting', { from: odoo.serverVersion, to: now });
      return true;
    } catch {
      return false;
    }
  }

  /** Outcomes in partition order; the first failure ends the run (the rest are released). */
  #outcomes(events: StoredEvent[], results: Map<string, RuleResult>): Outcome[] {
    const out: Outcome[] = [];
    for (const e of events) {
      const r = results.get(e.event.id);
      if (!r) break;
      if (r.ok) {
        out.push({ eventId: e.event.id, outcome: 'delivered', ...(r.odoo ? { odoo: stampOdooRefs(r.odoo, this.#o.odooTarget) } : {}), ...(r.note ? { note: r.note } : {}) });
        continue;
      }
      const o = this.#failureOutcome(e, r.error);
      if (o) out.push(o);
      break;
    }
    return out;
  }

  #failureOutcome(e: StoredEvent, error: unknown): Outcome | undefined {
    const failure = failureOf(error);
    const text = ownFault(error) ?? describeError(error);
    // Odoo answers as another version (#recheckServer): not charged, looked up first, due once
    // the new connection is made.
    if (isServerChanged(error)) return { eventId: e.event.id, outcome: 'retry', error: text, ambiguous: true, free: true, delayMs: 0 };
    // A proxy's 504 to a write: Odoo may still run it. Not charged (Odoo answering 504 for a week
    // dead-letters nothing), but ambiguous and held for the settle time like a timeout, so the
    // look-up comes after the write has landed or died.
    if (failure === 'transient' && isLinkDown(error) && mayHaveLanded(error)) {
      return { eventId: e.event.id, outcome: 'retry', error: text, ambiguous: true, free: true, delayMs: this.#settleMs };
    }
    // Whole-link failures do not charge the event an attempt: released unchanged.
    if (failure === 'auth' || (failure === 'transient' && isLinkDown(error))) return undefined;
    if (failure === 'permanent') return { eventId: e.event.id, outcome: 'dead', reason: deadReason(error) };
    // Waiting for an earlier event still in the gateway's queue (an invoice for its order.created):
    // not charged, retried after the store's back-off for the attempts it has, or, when that event
    // is tried only later (its own back-off), the short delay after that (#untilQueuedTried).
    if (failure === 'transient' && waitsForQueued(error)) return { eventId: e.event.id, outcome: 'retry', error: text, free: true, waiting: true, ...this.#untilQueuedTried(error) };
    if (e.attempts + 1 >= this.#o.config.maxAttempts) {
      // The last attempt's answer was lost: Odoo may still run its write. The dead letter waits
      // for the settle time (charged, held as any ambiguous retry), and is made then without
      // sending anything again (#round). Made at once, an operator who replayed it within the
      // settle time (Odoo slow or back after an outage: the moment to replay) had it looked up
      // before the write landed, and sent again: the sale order's lines twice
      // (test/integration/review-s23-replay-ambiguous.test.ts).
      if (failure === 'ambiguous') return { eventId: e.event.id, outcome: 'retry', error: text, ambiguous: true, delayMs: this.#settleMs };
      return { eventId: e.event.id, outcome: 'dead', reason: `gave up after ${e.attempts + 1} attempts: ${text}` };
    }
    if (failure !== 'ambiguous') return { eventId: e.event.id, outcome: 'retry', error: text };
    // The write may still be on its way: look it up and resend only once it has landed or died.
    return { eventId: e.event.id, outcome: 'retry', error: text, ambiguous: true, delayMs: this.#settleMs };
  }

  /**
   * An event waiting for an earlier queued one that is tried only at `queuedDueAt` (odoo-error.ts):
   * due no earlier than that try plus the short delay (relay.backoff.initialMs, where the store's
   * back-off starts), so that it is looked at once that try is over. The earlier event's due time
   * is on the store's due clock, and so is `notBefore` (the store compares it there): counted on a
   * clock of the relay's own, a box booted two hours behind its data would have held the invoice
   * two hours past its order.
   */
  #untilQueuedTried(error: unknown): { notBefore?: number } {
    const at = queuedDueAt(error);
    return at === undefined ? {} : { notBefore: at + this.#o.config.backoff.initialMs };
  }

  async #complete(lease: Lease, outcomes: Outcome[], latencyMs = 0): Promise<void> {
    try {
      await this.#o.store.complete(lease, outcomes);
    } catch (err) {
      // The store could not record the outcome: the lease stays open and becomes ambiguous at the
      // next start; the rules look the documents up before any resend.
      this.#o.log.error('could not record relay outcomes', { partition: lease.partitionKey, error: describeError(err) });
      return;
    }
    for (const o of outcomes) {
      const e = lease.events.find((x) => x.event.id === o.eventId);
      this.#o.telemetry.emit('relay.outcome', {
        eventId: o.eventId,
        eventType: e?.event.type ?? 'unknown',
        outcome: o.outcome,
        latencyMs,
        ...(o.outcome === 'retry' ? { error: o.error, ...(o.waiting ? { waiting: true as const } : {}) } : o.outcome === 'dead' ? { error: o.reason } : {}),
      });
      if (o.outcome === 'dead') this.#o.log.warn('event dead-lettered', { eventId: o.eventId, type: e?.event.type, reason: o.reason });
    }
  }
}

/**
 * JavaScript's own errors (TypeError, RangeError, ReferenceError, SyntaxError) thrown inside a
 * rule: a fault in the gateway or event data this release cannot read (a record stored by a
 * release with another event shape), never an answer from Odoo. Said so, with what to do: before,
 * the dead letter read "gave up after 5 attempts: data.tests is not iterable", which IT took for
 * Odoo's refusal (test/integration/relay-rule-exception-audit.test.ts). Undefined for any other error.
 */
export function ownFault(error: unknown): string | undefined {
  if (!(error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError)) return undefined;
  return `the gateway itself failed on this event (${error.name}: ${error.message}), not Odoo: a fault in the gateway or event data this release cannot read. Report it with this event to whoever maintains the gateway; replay it once the gateway is updated, or discard it and enter the document in Odoo by hand`;
}

/** A failed write whose answer was lost (or a proxy's 504): Odoo may still run it and commit it. */
function mayStillLand(r: RuleResult | undefined): boolean {
  return r !== undefined && !r.ok && (failureOf(r.error) === 'ambiguous' || mayHaveLanded(r.error));
}

/** The reason an operator reads in the dead-letter list. */
export function deadReason(error: unknown): string {
  if (error instanceof GatewayError) {
    if (error.code === 'GW_MAPPING_MISSING') return `mapping missing: ${error.message}`;
    const d = error.details ?? {};
    if (d['needsOperator'] === true) return error.message;
    const where = d['model'] ? ` (${String(d['model'])}.${String(d['method'] ?? '')})` : '';
    return `Odoo rejected the request${where}: ${error.message}`;
  }
  return describeError(error);
}

/**
 * What a batch's results say of the link: refused credentials ('auth') over an unreachable Odoo
 * ('link'), the longest Retry-After among link failures, and the failure to name in the status
 * (the first that counted). A call a pause or a stop kept from being sent (CallLimit.halt) says
 * nothing of the link and is never named: named first, beside a real 429, it showed Odoo
 * unreachable with "not sent: sending to Odoo was paused by an operator"
 * (test/unit/relay-batch-trouble.test.ts).
 */
export function batchTrouble(results: Iterable<RuleResult>): { trouble: 'ok' | 'link' | 'auth'; retryAfterMs: number; error?: unknown } {
  let trouble: 'ok' | 'link' | 'auth' = 'ok';
  let retryAfterMs = 0;
  let error: { value: unknown } | undefined;
  for (const r of results) {
    if (r.ok || isHalted(r.error)) continue;
    const auth = failureOf(r.error) === 'auth';
    const down = isLinkDown(r.error);
    if (auth) trouble = 'auth';
    else if (down && trouble === 'ok') trouble = 'link';
    if (down) retryAfterMs = Math.max(retryAfterMs, retryAfterOf(r.error) ?? 0);
    if ((auth || down) && error === undefined) error = { value: r.error };
  }
  return error === undefined ? { trouble, retryAfterMs } : { trouble, retryAfterMs, error: error.value };
}
