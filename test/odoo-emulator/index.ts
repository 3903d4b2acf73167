/** Public surface of the Odoo emulator (tests, the gateway's sandbox, the CLI). */
export { OdooEmulator, type OdooEmulatorOptions, type CallRecord } from './emulator.ts';
export type { EmulatorUser, EmulatorApiKey } from './auth.ts';
export { Faults, FaultBuilder, type FaultAction, type FaultRule, type FaultMatch, type OutageMode, type ProxyStatus, type FaultEvent } from './faults.ts';
export { sandboxSummary, formatSandboxSummary, type SandboxSummary, type SandboxModelSummary } from './sandbox-summary.ts';
export { ODOO_VERSIONS, type EmulatorSettings, type OdooVersion } from './types.ts';
export { OdooError } from './odoo-errors.ts';
export { chatterText, escapeMarkup, sanitizeHtml } from './html-body.ts';
