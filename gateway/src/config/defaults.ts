import type { EventType, SyncMode } from '../events/types.ts';
import { DEFAULT_SYNC_MODE, EventTypes } from '../events/types.ts';
import type { GatewayConfig, Hl7EndpointConfig } from './types.ts';

/**
 * Every option has a documented default (README "Configuration reference"). A fresh machine with
 * no configuration file runs on exactly these: listeners on 127.0.0.1, data under ./var.
 */
export const HL7_ENDPOINT_DEFAULTS: Omit<Hl7EndpointConfig, 'id' | 'listen'> = {
  ack: 'original',
  maxMessageBytes: 16 * 1024 * 1024,
  idleTimeoutMs: 30 * 60 * 1000,
  frameTimeoutMs: 60 * 1000,
  maxConnections: 64,
  unknownMessageTypes: 'accept',
  defaultCharset: 'ascii',
};

/**
 * The embedded MQTT broker's own limits. 100 connections: a tray on every workstation of a large
 * lab and its dashboards, far below what the appliance holds; a script that opens connections
 * without closing them is stopped there.
 */
export const EMBEDDED_BROKER_DEFAULTS = { maxConnections: 100 } as const;

export const DEFAULT_RULES: Record<EventType, boolean> = Object.fromEntries(EventTypes.map((t) => [t, true])) as Record<EventType, boolean>;

export function defaultConfig(): GatewayConfig {
  return {
    // gateway.timeZone absent: the process's zone (TZ, else the system's), as before the key.
    gateway: { id: 'lab-1', dataDir: './var', logLevel: 'info' },
    hl7: [{ id: 'lis', listen: { host: '127.0.0.1', port: 2575 }, ...HL7_ENDPOINT_DEFAULTS }],
    // hl7[].quietAlert / analyzers[].quietAlert absent: no quiet alert (only the lab knows its rhythm).
    analyzers: [],
    odoo: {
      keyExpiryWarnDays: 14,
      timeoutMs: 30_000,
      sandboxVersion: 17,
      mapping: { labLocation: 'WH/Stock/Lab', consumptionLocation: 'Virtual Locations/Lab Consumption' },
    },
    relay: {
      enabled: true,
      concurrency: 8,
      maxAttempts: 12,
      backoff: { initialMs: 2_000, maxMs: 300_000, multiplier: 2, jitter: 0.2 },
      rules: { ...DEFAULT_RULES },
      syncModes: { ...(DEFAULT_SYNC_MODE as Record<EventType, SyncMode>) },
      microBatchWindowMs: 30_000,
      scheduledEveryMinutes: 15,
      invoicing: false,
      autoConfirm: false,
      referenceRefreshMs: 15 * 60 * 1000,
    },
    store: { retentionDays: 30, maxDeliveredEvents: 2_000_000, deadLetterRetentionDays: 180, minFreeBytes: 64 * 1024 * 1024 },
    mqtt: { broker: 'embedded', listen: { host: '127.0.0.1', port: 1883 }, publishIntervalMs: 30_000, maxConnections: EMBEDDED_BROKER_DEFAULTS.maxConnections },
    status: { listen: { host: '127.0.0.1', port: 8484 } },
  };
}
