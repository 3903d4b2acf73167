/**
 * The sandbox: when the configuration has no `odoo.url`, the gateway posts to an Odoo emulator
 * started in-process, which keeps its records in `<dataDir>/sandbox/odoo-sandbox.json`. A site
 * commissions analyzers and mappings against it before touching its real Odoo; the records are
 * shown on the status page and by `lab-gateway sandbox list`.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { OdooEmulator } from '../../test/odoo-emulator/emulator.ts';
import type { OdooConfig } from './config/types.ts';
import type { Logger } from './log.ts';
import type { Telemetry } from './telemetry.ts';
import { OdooClient } from './relay/odoo/odoo-client.ts';

export const SANDBOX_LOGIN = 'lab-gateway';

/** Models shown by `sandbox list` and on the status page, with the fields worth a glance. */
export const SANDBOX_VIEWS: Record<string, readonly string[]> = {
  'sale.order': ['name', 'partner_id', 'state', 'client_order_ref', 'amount_total'],
  'sale.order.line': ['order_id', 'product_id', 'product_uom_qty', 'qty_delivered', 'state'],
  'stock.picking': ['name', 'state', 'location_id', 'location_dest_id', 'origin'],
  'stock.move.line': ['picking_id', 'product_id', 'lot_id', 'quantity', 'qty_done', 'state'],
  'purchase.order': ['name', 'partner_id', 'state', 'origin'],
  'account.move': ['name', 'partner_id', 'state', 'move_type', 'invoice_origin'],
  'mail.message': ['model', 'res_id', 'body', 'date'],
};

export interface SandboxSummary {
  url: string;
  version: number;
  database: string;
  models: Record<string, { count: number; recent: Array<Record<string, unknown>> }>;
}

export class Sandbox {
  readonly emulator: OdooEmulator;
  readonly apiKey: string;
  readonly login = SANDBOX_LOGIN;

  constructor(dataDir: string, config: Pick<OdooConfig, 'sandboxVersion'>) {
    // A fresh key per start: the sandbox listens on loopback only and trusts nobody else.
    this.apiKey = randomBytes(24).toString('hex');
    this.emulator = new OdooEmulator({
      version: config.sandboxVersion,
      persistFile: sandboxFile(dataDir),
      seed: 'lab-demo',
      // The gateway's user has the rights of a real integration user (a bot), not an admin's.
      users: [
        { login: 'admin', password: randomBytes(24).toString('hex'), rights: 'admin' },
        { login: SANDBOX_LOGIN, password: this.apiKey, apiKeys: [{ key: this.apiKey }], rights: 'bot' },
      ],
    });
  }

  async start(): Promise<string> {
    const { url } = await this.emulator.listen(0, '127.0.0.1');
    return url;
  }

  get url(): string {
    return this.emulator.url;
  }

  /** The relay's Odoo client for this sandbox (started): link state reported as 'sandbox'. */
  client(config: OdooConfig, deps: { telemetry?: Telemetry; log?: Logger } = {}): OdooClient {
    return OdooClient.fromConfig({ ...config, database: this.database, login: this.login }, { ...deps, url: this.url, apiKey: this.apiKey, sandbox: true });
  }

  get database(): string {
    return this.emulator.database;
  }

  async summary(recent = 10): Promise<SandboxSummary> {
    return summarise(this.emulator, recent);
  }

  async close(): Promise<void> {
    await this.emulator.close();
  }
}

export function sandboxFile(dataDir: string): string {
  return path.join(dataDir, 'sandbox', 'odoo-sandbox.json');
}

export function summarise(emulator: OdooEmulator, recent = 10, only?: string): SandboxSummary {
  const models: SandboxSummary['models'] = {};
  for (const [model, fields] of Object.entries(SANDBOX_VIEWS)) {
    if (only && model !== only) continue;
    let rows: Array<Record<string, unknown>> = [];
    try {
      rows = emulator.records(model);
    } catch {
      continue; // a model this Odoo version lacks
    }
    if (model === 'mail.message') rows = rows.filter((r) => r.model === 'sale.order' && r.message_type !== 'notification');
    const pick = (r: Record<string, unknown>): Record<string, unknown> => {
      const out: Record<string, unknown> = { id: r.id };
      for (const f of fields) if (f in r) out[f] = r[f];
      return out;
    };
    models[model] = { count: rows.length, recent: rows.slice(-recent).reverse().map(pick) };
  }
  let url = '';
  try {
    url = emulator.url;
  } catch {
    /* a read-only view that does not listen */
  }
  return { url, version: emulator.version, database: emulator.database, models };
}
