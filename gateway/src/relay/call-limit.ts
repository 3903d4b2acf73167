import type { FieldMap } from './odoo/field-map.ts';
import type { CallOptions, OdooApi } from './odoo/odoo-client.ts';

/**
 * The posting rules' view of Odoo with a bound on requests in flight: every call waits for one of
 * `max` permits (relay.concurrency). The relay runs up to `max` batches at once and a rule may fan
 * out inside its batch (chatter notes per order), so only a shared bound keeps the server's load
 * at what the site configured. A released permit passes straight to the oldest waiter (FIFO).
 */
export class CallLimit implements OdooApi {
  readonly #inner: OdooApi;
  readonly #max: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(inner: OdooApi, max: number) {
    this.#inner = inner;
    this.#max = Math.max(1, Math.floor(max));
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

  async call<T = unknown>(model: string, method: string, params?: Record<string, unknown>, options?: CallOptions): Promise<T> {
    if (this.#active < this.#max) this.#active++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await this.#inner.call<T>(model, method, params, options);
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}
