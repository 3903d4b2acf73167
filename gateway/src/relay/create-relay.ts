import type { OdooConfig, RelayConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { GatewayStore } from '../store/types.ts';
import type { Telemetry } from '../telemetry.ts';
import type { OdooClient } from './odoo/odoo-client.ts';
import { Relay } from './relay.ts';
import { createOdooClient } from './sandbox.ts';

/**
 * Composition-root helper: the Odoo client (real server, or the sandbox emulator at `sandboxUrl`
 * when `odoo.url` is absent) and the Relay over the given store. `relay.stop()` closes the client.
 * The store itself must be opened with `dueDelayMs: dueDelayFor(config.relay)` and
 * `backoff: config.relay.backoff` (sync modes and retry policy live in the store).
 */
export function createRelay(options: { odoo: OdooConfig; relay: RelayConfig; store: GatewayStore; telemetry: Telemetry; log: Logger; sandboxUrl?: string }): { relay: Relay; client: OdooClient } {
  const client = createOdooClient(options.odoo, { telemetry: options.telemetry, log: options.log.child({ component: 'odoo' }), ...(options.sandboxUrl ? { sandboxUrl: options.sandboxUrl } : {}) });
  const relay = new Relay({ store: options.store, odoo: client, config: options.relay, odooConfig: options.odoo, telemetry: options.telemetry, log: options.log.child({ component: 'relay' }) });
  return { relay, client };
}
