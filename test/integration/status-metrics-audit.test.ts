import { afterEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { startTestGateway } from '../fixtures/gateway.ts';
import { makeDeadLetter, series, waitFor } from '../fixtures/status/harness.ts';

/**
 * What IT's Prometheus can alert on after an outage (`GET /metrics`, status/README.md "Metrics"):
 * a whole gateway in this process (real LevelDB, the embedded MQTT broker, the status API over
 * HTTP), scraped as Prometheus does.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('GET /metrics carries what an operator alerts on', () => {
  it('each health reason is a series of its own, and the MQTT link and embedded broker are measured', async () => {
    // What IT saw: the only health series was lab_gateway_health (0 ok, 1 degraded, 2 down).
    // "Degraded" covers fifteen reasons, from an Odoo unreachable for hours to an API key
    // expiring in ten days, so an alert on it paged the night shift for the key, or was muted and
    // missed the outage. Nothing in /metrics said whether the MQTT publisher reached its broker
    // (the trays' only source), nor how many subscribers the embedded broker held against its
    // mqtt.maxConnections, nor the persistent sessions it ended and the alerts dropped with them
    // (logged only).
    const { gateway, stop } = await startTestGateway('metrics-audit', {});
    cleanups.push(stop);
    const store = gateway.store!;
    const scrape = async (): Promise<string> => {
      const r = await fetch(`${gateway.statusServer!.url()}/metrics`);
      expect(r.status).toBe(200);
      return r.text();
    };
    await makeDeadLetter(store, 'METRICS-DEAD-1');
    const broker = gateway.mqtt!.broker!.address();
    const dashboard = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'ward-dashboard', reconnectPeriod: 0 });
    cleanups.push(() => dashboard.endAsync());

    const text = await waitFor(async () => {
      const t = await scrape();
      return series(t, 'lab_gateway_health_reason', { code: 'DEAD_LETTERS' }) === 1 && series(t, 'lab_gateway_mqtt_broker_clients') === 2 ? t : undefined;
    }, 'a scrape showing the dead letter as a reason and the dashboard connected (beside the gateway\'s own publisher)');
    expect(series(text, 'lab_gateway_health_reason', { code: 'DEAD_LETTERS', level: 'degraded' })).toBe(1);
    expect(series(text, 'lab_gateway_health_reason', { code: 'ODOO_UNREACHABLE' })).toBeUndefined();
    expect(series(text, 'lab_gateway_mqtt_connected')).toBe(1);
    expect(series(text, 'lab_gateway_mqtt_broker_max_connections')).toBe(100);
    expect(series(text, 'lab_gateway_mqtt_broker_expired_sessions_total')).toBe(0);
    expect(series(text, 'lab_gateway_mqtt_broker_dropped_queued_messages_total')).toBe(0);

    // The reason cleared (the dead letter discarded), its series goes: an alert on it resolves.
    const dead = (await store.listEvents({ state: 'dead' }))[0]!;
    await store.discard(dead.event.id, 'token:test@127.0.0.1', 'order cancelled');
    await waitFor(async () => series(await scrape(), 'lab_gateway_health_reason', { code: 'DEAD_LETTERS' }) === undefined, 'DEAD_LETTERS gone from /metrics');
  });
});
