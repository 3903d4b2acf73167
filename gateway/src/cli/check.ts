import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatIssues, loadConfig } from '../config/load.ts';
import type { ConfigIssue, GatewayConfig } from '../config/types.ts';
import { describeError } from '../errors.ts';
import { defaultProfilesDir } from '../profiles/check.ts';
import { checkSiteAnalyzers, resolveAnalyzerProfile } from '../profiles/load.ts';
import { OdooClient } from '../relay/odoo/odoo-client.ts';
import { checkOdooConnection, type ConsumptionUnits as ConsumptionRows } from '../relay/check-connection.ts';
import { ReferenceData, roundToDigits } from '../relay/reference-data.ts';
import { EventStore } from '../store/event-store.ts';
import { args, type CliContext } from './main.ts';

/**
 * `lab-gateway check`: validate the config and each analyzer against its profile; every issue at
 * once. With `--odoo`, also connect to the configured Odoo (credentials, key expiry, models, the
 * locations and picking type of `odoo.mapping`) without changing anything there.
 */
export async function runCheck(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, odoo: { type: 'boolean' } });
  const loaded = loadConfig(values.config);
  const issues: ConfigIssue[] = [...loaded.issues];
  // Analyzer profiles are checked even when the configuration has other errors: every issue at
  // once. A profilesDir that cannot be read is reported once, at profilesDir.
  if (!loaded.profilesDirInvalid) issues.push(...checkSiteAnalyzers(loaded.analyzers, loaded.profilesDir));
  if (loaded.config && values.odoo) issues.push(...(await checkOdoo(loaded.config)));
  const errors = issues.filter((i) => i.severity === 'error').length;
  const warnings = issues.length - errors;
  if (values.json) {
    ctx.out(JSON.stringify({ file: loaded.file ?? null, ok: errors === 0, issues }, null, 2));
  } else {
    ctx.out(`${loaded.file ?? '(embedded defaults)'}: ${errors} error(s), ${warnings} warning(s)`);
    if (issues.length) ctx.out(formatIssues(issues));
  }
  return errors > 0 ? 1 : 0;
}

async function checkOdoo(config: GatewayConfig): Promise<ConfigIssue[]> {
  if (!config.odoo.url) return [{ severity: 'warning', path: 'odoo.url', message: 'not set: the gateway posts to its local sandbox; nothing to connect to' }];
  // Reference look-ups cache into a store; a throwaway one keeps the gateway's own store untouched
  // (it may be running and holds the lock).
  const scratch = await mkdtemp(path.join(tmpdir(), 'lab-gateway-check-'));
  const store = await EventStore.open({ dataDir: scratch, pruneIntervalMs: 0, minFreeBytes: 0 });
  let client: OdooClient | undefined;
  try {
    client = OdooClient.fromConfig(config.odoo);
    const units = consumptionUnits(config);
    const report = await checkOdooConnection(client, config.odoo, store, units);
    const issues: ConfigIssue[] = report.issues.map((i) => ({ severity: i.severity, path: i.path, message: i.message }));
    if (client.state === 'connected') issues.push(...(await finerThanOdoo(client, config, store, units)));
    return issues;
  } catch (err) {
    return [{ severity: 'error', path: 'odoo', message: describeError(err) }];
  } finally {
    client?.close();
    await store.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** A profile's consumption rows with their quantity (the connection check reads only product and unit). */
interface ConsumptionUnits extends ConsumptionRows {
  rows: ReadonlyArray<{ productCode: string; uom: string; quantity: number; per: string }>;
}

/**
 * Consumption per test (or per run) finer than Odoo keeps a stock quantity: Odoo rounds a move's
 * quantity to the decimal precision of quantities ('Product Unit of Measure' 16-18, 'Product
 * Unit' 19; 2 decimals by default), so a run posted on its own (realtime, or alone in its
 * window) of 0.024 L moves 0.02 L, and Odoo's stock drifts from the shelf's by 0.004 L a run. A
 * warning per profile and product, naming the quantity, Odoo's precision and what a run moves.
 * A product or unit that does not resolve was reported above; a read that fails says nothing here.
 */
async function finerThanOdoo(client: OdooClient, config: GatewayConfig, store: EventStore, consumption: readonly ConsumptionUnits[]): Promise<ConfigIssue[]> {
  const out: ConfigIssue[] = [];
  const ref = new ReferenceData({ store, odoo: client, mapping: config.odoo.mapping });
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
            `${row.productCode}: ${row.quantity} ${row.uom} per ${row.per} is ${qty} ${unit}, finer than Odoo keeps stock quantities ` +
            `(decimal precision '${precision.name}': ${precision.digits} decimal(s), ${step} ${unit}); a run posted on its own moves ${kept} ${unit} ` +
            `and Odoo's stock drifts from the real one. Give '${precision.name}' more digits in Odoo (Settings > Technical > Decimal Accuracy) or stock ${row.productCode} in a smaller unit`,
        });
      } catch {
        /* reported by the connection check */
      }
    }
  }
  return out;
}

/**
 * The units each analyzer's profile consumes reagents in, for `--odoo` to check against the Odoo
 * products' units (a profile whose profile does not load was reported above already).
 */
function consumptionUnits(config: GatewayConfig): ConsumptionUnits[] {
  const out: ConsumptionUnits[] = [];
  for (const analyzer of config.analyzers) {
    try {
      const profile = resolveAnalyzerProfile(analyzer, config.profilesDir ?? defaultProfilesDir());
      out.push({ profile: profile.name ?? analyzer.profile, rows: profile.consumption });
    } catch {
      /* reported by the profile checks */
    }
  }
  return out;
}
