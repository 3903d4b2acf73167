import type { OdooConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { Telemetry } from '../telemetry.ts';
import { OdooClient } from './odoo/odoo-client.ts';

/**
 * Sandbox (DESIGN.md §5: no `odoo.url` → an Odoo emulator started in-process). The composition root
 * starts the emulator with `SANDBOX_USERS` (same shape as the emulator's `users` option) and passes
 * its URL here; the client then reports link state 'sandbox' instead of 'connected'.
 */
export const SANDBOX_DATABASE = 'lab';
export const SANDBOX_BOT = { login: 'gateway', password: 'sandbox-password-not-used-over-rpc', key: 'sandbox0sandbox0sandbox0sandbox0sandbox0' } as const;
export const SANDBOX_USERS = [
  { login: 'admin', password: 'admin', rights: 'admin' as const },
  { login: SANDBOX_BOT.login, password: SANDBOX_BOT.password, apiKeys: [{ key: SANDBOX_BOT.key }], rights: 'bot' as const, name: 'Lab Gateway (sandbox)' },
];

/** The relay's Odoo client from config: the real server, or the sandbox emulator at `sandboxUrl`. */
export function createOdooClient(config: OdooConfig, deps: { telemetry?: Telemetry; log?: Logger; sandboxUrl?: string }): OdooClient {
  if (config.url) return OdooClient.fromConfig(config, { ...(deps.telemetry ? { telemetry: deps.telemetry } : {}), ...(deps.log ? { log: deps.log } : {}) });
  if (!deps.sandboxUrl) throw new Error('odoo.url is not set: start the sandbox emulator and pass its URL');
  return OdooClient.fromConfig(
    { ...config, database: SANDBOX_DATABASE, login: SANDBOX_BOT.login, pinnedCertSha256: undefined, caFile: undefined, proxy: undefined },
    { ...(deps.telemetry ? { telemetry: deps.telemetry } : {}), ...(deps.log ? { log: deps.log } : {}), url: deps.sandboxUrl, apiKey: SANDBOX_BOT.key, sandbox: true },
  );
}
