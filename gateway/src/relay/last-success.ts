import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { GatewayStore } from '../store/types.ts';

/**
 * When the gateway last reached Odoo, kept in the store so that it survives a restart.
 *
 * `odoo.lastSuccessAt` (DESIGN.md §5, GET /api/status and the MQTT status) says when Odoo last
 * answered. It was held in memory only: a gateway restarted during an Odoo outage (an update, a
 * power cut) showed "Last success: never" on the page and the tray, as for a gateway that had never
 * reached its Odoo (a wrong URL or key), though Odoo had taken its events an hour before. Its
 * sibling `lastMessageAt` already survived a restart.
 *
 * The relay notes every success (a connection, a reference pull, a batch Odoo took) and writes the
 * time at most every SAVE_EVERY_MS, and once more when it stops; the status model starts from it.
 * After a power cut the time shown is at most that much earlier than the real last success.
 * It holds for one Odoo: the namespace is reset when the gateway is pointed at another one
 * (odoo-target.ts).
 */
export const ODOO_LINK_NAMESPACE = 'odoo-link';
const LAST_SUCCESS_KEY = 'last-success';
const SAVE_EVERY_MS = 60_000;

interface LastSuccessDoc {
  at: string;
}

/** The last success the store keeps (ISO), if any. */
export async function savedLastSuccess(store: Pick<GatewayStore, 'getDoc'>): Promise<string | undefined> {
  const doc = await store.getDoc<LastSuccessDoc>(ODOO_LINK_NAMESPACE, LAST_SUCCESS_KEY);
  return typeof doc?.at === 'string' ? doc.at : undefined;
}

export class LastSuccessRecord {
  readonly #store: Pick<GatewayStore, 'putDoc'>;
  readonly #log: Logger;
  #at: string | undefined;
  #saved: string | undefined;
  /** When the last write began (`performance.now()` ms). */
  #savedAt = Number.NEGATIVE_INFINITY;
  /** Writes in order: an older time never lands after a newer one. */
  #writing: Promise<void> = Promise.resolve();

  constructor(store: Pick<GatewayStore, 'putDoc'>, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** Odoo answered at `at` (ISO); written now unless a write began less than SAVE_EVERY_MS ago. */
  note(at: string): void {
    this.#at = at;
    if (performance.now() - this.#savedAt >= SAVE_EVERY_MS) void this.flush();
  }

  /** Write the last noted success if it is not written yet (at stop). Never throws. */
  flush(): Promise<void> {
    const at = this.#at;
    if (at === undefined || at === this.#saved) return this.#writing;
    this.#saved = at;
    this.#savedAt = performance.now();
    this.#writing = this.#writing.then(async () => {
      try {
        await this.#store.putDoc(ODOO_LINK_NAMESPACE, LAST_SUCCESS_KEY, { at } satisfies LastSuccessDoc);
      } catch (err) {
        this.#log.warn('could not keep the time Odoo last answered', { error: describeError(err) });
      }
    });
    return this.#writing;
  }
}

/**
 * The server's Retry-After, kept in the store so that it holds across a restart.
 *
 * A 429 or 503 with `Retry-After` asks the gateway to send nothing before a time; the relay
 * honours it while it runs (relay README "Odoo down for a week"). Held in memory only, it ended
 * with the process: IT restarted a gateway shown "unreachable: 429" and the new process came
 * straight back (version, sign-in, field maps, the reference pull) at an address the proxy had
 * asked to stay away. The relay keeps the time here when a link failure carries a Retry-After,
 * reads it at start-up (no more than RETRY_AFTER_CAP_MS ahead, whatever the clock did meanwhile),
 * and drops it at the next success. In the `odoo-link` namespace: another Odoo's request is not
 * this one's (odoo-target.ts).
 */
const HOLD_KEY = 'retry-after';

export interface LinkHold {
  /** Epoch ms before which nothing goes to Odoo. */
  until: number;
  /** The failure that asked for it, as the status showed it. */
  error: string;
}

interface LinkHoldDoc {
  until: string;
  error: string;
}

/** The Retry-After the store keeps, if any (its time may have passed). */
export async function savedLinkHold(store: Pick<GatewayStore, 'getDoc'>): Promise<LinkHold | undefined> {
  const doc = await store.getDoc<LinkHoldDoc>(ODOO_LINK_NAMESPACE, HOLD_KEY);
  const until = typeof doc?.until === 'string' ? Date.parse(doc.until) : Number.NaN;
  if (!doc || !Number.isFinite(until)) return undefined;
  return { until, error: typeof doc.error === 'string' ? doc.error : '' };
}

/** Keep (a hold) or drop (undefined) the server's Retry-After. */
export async function saveLinkHold(store: Pick<GatewayStore, 'putDoc' | 'deleteDoc'>, hold: LinkHold | undefined): Promise<void> {
  if (hold) await store.putDoc(ODOO_LINK_NAMESPACE, HOLD_KEY, { until: new Date(hold.until).toISOString(), error: hold.error } satisfies LinkHoldDoc);
  else await store.deleteDoc(ODOO_LINK_NAMESPACE, HOLD_KEY);
}
