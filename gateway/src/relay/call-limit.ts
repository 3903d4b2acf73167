import type { FieldMap } from './odoo/field-map.ts';
import type { CallOptions, OdooApi } from './odoo/odoo-client.ts';
import { notSent, retryAfterOf, stopsTheLink } from './odoo/odoo-error.ts';

/**
 * The posting rules' view of Odoo (and the reference pulls'), with a bound on requests in flight
 * and a gate that closes when the link fails.
 *
 * The bound: every call waits for one of `max` permits (relay.concurrency). The relay runs up to
 * `max` batches at once and a rule may fan out inside its batch (chatter notes per order), so only
 * a shared bound keeps the server's load at what the site configured. A released permit passes
 * straight to the oldest waiter (FIFO).
 *
 * The gate: the first call that fails for the whole link (unreachable, 429/502/503/504) or for the
 * credentials closes it, and every later call fails at once with that failure (`notSent`: never
 * "may have landed") without being sent, calls already waiting for a permit included, until the
 * failure's Retry-After has passed and, while the relay's loop runs (`holdUntilReopened`), until
 * the loop opens it again after its back-off (`reopen`). Without the loop (a check run on its own)
 * only a Retry-After holds it. Before, a rule went on after such a failure: a 429 "Retry-After: 60" on the first
 * chatter note of the morning's catch-up was followed at once by the batch's eleven other notes
 * and the round's next batches, keeping the lab's address rate-limited
 * (test/e2e/outage-night-audit.test.ts). Waits are measured on the monotonic clock.
 */
export class CallLimit implements OdooApi {
  readonly #inner: OdooApi;
  readonly #max: number;
  readonly #mono: () => number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  /**
   * The failure that closed the gate, the monotonic time before which it may not reopen, and
   * whether it then waits for `reopen()` (the relay's loop runs) or opens by itself.
   */
  #closed: { error: unknown; until: number; untilReopened: boolean } | undefined;
  #holdUntilReopened = false;

  constructor(inner: OdooApi, max: number, mono: () => number = () => performance.now()) {
    this.#inner = inner;
    this.#max = Math.max(1, Math.floor(max));
    this.#mono = mono;
  }

  get serverVersion(): number {
    return this.#inner.serverVersion;
  }

  get fields(): FieldMap {
    return this.#inner.fields;
  }

  /** Calls holding a permit now. */
  get inFlight(): number {
    return this.#active;
  }

  /**
   * The relay's loop runs (true) and opens the gate after its back-off: a failure closes the gate
   * until then, Retry-After or not. Off, only a Retry-After holds it (nobody would reopen it).
   */
  holdUntilReopened(on: boolean): void {
    this.#holdUntilReopened = on;
    if (!on && this.#closed) this.#closed.untilReopened = false;
  }

  /**
   * The relay's back-off has passed: let calls through again. Returns 0, or how long the failure's
   * Retry-After still holds the gate closed (ms; the gate stays closed).
   */
  reopen(): number {
    if (!this.#closed) return 0;
    const left = this.#closed.until - this.#mono();
    if (left > 0) return left;
    this.#closed = undefined;
    return 0;
  }

  async call<T = unknown>(model: string, method: string, params?: Record<string, unknown>, options?: CallOptions): Promise<T> {
    this.#throwIfClosed(model, method);
    if (this.#active < this.#max) this.#active++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      // Closed while this call waited for its permit: it is not sent either.
      this.#throwIfClosed(model, method);
      return await this.#inner.call<T>(model, method, params, options);
    } catch (err) {
      if (this.#closed === undefined && stopsTheLink(err)) this.#closed = { error: err, until: this.#mono() + (retryAfterOf(err) ?? 0), untilReopened: this.#holdUntilReopened };
      throw err;
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }

  #throwIfClosed(model: string, method: string): void {
    const closed = this.#closed;
    if (!closed) return;
    if (!closed.untilReopened && this.#mono() >= closed.until) {
      this.#closed = undefined;
      return;
    }
    const err = notSent(closed.error, { model, method });
    // What is left of the server's Retry-After, so the relay's back-off still honours it.
    const left = Math.ceil(closed.until - this.#mono());
    const details = (err as { details?: Record<string, unknown> }).details;
    if (details) {
      if (left > 0) details['retryAfterMs'] = left;
      else delete details['retryAfterMs'];
    }
    throw err;
  }
}
