/**
 * MQTT topic names (DESIGN.md §5, fixed contract). All payloads are JSON.
 *
 * - `lab-gateway/<gatewayId>/status`          retained: the `GET /api/status` body
 * - `lab-gateway/<gatewayId>/endpoints/<id>`  retained: one endpoint (LIS link or analyzer)
 * - `lab-gateway/<gatewayId>/alerts`          not retained: one alert per message
 * - `lab-gateway/<gatewayId>/availability`    retained: `{"state":"online"|"offline",…}`; the
 *   Last Will of the gateway's broker connection publishes `offline` here when the process dies.
 */
import { randomBytes } from 'node:crypto';

export const TOPIC_ROOT = 'lab-gateway';

export function topics(gatewayId: string) {
  const base = `${TOPIC_ROOT}/${gatewayId}`;
  return {
    base,
    status: `${base}/status`,
    endpoint: (id: string) => `${base}/endpoints/${id}`,
    endpointsWildcard: `${base}/endpoints/+`,
    alerts: `${base}/alerts`,
    availability: `${base}/availability`,
    all: `${base}/#`,
  } as const;
}

/**
 * A client id for the gateway's publisher: `lab-gateway-<gatewayId>-<12 random hex>`. The prefix
 * tells people (and an external broker's ACLs) whose connection it is; the random part keeps
 * another client from guessing it and taking the publisher's session over.
 */
export function publisherClientId(gatewayId: string): string {
  return `lab-gateway-${gatewayId}-${randomBytes(6).toString('hex')}`;
}

export interface AvailabilityPayload {
  gatewayId: string;
  state: 'online' | 'offline';
  /** Set on `online` and on a graceful `offline`; absent in the Last Will (written at connect time). */
  at?: string;
  reason?: string;
}
