import type { GatewayConfig, OdooConfig } from '../config/types.ts';
import { displayUrl } from '../config/display-url.ts';
import { GatewayError } from '../errors.ts';
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
 * there, not in the new one), those still waiting are posted to the new one. That holds for a
 * gateway's own store only: the demo's (`lab-gateway demo` marks it) is refused to a gateway with
 * a real Odoo, and the demo refuses a gateway's (checkStoreUse).
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
  /**
   * The store is the demo's: `lab-gateway demo` (what `npm start` runs) began it. Never taken off:
   * a gateway started on the sandbox with it keeps it, so that a later start with a real Odoo
   * still refuses (checkStoreUse).
   */
  demo?: true;
  /** The gateway.id of every gateway but the demo started on the store since it is recorded. */
  gatewayIds?: string[];
}

/** The demo's gateway.id and the ids of its simulated LIS link and analyzer (cli/demo.ts). */
export const DEMO_GATEWAY_ID = 'lab-demo';
export const DEMO_LIS_ID = 'lis';
export const DEMO_ANALYZER_ID = 'c111-demo';

/**
 * A store an earlier release's demo wrote (no mark then): its simulated analyzer `c111-demo` spoke
 * on it and nothing but the demo's two links (`lis`, `c111-demo`) ever did (a `lis` that last spoke
 * days after `c111-demo` is a site's LIS link of that name), no gateway of this
 * release started on it yet, nor was it recorded with a real Odoo. Taken for the demo's only then:
 * a store where another link spoke is a site's (the demo run in its folder once, the site live or
 * commissioning on it since), and refusing it would stop the lab's intake at the upgrade; so is a
 * store of a gateway whose own configuration names an analyzer or link `c111-demo` (`own`: the
 * ids of the starting gateway's links; the demo's own are not counted).
 *
 * Returns when `c111-demo` last sent on a store that may be such (undefined: it cannot be), and
 * `only`: nothing but the demo's two links spoke there, the store is the earlier demo's.
 */
function earlierDemoSpoke(store: Pick<GatewayStore, 'lastMessageAt'>, saved: TargetDoc | undefined, own: readonly string[]): { at: string; only: boolean } | undefined {
  if (saved?.demo || saved?.gatewayIds?.length || (saved && !saved.target.sandbox)) return undefined;
  if (own.includes(DEMO_ANALYZER_ID)) return undefined;
  const last = store.lastMessageAt?.() ?? {};
  const at = last[DEMO_ANALYZER_ID];
  if (at === undefined) return undefined;
  // The demo's LIS link speaks with its analyzer (an order every --interval, at most a day, and
  // the validation of each result): `lis` last speaking days after `c111-demo` is a site's LIS.
  const lis = last[DEMO_LIS_ID];
  const lisLater = lis !== undefined && Date.parse(lis) - Date.parse(at) > DEMO_LINK_GAP_MS;
  return { at, only: !lisLater && Object.keys(last).every((id) => id === DEMO_ANALYZER_ID || id === DEMO_LIS_ID) };
}

/** Twice the demo's longest --interval (cli/demo.ts): how much later than its analyzer its LIS link may last speak. */
const DEMO_LINK_GAP_MS = 2 * 86_400_000;

/** What checkStoreUse found: a warning for the log, and whether the store is the demo's (adoptOdooTarget marks it). */
export interface StoreUseCheck {
  warning?: string;
  demoStore: boolean;
}

/** Who opens the store: the gateway's id, whether it is the demo, and the option that names its data dir. */
export interface StoreUse {
  gatewayId: string;
  demo: boolean;
  /** The data dir as the user gave it (gateway.dataDir, or the demo's --data-dir). */
  dataDir: string;
  /**
   * The ids of the gateway's own links (hl7[].id, analyzers[].id): a site whose analyzer is
   * configured as `c111-demo` is not taken for an earlier demo by that id (earlierDemoSpoke).
   */
  endpoints?: readonly string[];
}

/** StoreUse.endpoints of a configuration: the ids of its LIS links and analyzers. */
export function storeUseEndpoints(config: Pick<GatewayConfig, 'hl7' | 'analyzers'>): string[] {
  return [...config.hl7.map((h) => h.id), ...config.analyzers.map((a) => a.id)];
}

/** What checkStoreUse reads of the store (`lab-gateway check` reads it without opening the store for writing). */
export type StoreUseSource = Pick<GatewayStore, 'getDoc' | 'stats' | 'lastMessageAt' | 'newestStoredAt'>;

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
export async function adoptOdooTarget(
  store: GatewayStore,
  target: OdooTarget,
  now: () => Date = () => new Date(),
  use?: Pick<StoreUse, 'gatewayId' | 'demo'> & { demoStore?: boolean },
): Promise<OdooTargetChange | undefined> {
  const saved = await store.getDoc<TargetDoc>(ODOO_TARGET_NAMESPACE, TARGET_KEY);
  const same = saved !== undefined && sameOdooTarget(saved.target, target);
  // The demo mark goes on with the demo's new store, or one checkStoreUse found an earlier demo's, and never comes off.
  const demo = saved?.demo === true || use?.demoStore === true || (!saved && use?.demo === true);
  const gatewayIds = [...new Set([...(saved?.gatewayIds ?? []), ...(use && !use.demo ? [use.gatewayId] : [])])];
  if (same && demo === (saved.demo === true) && gatewayIds.length === (saved.gatewayIds ?? []).length) return undefined;
  const reset: Record<string, number> = {};
  if (saved && !same) {
    for (const ns of ODOO_DERIVED_NAMESPACES) {
      const docs = await store.listDocs<unknown>(ns);
      for (const { key } of docs) await store.deleteDoc(ns, key);
      reset[ns] = docs.length;
    }
  }
  const doc: TargetDoc = { target, since: same ? saved.since : now().toISOString(), ...(demo ? { demo: true as const } : {}), ...(gatewayIds.length ? { gatewayIds } : {}) };
  await store.putDoc(ODOO_TARGET_NAMESPACE, TARGET_KEY, doc);
  return saved && !same ? { from: saved.target, to: target, reset } : undefined;
}

/**
 * The demo and a real gateway never share a store. Both default to `./var` (the demo's
 * `--data-dir`, `gateway.dataDir`): the demo run in the install folder while the site's gateway
 * is stopped opened the site's store, and the site's gateway started again on the demo's. Run
 * before adoptOdooTarget writes anything; throws GW_CONFIG_INVALID (exit 1, as other config
 * errors) naming the option that moves the data dir.
 *
 * - A real gateway with `odoo.url` refuses a demo store: the events the demo left waiting (its
 *   simulated orders, results, consumption) would be posted to the site's Odoo, as events waiting
 *   at a switch from the sandbox are. On the sandbox it starts (nothing leaves the box), with a
 *   warning (returned), and the mark stays.
 * - The demo refuses a store it did not begin: one a gateway recorded (whatever its Odoo), one
 *   another gateway.id started on since, and one with messages or events but no record (an earlier
 *   release's gateway: it cannot be told from a demo's, and the site's messages would be shown and
 *   posted in the demo's sandbox, the demo's be left for the site's gateway).
 */
export async function checkStoreUse(store: StoreUseSource, target: OdooTarget, use: StoreUse): Promise<StoreUseCheck> {
  const saved = await store.getDoc<TargetDoc>(ODOO_TARGET_NAMESPACE, TARGET_KEY);
  if (use.demo) {
    const others = saved?.gatewayIds ?? [];
    let whose: string | undefined;
    if (earlierDemoSpoke(store, saved, [])?.only) return { demoStore: true };
    if (saved && !saved.demo) {
      whose = others.length
        ? `a gateway's data (gateway.id ${others.join(', ')}, with ${describeOdooTarget(saved.target)})`
        : `a gateway's data, recorded with ${describeOdooTarget(saved.target)} by an earlier release, which did not record whether it was the demo`;
    } else if (saved && (!saved.target.sandbox || others.length > 0)) {
      whose = `data of the demo and of a gateway started on it since (gateway.id ${others.join(', ') || '?'}, with ${describeOdooTarget(saved.target)})`;
    } else if (!saved && store.newestStoredAt?.() !== undefined) {
      whose = 'messages and events of a gateway of an earlier release, which did not record whether it was the demo';
    }
    if (whose) {
      throw new GatewayError(
        'GW_CONFIG_INVALID',
        `--data-dir ${use.dataDir} holds ${whose}: the demo would show its messages and add its own simulated orders, results and consumption to them, ` +
          `for that gateway to post to its Odoo. Run the demo with --data-dir on another folder (for example --data-dir ./demo-data); ` +
          `the demo does not use this one (remove it yourself only if it holds nothing but an earlier demo's data).`,
      );
    }
    return { demoStore: true };
  }
  const spoke = saved?.demo ? undefined : earlierDemoSpoke(store, saved, use.endpoints ?? []);
  const earlier = spoke?.only === true;
  if (!saved?.demo && !earlier) {
    // The site's own links spoke there too: its store, where the demo ran once. Not refused (that
    // would stop the lab's intake at the upgrade); said once, at this release's first start on it.
    if (spoke === undefined) return { demoStore: false };
    return {
      demoStore: false,
      warning:
        `an earlier release's demo ran on gateway.dataDir ${use.dataDir} (its analyzer ${DEMO_ANALYZER_ID} last sent there at ${spoke.at}); ` +
        `the store is taken as this gateway's, since its own links spoke there too. Events of the demo still waiting go to ${describeOdooTarget(target)}: ` +
        `look for them with lab-gateway events list and discard those that are not the site's.`,
    };
  }
  const stats = store.stats();
  const waiting = stats.pending + stats.inFlight + stats.retrying + stats.deadLettered;
  const began = earlier ? `an earlier release's demo ran on it: its analyzer ${DEMO_ANALYZER_ID} sent there` : 'began it';
  const what = `gateway.dataDir ${use.dataDir} holds the demo's data (\`lab-gateway demo\`, what \`npm start\` runs, ${began}): its simulated orders, results and consumption${waiting > 0 ? ` (${waiting} events not delivered)` : ''}`;
  if (target.sandbox) {
    return { demoStore: true, warning: `${what}. The gateway posts to its sandbox only; before setting odoo.url, point gateway.dataDir to another folder: on this one a start with the site's Odoo is refused.` };
  }
  throw new GatewayError(
    'GW_CONFIG_INVALID',
    `${what} would be posted to ${describeOdooTarget(target)}, the site's Odoo. ` +
      `Point gateway.dataDir to another folder for this gateway (its own, e.g. /var/lib/lab-gateway), or, if nothing of the site is in ${use.dataDir}, remove the demo's data (that folder) and start again.`,
  );
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
