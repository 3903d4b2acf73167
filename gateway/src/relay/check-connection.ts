import { describeError } from '../errors.ts';
import type { OdooConfig } from '../config/types.ts';
import type { OdooClient } from './odoo/odoo-client.ts';
import { RELAY_MODELS } from './odoo/field-map.ts';
import { ReferenceData } from './reference-data.ts';
import type { GatewayStore } from '../store/types.ts';

export interface OdooCheckIssue {
  severity: 'error' | 'warning';
  path: string;
  message: string;
}

export interface OdooCheckReport {
  ok: boolean;
  serverVersion?: string;
  protocol?: string;
  issues: OdooCheckIssue[];
}

/** The consumption rows of the configured analyzers' profiles (profiles/types.ts), for the unit check. */
export interface ConsumptionUnits {
  profile: string;
  rows: ReadonlyArray<{ productCode: string; uom: string }>;
}

/**
 * For `lab-gateway check`: connect, authenticate, read the field maps and resolve the configured
 * mapping (locations, picking type, default vendor), reporting every problem with the config key
 * it concerns. Writes nothing to Odoo. `store` is only used for the reference cache (may be a
 * throw-away store).
 */
export async function checkOdooConnection(client: OdooClient, config: OdooConfig, store: GatewayStore, consumption: readonly ConsumptionUnits[] = []): Promise<OdooCheckReport> {
  const issues: OdooCheckIssue[] = [];
  try {
    await client.connect();
  } catch (err) {
    issues.push({ severity: 'error', path: 'odoo', message: describeError(err) });
    return { ok: false, issues };
  }
  for (const model of RELAY_MODELS) {
    if (client.fields.missing(model)) issues.push({ severity: 'warning', path: 'odoo', message: `model ${model} is not available to the gateway user (module not installed or no access)` });
  }
  const days = client.checkKeyExpiry();
  if (days !== undefined && days <= config.keyExpiryWarnDays) issues.push({ severity: days < 0 ? 'error' : 'warning', path: 'odoo.apiKeyExpiresAt', message: days < 0 ? 'the API key has expired' : `the API key expires in ${days} day(s)` });
  const ref = new ReferenceData({ store, odoo: client, mapping: config.mapping });
  const tryRef = async (path: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      issues.push({ severity: 'error', path, message: err instanceof Error ? err.message : String(err) });
    }
  };
  await tryRef('odoo.mapping.labLocation', async () => {
    const lab = await ref.location(config.mapping.labLocation, 'odoo.mapping.labLocation');
    await tryRef('odoo.mapping.consumptionPickingType', () => ref.consumptionPickingType(lab.id));
  });
  await tryRef('odoo.mapping.consumptionLocation', () => ref.location(config.mapping.consumptionLocation, 'odoo.mapping.consumptionLocation'));
  if (config.mapping.defaultVendorRef) await tryRef('odoo.mapping.defaultVendorRef', () => ref.partner(config.mapping.defaultVendorRef!, 'default vendor'));
  // A consumption row whose product Odoo does not have, or whose unit Odoo does not know or cannot
  // convert to the product's unit, is dead-lettered at every run: say so now, per profile.
  const seen = new Set<string>();
  for (const p of consumption) {
    for (const row of p.rows) {
      const key = `${p.profile}|${row.productCode}|${row.uom}`;
      if (seen.has(key)) continue;
      seen.add(key);
      await tryRef(`profiles.${p.profile}.consumption`, async () => ref.toProductUnit(await ref.product(row.productCode, 'consumable'), 1, row.uom));
    }
  }
  return { ok: !issues.some((i) => i.severity === 'error'), serverVersion: client.serverVersionText, ...(client.protocol ? { protocol: client.protocol } : {}), issues };
}
