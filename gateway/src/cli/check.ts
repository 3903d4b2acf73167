import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatIssues, loadConfig } from '../config/load.ts';
import { timeZoneIssues } from '../config/time-zone.ts';
import type { ConfigIssue, GatewayConfig } from '../config/types.ts';
import { describeError, isGatewayError } from '../errors.ts';
import { defaultProfilesDir } from '../profiles/check.ts';
import { checkSiteAnalyzers, resolveAnalyzerProfile } from '../profiles/load.ts';
import { OdooClient } from '../relay/odoo/odoo-client.ts';
import { checkOdooConnection, type ConsumptionUnits } from '../relay/check-connection.ts';
import { checkStoreUse, odooTargetOf, storeUseEndpoints } from '../relay/odoo-target.ts';
import { EventStore } from '../store/event-store.ts';
import { readStoreAtRest } from '../store/inspect.ts';
import { checkListeners } from './check-listeners.ts';
import { args, type CliContext } from './main.ts';

/**
 * `lab-gateway check`: validate the config and each analyzer against its profile; every issue at
 * once; each listening address is tried (check-listeners.ts). With `--odoo`, also connect to the configured Odoo (credentials, key expiry, models, the
 * locations and picking type of `odoo.mapping`) without changing anything there. With `odoo.url`
 * set, a gateway.dataDir that is the demo's store is refused as start refuses it (checkDataDir).
 */
export async function runCheck(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, odoo: { type: 'boolean' } });
  const loaded = loadConfig(values.config);
  const issues: ConfigIssue[] = [...loaded.issues];
  // Analyzer profiles are checked even when the configuration has other errors: every issue at
  // once. A profilesDir that cannot be read is reported once, at profilesDir.
  if (!loaded.profilesDirInvalid) issues.push(...checkSiteAnalyzers(loaded.analyzers, loaded.profilesDir));
  if (loaded.config) issues.push(...(await checkDataDir(loaded.config)));
  // A box left at UTC with nothing saying the lab's zone (config/time-zone.ts).
  if (loaded.config) issues.push(...timeZoneIssues(loaded.config));
  // Each listening address bound for an instant, as start binds it (check-listeners.ts): a port
  // another program holds, a host not of this machine, a privileged port. Also when the
  // configuration has errors elsewhere: every issue at once.
  issues.push(...(await checkListeners(loaded.listeners, loaded.dataDir)));
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
    const report = await checkOdooConnection(client, config.odoo, store, consumptionUnits(config));
    return report.issues.map((i) => ({ severity: i.severity, path: i.path, message: i.message }));
  } catch (err) {
    return [{ severity: 'error', path: 'odoo', message: describeError(err) }];
  } finally {
    client?.close();
    await store.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * start's refusal of the demo's store (relay/odoo-target.ts checkStoreUse, the same words), said up
 * front: odoo.url set and gateway.dataDir the demo's, the events it left waiting would go to the
 * site's Odoo. The store is read at rest (store/inspect.ts readStoreAtRest: its Odoo target record
 * and the links' last messages and event counts), never written nor created. Nothing is said of a
 * data dir not made yet, nor of one a running gateway holds (LevelDB's lock: start checks it when
 * that gateway restarts), nor of one that cannot be read (start names what is wrong with it).
 */
async function checkDataDir(config: GatewayConfig): Promise<ConfigIssue[]> {
  if (config.odoo.url === undefined) return [];
  try {
    await readStoreAtRest(config.gateway.dataDir, (store) =>
      checkStoreUse(store, odooTargetOf(config.odoo), { gatewayId: config.gateway.id, demo: false, dataDir: config.gateway.dataDir, endpoints: storeUseEndpoints(config) }),
    );
    return [];
  } catch (err) {
    if (isGatewayError(err, 'GW_CONFIG_INVALID')) return [{ severity: 'error', path: 'gateway.dataDir', message: err.message }];
    return [];
  }
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
