import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { GatewayStore } from '../store/types.ts';
import type { RelayPauseDetail } from './paused.ts';

/**
 * The machine a store last sent to Odoo from, so that a store copied to another machine (a backup
 * restored onto a new box, a disk image) does not start sending while the box it came from may
 * still be sending the same queue.
 *
 * Two gateways alive with the same queue both look each accession up in Odoo before the other has
 * written it, both miss, and both create it: each test on the sale order twice, on the invoice up to
 * four times, and no dead letter tells anyone (relay README, "Two gateways with one queue"). The
 * gateway cannot see the other box; it can see that its store was last relayed from another
 * machine. Then the relay starts paused (the operator's pause, kept across restarts: paused.ts),
 * with who and why in the status's RELAY_PAUSED, and an administrator resumes it once the other box
 * is stopped. On the machine the store was made on, nothing changes.
 *
 * The machine is /etc/machine-id (systemd's, stable for an installation; the appliance runs under
 * systemd). A machine without one (a container image without it) is not checked: the store keeps
 * no machine, and nothing pauses. A container whose machine id changes at every start would be
 * paused at every start: give it a fixed one.
 */
const NAMESPACE = 'relay';
const KEY = 'machine';
/** `RelayPauseDetail.by` of the pause this sets (the status says "paused by the gateway"). */
export const GATEWAY_PAUSE = 'the gateway';

export interface MachineIdentity {
  /** /etc/machine-id (32 hex digits). */
  machineId: string;
  /** The host name then (for the words shown to IT only). */
  host: string;
}

interface MachineDoc extends MachineIdentity {
  /** When this machine started relaying this store (ISO). */
  since: string;
}

/** This machine, or undefined when it has no machine id (nothing is checked then). */
export function thisMachine(): MachineIdentity | undefined {
  for (const file of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (/^[0-9a-f]{32}$/i.test(id)) return { machineId: id.toLowerCase(), host: hostname() };
    } catch {
      /* the next place, or none */
    }
  }
  return undefined;
}

/**
 * At the relay's start: the pause to set when the store was last relayed from another machine
 * (undefined when it was this one, or when nothing is known), and the store then names this
 * machine (durable when it resolves): the pause itself holds across restarts until resumed.
 */
export async function checkMachine(store: Pick<GatewayStore, 'getDoc' | 'putDoc'>, here: MachineIdentity | undefined, now: Date = new Date()): Promise<RelayPauseDetail | undefined> {
  if (!here) return undefined;
  const before = await store.getDoc<MachineDoc>(NAMESPACE, KEY);
  if (before?.machineId === here.machineId) return undefined;
  await store.putDoc(NAMESPACE, KEY, { ...here, since: now.toISOString() } satisfies MachineDoc);
  if (!before || typeof before.machineId !== 'string') return undefined;
  return {
    since: now.toISOString(),
    by: GATEWAY_PAUSE,
    reason: `this store last sent to Odoo from another machine (${before.host || 'unknown host'}, id ${before.machineId.slice(0, 8)}…): a restored backup or a copied disk. If that box still runs, Odoo gets every order and invoice line twice. Stop it, then resume here`,
  };
}
