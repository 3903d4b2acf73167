/**
 * MQTT topic names (DESIGN.md §5, fixed contract). All payloads are JSON.
 *
 * - `lab-gateway/<gatewayId>/status`          retained: the `GET /api/status` body
 * - `lab-gateway/<gatewayId>/endpoints/<id>`  retained: one endpoint (LIS link or analyzer), with
 *   `generatedAt`, when it was published (a consumer dates a state left after a kill -9)
 * - `lab-gateway/<gatewayId>/alerts`          retained: one alert per message, the last one kept;
 *   a subscriber tells the retained copy (RETAIN 1) from a live alert (RETAIN 0), and it by its `at`
 * - `lab-gateway/<gatewayId>/availability`    retained: `{"state":"online"|"offline",…}`; the
 *   Last Will of the gateway's broker connection publishes `offline` here when the process dies.
 */
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
 * The client id of the gateway's publisher: `lab-gateway-<gatewayId>`, the same in every process.
 * Stable on purpose: a restarted gateway reconnecting to an external broker takes its previous
 * session over (MQTT 3.1.1 §3.1.4), so the broker ends that session (and sends its Last Will, if
 * any) before the new one publishes `online`. With a new id per process the old session lived on
 * until its keep-alive ran out and its will `offline` landed after the new process's `online`.
 * The embedded broker refuses this id to every other client (mqtt-broker.ts); on an external
 * broker its own rules decide who may use it.
 */
export function publisherClientId(gatewayId: string): string {
  return `lab-gateway-${gatewayId}`;
}

export interface AvailabilityPayload {
  gatewayId: string;
  state: 'online' | 'offline';
  /** Set on `online` and on a graceful `offline`; absent in the Last Will (written at connect time). */
  at?: string;
  reason?: string;
  /**
   * The gateway process that published it (random, one per start; in the Last Will too): a gateway
   * renamed tells its own retained availability under its old id from another gateway's there
   * (mqtt-publisher.ts #clearRetiredGateways). Additive.
   */
  instance?: string;
}
