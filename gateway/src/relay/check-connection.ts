import { describeError } from '../errors.ts';
import type { OdooConfig } from '../config/types.ts';
import type { OdooClient } from './odoo/odoo-client.ts';
import { RELAY_MODELS } from './odoo/field-map.ts';
import { ReferenceData, roundToDigits } from './reference-data.ts';
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

/**
 * The consumption rows of the configured analyzers' profiles (profiles/types.ts), for the unit
 * check; with their quantity, also for the precision check (finerThanOdoo).
 */
export interface ConsumptionUnits {
  profile: string;
  rows: ReadonlyArray<{ productCode: string; uom: string; quantity?: number; per?: string }>;
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
  issues.push(...(await finerThanOdoo(ref, consumption)));
  return { ok: !issues.some((i) => i.severity === 'error'), serverVersion: client.serverVersionText, ...(client.protocol ? { protocol: client.protocol } : {}), issues };
}

/**
 * Consumption per test (or per run) finer than Odoo keeps a stock quantity: Odoo rounds a move's
 * quantity to the decimal precision of quantities ('Product Unit of Measure' 16-18, 'Product
 * Unit' 19; 2 decimals by default), so a run posted on its own (realtime, or alone in its
 * window) of 0.024 L is posted as 0.02 L, the rest carried to the next consumption of that lot
 * (rules/consumption-carry.ts): Odoo's stock stays right, its pickings do not show each run's
 * quantity. A warning per profile and product, naming the quantity, Odoo's precision and what a
 * run moves.
 * A product or unit that does not resolve was reported above; a read that fails says nothing here.
 */
async function finerThanOdoo(ref: ReferenceData, consumption: readonly ConsumptionUnits[]): Promise<OdooCheckIssue[]> {
  const out: OdooCheckIssue[] = [];
  let precision: { name: string; digits: number };
  try {
    precision = await ref.quantityDigits();
  } catch {
    return out;
  }
  const step = 10 ** -precision.digits;
  const seen = new Set<string>();
  for (const p of consumption) {
    for (const row of p.rows) {
      if (row.quantity === undefined) continue;
      const key = `${p.profile}|${row.productCode}|${row.quantity}|${row.uom}`;
      if (seen.has(key)) continue;
      seen.add(key);
      try {
        const product = await ref.product(row.productCode, 'consumable');
        const qty = await ref.toProductUnit(product, row.quantity, row.uom);
        const kept = roundToDigits(qty, precision.digits);
        if (Math.abs(kept - qty) <= 1e-9) continue;
        const unit = product.uomName ?? row.uom;
        out.push({
          severity: 'warning',
          path: `profiles.${p.profile}.consumption`,
          message:
            `${row.productCode}: ${row.quantity} ${row.uom} per ${row.per ?? 'run'} is ${qty} ${unit}, finer than Odoo keeps stock quantities ` +
            `(decimal precision '${precision.name}': ${precision.digits} decimal(s), ${step} ${unit}); a run posted on its own is posted as a multiple of ${step} ${unit}, ` +
            `what Odoo cannot keep carried to the next consumption of that lot (${kept} ${unit} for the first), so a picking does not show the run's own quantity. ` +
            `For exact pickings, give '${precision.name}' more digits in Odoo (Settings > Technical > Decimal Accuracy) or stock ${row.productCode} in a smaller unit`,
        });
      } catch {
        /* reported by the unit check above */
      }
    }
  }
  return out;
}
