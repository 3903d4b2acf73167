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

interface PausedDoc {
  paused: boolean;
  /** When it was set (ISO), for an operator reading the store. */
  at: string;
}

/** Whether the store holds an operator's pause. */
export async function savedPause(store: Pick<GatewayStore, 'getDoc'>): Promise<boolean> {
  const doc = await store.getDoc<PausedDoc>(NAMESPACE, KEY);
  return doc?.paused === true;
}

/** Keep (or clear) the operator's pause; durable when it resolves. */
export async function savePause(store: Pick<GatewayStore, 'putDoc' | 'deleteDoc'>, paused: boolean): Promise<void> {
  if (paused) await store.putDoc(NAMESPACE, KEY, { paused: true, at: new Date().toISOString() } satisfies PausedDoc);
  else await store.deleteDoc(NAMESPACE, KEY);
}
