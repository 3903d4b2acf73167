import type { OdooConfig } from '../config/types.ts';
import { displayUrl } from '../config/display-url.ts';
import type { GatewayStore, OdooRef } from '../store/types.ts';
import { ODOO_LINK_NAMESPACE } from './last-success.ts';
import { REF_NAMESPACE } from './reference-data.ts';
import { STATE_NS as STOCK_WATCH_NAMESPACE } from './stock-watch.ts';

/**
 * Which Odoo the gateway posts to, and what it keeps that only holds for that Odoo.
 *
 * A site commissions on the sandbox (no `odoo.url`, DESIGN.md §5), then IT sets `odoo.url` to the
 * site's Odoo. Some local documents are copies of, or decisions about, one Odoo's records, keyed by
 * their ids: the pulled reference snapshot and the debits applied to it (`ref`), the stock watch's
 * episode marks (`relay-stock`, `op:<reorder point id>`); and when it last answered (`odoo-link`,
 * last-success.ts: the sandbox's last success is not the site's Odoo's). Kept across the switch, they spoke for the
 * new Odoo: its reorder point with the sandbox's id counted as already raised, and the reagent below
 * its minimum there never got its draft RFQ. The target is therefore recorded in the store, and a
 * start with another target drops those documents before the relay reads them; the new Odoo's own
 * pull rebuilds them.
 *
 * Events are not touched: those delivered to the earlier Odoo stay delivered (their documents are
 * there, not in the new one), those still waiting are posted to the new one.
 */
export const ODOO_TARGET_NAMESPACE = 'odoo-target';
const TARGET_KEY = 'current';

/** Namespaces of documents that hold for one Odoo only (its record ids, its stock): dropped at a switch. */
export const ODOO_DERIVED_NAMESPACES = [REF_NAMESPACE, STOCK_WATCH_NAMESPACE, ODOO_LINK_NAMESPACE] as const;

/** The Odoo the gateway posts to: the in-process sandbox, or a server's URL and database. */
export type OdooTarget = { sandbox: true } | { sandbox: false; url: string; database?: string };

interface TargetDoc {
  target: OdooTarget;
  /** When the gateway first started with this target (ISO). */
  since: string;
}

export interface OdooTargetChange {
  from: OdooTarget;
  to: OdooTarget;
  /** Documents dropped, per namespace (all namespaces listed, 0 included). */
  reset: Record<string, number>;
}

/**
 * The target of a configuration. The URL is kept as shown (no credentials: `check` refuses them,
 * displayUrl drops them anyway), its host lower-cased and a trailing `/` left out, so that
 * `https://Lab.example.com/` and `https://lab.example.com` are one Odoo.
 */
export function odooTargetOf(config: Pick<OdooConfig, 'url' | 'database'>): OdooTarget {
  if (config.url === undefined) return { sandbox: true };
  let url = displayUrl(config.url);
  try {
    const u = new URL(url);
    url = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    // not a URL (config validation refuses it): compared as written
  }
  return { sandbox: false, url, ...(config.database ? { database: config.database } : {}) };
}

export function sameOdooTarget(a: OdooTarget, b: OdooTarget): boolean {
  if (a.sandbox || b.sandbox) return a.sandbox === b.sandbox;
  return a.url === b.url && (a.database ?? '') === (b.database ?? '');
}

/** How the log and the alert name a target: "the sandbox", "https://lab.example.com (database lab)". */
export function describeOdooTarget(t: OdooTarget): string {
  if (t.sandbox) return 'the sandbox';
  return t.database ? `${t.url} (database ${t.database})` : t.url;
}

/**
 * Record `target` as the gateway's Odoo; when another one was recorded, drop the documents of
 * ODOO_DERIVED_NAMESPACES first and say what changed. Runs at start-up, before the relay reads
 * any of them.
 *
 * A store without a record (a new data dir, or one from a version that did not record it) takes
 * the target as it is and drops nothing: what it holds cannot be told apart, and a running site's
 * marks are what keeps a breach from ordering twice.
 *
 * The record is written last: a crash in between leaves the earlier target recorded, and the next
 * start drops what is left.
 */
export async function adoptOdooTarget(store: GatewayStore, target: OdooTarget, now: () => Date = () => new Date()): Promise<OdooTargetChange | undefined> {
  const saved = await store.getDoc<TargetDoc>(ODOO_TARGET_NAMESPACE, TARGET_KEY);
  if (saved && sameOdooTarget(saved.target, target)) return undefined;
  const reset: Record<string, number> = {};
  if (saved) {
    for (const ns of ODOO_DERIVED_NAMESPACES) {
      const docs = await store.listDocs<unknown>(ns);
      for (const { key } of docs) await store.deleteDoc(ns, key);
      reset[ns] = docs.length;
    }
  }
  await store.putDoc(ODOO_TARGET_NAMESPACE, TARGET_KEY, { target, since: now().toISOString() } satisfies TargetDoc);
  return saved ? { from: saved.target, to: target, reset } : undefined;
}

/** The alert's text: which Odoo, what was reset, what happens to the events. */
export function odooTargetChangeMessage(change: OdooTargetChange): string {
  return (
    `Odoo changed from ${describeOdooTarget(change.from)} to ${describeOdooTarget(change.to)}: ` +
    `the reference data and stock reorder marks of the earlier Odoo were reset (pulled again from the new one). ` +
    `Events already delivered to the earlier Odoo are not sent again; events still waiting go to the new one.`
  );
}

/**
 * The documents a delivered event names, as stored: marked `sandbox` when the gateway posted them
 * to its sandbox, so that the message browser never shows a sandbox record as one of the real Odoo
 * the gateway posts to later (the sandbox's `sale.order #1` is another order there).
 */
export function stampOdooRefs(refs: OdooRef[], target: OdooTarget | undefined): OdooRef[] {
  return target?.sandbox ? refs.map((r) => ({ ...r, sandbox: true as const })) : refs;
}
