import type { FieldMap } from './odoo/field-map.ts';
import type { CallOptions, OdooApi } from './odoo/odoo-client.ts';
import { GatewayError } from '../errors.ts';
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
 *
 * The halt: an operator's pause or a stop() that comes while the relay's round is under way closes
 * the gate the same way (`halt`), with a failure of its own (`halted`), until `unhalt()`: the
 * calls already sent finish and are recorded, every call not sent yet fails at once, marked not
 * sent, so its events are released unchanged (no attempt charged, never ambiguous), and the rules'
 * loops stop as after a link failure. Before, a pause or a stop was seen only between batches: a
 * chatter-note batch of 40 orders went on posting its notes, 8 at a time, after the status said
 * "paused", and past stop()'s deadline (test/integration/relay-halt-batch-audit.test.ts).
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
  /** Why calls are halted (see `halt`), or undefined. */
  #halted: GatewayError | undefined;

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

  /**
   * An operator's pause or a stop(): calls not sent yet are not sent (see the class comment) until
   * `unhalt()`. `why` is said in the failure the events are released with.
   */
  halt(why: 'paused' | 'stopping'): void {
    this.#halted ??= halted(why);
  }

  /** The relay's round that a pause or a stop cut short is over (or the operator resumed). */
  unhalt(): void {
    this.#halted = undefined;
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
      // A call that was never sent (halted, or closed while it waited) says nothing of the link.
      if (this.#closed === undefined && stopsTheLink(err) && !wasNotSent(err)) this.#closed = { error: err, until: this.#mono() + (retryAfterOf(err) ?? 0), untilReopened: this.#holdUntilReopened };
      throw err;
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }

  #throwIfClosed(model: string, method: string): void {
    const closed = this.#closed;
    if (closed && !closed.untilReopened && this.#mono() >= closed.until) this.#closed = undefined;
    if (!this.#closed) {
      if (this.#halted) throw notSent(this.#halted, { model, method });
      return;
    }
    const err = notSent(this.#closed.error, { model, method });
    // What is left of the server's Retry-After, so the relay's back-off still honours it.
    const left = Math.ceil(this.#closed.until - this.#mono());
    const details = (err as { details?: Record<string, unknown> }).details;
    if (details) {
      if (left > 0) details['retryAfterMs'] = left;
      else delete details['retryAfterMs'];
    }
    throw err;
  }
}

/**
 * The failure of a call a pause or a stop kept from being sent (CallLimit.halt): a transient,
 * whole-link failure to the rules (they stop and leave the rest, not charged), never sent; the
 * relay tells it from a link failure (`isHalted`): the link is not reported down for it.
 */
function halted(why: 'paused' | 'stopping'): GatewayError {
  const text = why === 'paused' ? 'not sent: sending to Odoo was paused by an operator' : 'not sent: the gateway is stopping';
  return new GatewayError('GW_ODOO_TRANSIENT', text, { details: { failure: 'transient', linkDown: true, notSent: true, halted: why } });
}

/** A failure of a call that a pause or a stop kept from being sent (CallLimit.halt). */
export function isHalted(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['halted'] !== undefined;
}

function wasNotSent(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['notSent'] === true;
}
