/**
 * `lab-gateway sandbox list --json` as a commissioning script runs it on a fresh data dir, before
 * the gateway first started: the real CLI as a separate process from the sources.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-sandbox-json-');

describe('sandbox list --json before any sandbox record', () => {
  /**
   * User sees (was): with --json, the line "no sandbox records yet (… does not exist; …)" on
   * stdout: a script parsing the output (a dashboard, `jq .models`) failed on the fresh box, exit 0.
   * Promise: README `sandbox list`: "`--json` prints the same as one object".
   */
  it('prints one JSON object with each model counted 0, and says why in a note', async () => {
    const cfg = await configFile(`gateway: { id: lab-1, dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\nhl7: []\n`);
    const r = await runCli(cliSource, ['sandbox', 'list', '--json', '--config', cfg]);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out) as { version: number; models: Record<string, { count: number; recent: unknown[] }>; note?: string };
    expect(summary.version).toBe(17);
    expect(summary.models['sale.order']).toEqual({ count: 0, recent: [] });
    expect(Object.values(summary.models).every((m) => m.count === 0)).toBe(true);
    expect(summary.note).toMatch(/no sandbox records yet/);
  }, 30_000);

  it('with --model, only that model', async () => {
    const cfg = await configFile(`gateway: { id: lab-1, dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\nodoo: { sandboxVersion: 18 }\nhl7: []\n`);
    const r = await runCli(cliSource, ['sandbox', 'list', '--json', '--model', 'account.move', '--config', cfg]);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out) as { version: number; models: Record<string, unknown> };
    expect(summary.version).toBe(18);
    expect(Object.keys(summary.models)).toEqual(['account.move']);
  }, 30_000);
});
