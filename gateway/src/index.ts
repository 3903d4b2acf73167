/**
 * lab-gateway as a library: the composition root and the pieces a supervisor or a test harness
 * embeds. The command line (`lab-gateway`) is the usual way to run it.
 */
export { Gateway, type GatewayAddresses, type GatewayOptions } from './gateway.ts';
export { loadConfig, loadConfigOrThrow, formatIssues } from './config/load.ts';
export { validateConfig } from './config/validate.ts';
export { defaultConfig } from './config/defaults.ts';
export type { GatewayConfig, ConfigIssue } from './config/types.ts';
export { EventStore, type EventStoreOptions } from './store/event-store.ts';
export type { GatewayStore, InboundMessage, StoredEvent, StoredMessage } from './store/types.ts';
export type { CanonicalEvent, DraftEvent, EventType } from './events/types.ts';
export { Telemetry, type TelemetryEvents } from './telemetry.ts';
export { GatewayError, ErrorCodes, type ErrorCode } from './errors.ts';
export { VERSION } from './version.ts';
