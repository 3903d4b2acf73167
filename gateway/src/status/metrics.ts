import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { logOutputLoss } from '../log.ts';
import type { GatewayStore } from '../store/types.ts';
import type { Telemetry } from '../telemetry.ts';
import type { StatusModel } from './status-model.ts';

/**
 * What `/metrics` reads of the embedded MQTT broker (mqtt-broker.ts `EmbeddedBroker`), at scrape
 * time. Counted since the gateway started.
 */
export interface MqttBrokerCounters {
  /** Clients connected, the gateway's own publisher included. */
  readonly connectedClients: number;
  /** `mqtt.maxConnections`: subscriber connections allowed at once (the publisher not counted). */
  readonly maxConnections: number;
  /** Persistent sessions ended because their client stayed away too long. */
  readonly expiredSessions: number;
  /** Messages queued for those sessions, dropped with them. */
  readonly droppedQueuedMessages: number;
}

/**
 * Prometheus metrics for `GET /metrics`. One registry per gateway (not prom-client's global one),
 * fed by telemetry; queue gauges are read from the store at scrape time.
 * Names follow the Prometheus conventions: `_total` counters, base units (seconds, bytes).
 */
export class StatusMetrics {
  readonly registry = new Registry();
  readonly #unsubscribe: Array<() => void> = [];

  constructor(options: {
    store: GatewayStore;
    telemetry: Telemetry;
    model: StatusModel;
    gatewayId: string;
    defaultMetrics?: boolean;
    /** The embedded broker, read at each scrape (started after the status API; none with an external broker). */
    mqttBroker?: () => MqttBrokerCounters | undefined;
  }) {
    const { store, telemetry, model } = options;
    const r = this.registry;
    r.setDefaultLabels({ gateway: options.gatewayId });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: r, prefix: 'lab_gateway_process_' });

    const intake = new Counter({
      name: 'lab_gateway_intake_messages_total',
      help: 'Inbound messages answered, by endpoint and outcome (accepted, rejected, duplicate).',
      labelNames: ['endpoint', 'kind', 'outcome'] as const,
      registers: [r],
    });
    const intakeBytes = new Counter({
      name: 'lab_gateway_intake_bytes_total',
      help: 'Bytes of inbound messages answered, by endpoint.',
      labelNames: ['endpoint'] as const,
      registers: [r],
    });
    const ackLatency = new Histogram({
      name: 'lab_gateway_ack_latency_seconds',
      help: 'Time from the last byte of a message to its acknowledgement (includes the fsync).',
      labelNames: ['endpoint'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r],
    });
    const relay = new Counter({
      name: 'lab_gateway_relay_outcomes_total',
      help: 'Relay attempts by outcome (delivered, retry, dead) and event type.',
      labelNames: ['outcome', 'event_type'] as const,
      registers: [r],
    });
    const relayLatency = new Histogram({
      name: 'lab_gateway_relay_latency_seconds',
      help: 'Time of one relay attempt (all Odoo calls for one event).',
      labelNames: ['outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [r],
    });
    const odooLatency = new Histogram({
      name: 'lab_gateway_odoo_request_seconds',
      help: 'Latency of one HTTP round trip to Odoo, by model, method and success.',
      labelNames: ['model', 'method', 'ok'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [r],
    });
    const ignored = new Counter({
      name: 'lab_gateway_ignored_bytes_total',
      help: 'Bytes received outside frames and ignored, by endpoint.',
      labelNames: ['endpoint'] as const,
      registers: [r],
    });
    new Gauge({
      name: 'lab_gateway_queue_events',
      help: 'Events in the store by state.',
      labelNames: ['state'] as const,
      registers: [r],
      collect() {
        let s;
        try {
          s = store.stats();
        } catch {
          return; // store closed: keep the last values
        }
        this.set({ state: 'pending' }, s.pending);
        this.set({ state: 'inflight' }, s.inFlight);
        this.set({ state: 'retrying' }, s.retrying);
        this.set({ state: 'dead' }, s.deadLettered);
        this.set({ state: 'delivered' }, s.delivered);
        this.set({ state: 'discarded' }, s.discarded);
      },
    });
    new Gauge({
      name: 'lab_gateway_queue_oldest_pending_age_seconds',
      help: 'Age of the oldest event waiting for Odoo.',
      registers: [r],
      collect() {
        try {
          this.set(store.stats().oldestPendingAgeSeconds);
        } catch {
          /* store closed */
        }
      },
    });
    new Gauge({
      name: 'lab_gateway_blocked_partitions',
      help: 'Partitions whose head event is dead-lettered.',
      registers: [r],
      collect() {
        try {
          this.set(store.stats().blockedPartitions);
        } catch {
          /* store closed */
        }
      },
    });
    new Gauge({
      name: 'lab_gateway_health',
      help: 'Gateway health: 0 ok, 1 degraded, 2 down.',
      registers: [r],
      collect() {
        const h = model.health().health;
        this.set(h === 'ok' ? 0 : h === 'degraded' ? 1 : 2);
      },
    });
    new Gauge({
      name: 'lab_gateway_health_reason',
      help: 'Each reason the health is not ok (healthReasons of /api/status): 1 while it lasts, the series gone once it clears.',
      labelNames: ['code', 'level', 'endpoint'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const reason of model.health().reasons) {
          this.set(reason.endpoint === undefined ? { code: reason.code, level: reason.level } : { code: reason.code, level: reason.level, endpoint: reason.endpoint }, 1);
        }
      },
    });
    new Gauge({
      name: 'lab_gateway_mqtt_connected',
      help: "1 while the MQTT publisher reaches its broker (the trays' and dashboards' status), else 0.",
      registers: [r],
      collect() {
        const connected = model.mqttConnected();
        if (connected === undefined) this.reset();
        else this.set(connected ? 1 : 0);
      },
    });
    const broker = options.mqttBroker;
    if (broker) {
      new Gauge({
        name: 'lab_gateway_mqtt_broker_clients',
        help: "Clients connected to the embedded MQTT broker, the gateway's own publisher included.",
        registers: [r],
        collect() {
          const b = broker();
          if (b) this.set(b.connectedClients);
        },
      });
      new Gauge({
        name: 'lab_gateway_mqtt_broker_max_connections',
        help: 'Subscriber connections the embedded MQTT broker allows at once (mqtt.maxConnections; the publisher not counted).',
        registers: [r],
        collect() {
          const b = broker();
          if (b) this.set(b.maxConnections);
        },
      });
      new Counter({
        name: 'lab_gateway_mqtt_broker_expired_sessions_total',
        help: 'Persistent MQTT sessions ended because their client stayed away more than 7 days.',
        registers: [r],
        collect() {
          const b = broker();
          if (!b) return;
          this.reset();
          this.inc(b.expiredSessions);
        },
      });
      new Counter({
        name: 'lab_gateway_mqtt_broker_dropped_queued_messages_total',
        help: 'Messages (alerts) queued for expired persistent sessions, dropped with them.',
        registers: [r],
        collect() {
          const b = broker();
          if (!b) return;
          this.reset();
          this.inc(b.droppedQueuedMessages);
        },
      });
    }
    new Counter({
      name: 'lab_gateway_log_lines_dropped_total',
      help: 'Log lines stderr could not take (its reader gone: EPIPE; a full disk: ENOSPC), lost since the process started.',
      registers: [r],
      collect() {
        this.reset();
        this.inc(logOutputLoss().droppedLines);
      },
    });
    new Gauge({
      name: 'lab_gateway_store_up',
      help: '1 when the store can commit (intake possible), else 0.',
      registers: [r],
      collect() {
        this.set(store.health === 'ok' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'lab_gateway_endpoint_connections',
      help: 'Open connections per endpoint.',
      labelNames: ['endpoint', 'kind', 'state'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const id of model.endpointIds()) {
          const e = model.endpoint(id);
          if (e) this.set({ endpoint: e.id, kind: e.kind, state: e.state }, e.connections);
        }
      },
    });
    new Gauge({
      name: 'lab_gateway_data_dir_free_bytes',
      help: 'Free space in the data directory.',
      registers: [r],
      collect() {
        const d = model.toApiStatus().disk;
        if (d) this.set(d.freeBytes);
      },
    });

    // Label children are cached: the intake path emits per message, prom-client hashes labels per call.
    const intakeChildren = new Map<string, { count: ReturnType<typeof intake.labels>; bytes: ReturnType<typeof intakeBytes.labels>; ack: ReturnType<typeof ackLatency.labels> }>();
    this.#unsubscribe.push(
      telemetry.on('intake.message', (e) => {
        const key = `${e.endpoint}\u0000${e.kind}\u0000${e.outcome}`;
        let c = intakeChildren.get(key);
        if (!c) {
          c = { count: intake.labels(e.endpoint, e.kind, e.outcome), bytes: intakeBytes.labels(e.endpoint), ack: ackLatency.labels(e.endpoint) };
          intakeChildren.set(key, c);
        }
        c.count.inc();
        c.bytes.inc(e.bytes);
        c.ack.observe(e.ackLatencyMs / 1000);
      }),
      telemetry.on('relay.outcome', (e) => {
        relay.inc({ outcome: e.outcome, event_type: e.eventType });
        relayLatency.observe({ outcome: e.outcome }, e.latencyMs / 1000);
      }),
      telemetry.on('odoo.request', (e) => {
        odooLatency.observe({ model: e.model, method: e.method, ok: String(e.ok) }, e.latencyMs / 1000);
      }),
      telemetry.on('endpoint.ignored-bytes', (e) => ignored.inc({ endpoint: e.endpoint }, e.count)),
    );
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
    this.registry.clear();
  }
}
