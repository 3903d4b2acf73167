import type { GatewayStore } from '../store/types.ts';

/**
 * An operator's pause of the relay, kept in the store so that it survives a restart.
 *
 * Finance pauses sending to Odoo for a period close or an Odoo migration (POST /api/relay/pause).
 * Held in memory only, the pause ended with the process: an update or a power cut overnight, and
 * the gateway came back sending into the closing period with nobody having resumed it. Now the
 * relay starts paused when the store says so, before its loop leases anything, and only a resume
 * (an operator's) clears it. Not tied to one Odoo (unlike the last success, odoo-target.ts): an
 * operator's hold is about sending at all.
 */
const NAMESPACE = 'relay';
const KEY = 'paused';

/** Who paused sending to Odoo, when and why (the status's RELAY_PAUSED and `relayPause`). */
export interface RelayPauseDetail {
  /** When it was paused (ISO). */
  since: string;
  /** `token:<id>@<address>`, as in the audit trail. */
  by: string;
  /** The reason given (one line, at most 300 characters), null when none was. */
  reason: string | null;
}

interface PausedDoc {
  paused: boolean;
  /** When it was set (ISO). */
  at: string;
  /**
   * Who set it and why, kept with it so that the status names them after a restart however long
   * ago the pause was (the audit trail rotates). Absent from a pause kept by an earlier version,
   * and from one set without them (a relay paused by code, not through the status API).
   */
  by?: string;
  reason?: string | null;
}

/**
 * The operator's pause the store holds, or undefined when there is none: `detail` when it was
 * kept with who and why (see PausedDoc.by).
 */
export async function savedPause(store: Pick<GatewayStore, 'getDoc'>): Promise<{ detail?: RelayPauseDetail } | undefined> {
  const doc = await store.getDoc<PausedDoc>(NAMESPACE, KEY);
  if (doc?.paused !== true) return undefined;
  return typeof doc.by === 'string' ? { detail: { since: doc.at, by: doc.by, reason: doc.reason ?? null } } : {};
}

/**
 * Keep the operator's pause (with who, when and why when given: its time is then
 * `detail.since`), or clear it; durable when it resolves.
 */
export async function savePause(store: Pick<GatewayStore, 'putDoc' | 'deleteDoc'>, paused: boolean, detail?: RelayPauseDetail): Promise<void> {
  if (!paused) return store.deleteDoc(NAMESPACE, KEY);
  const doc: PausedDoc = detail ? { paused: true, at: detail.since, by: detail.by, reason: detail.reason } : { paused: true, at: new Date().toISOString() };
  await store.putDoc(NAMESPACE, KEY, doc);
}
