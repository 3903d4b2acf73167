/** Public surface of the relay stage (the composition root and CLI import from here). */
export { Relay, deadReason, type RelayOptions, type RelayStatus } from './relay.ts';
export { dueDelayFor, syncModeOf } from './sync-modes.ts';
export { OdooClient, readApiKey, type OdooApi, type OdooClientLike, type OdooClientOptions } from './odoo/odoo-client.ts';
export { checkOdooConnection, type OdooCheckReport, type OdooCheckIssue } from './check-connection.ts';
export { ReferenceData, REF_NAMESPACE, type ReferenceSnapshot } from './reference-data.ts';
export { ALL_RULES, rulesFor } from './rules/index.ts';
