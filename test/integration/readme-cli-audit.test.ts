/**
 * The README's "Command line" table against the command line itself: what IT staff read there is
 * what `lab-gateway --help` offers and what the commands accept; and `sandbox list`, the command
 * finance staff use to see what the sandbox Odoo holds, answers a mistyped option with a usage
 * error instead of a listing that is silently something else.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sandboxFile } from '../../gateway/src/sandbox.ts';
import { OdooEmulator } from '../odoo-emulator/emulator.ts';
import { cliSource, repo, runCli, useConfigDir } from '../fixtures/cli.ts';

/** The command a README row or usage line is about: `events list`, `demo`, `profiles`. */
function commandOf(line: string): string {
  const words = line.replace(/^`?lab-gateway\s+/, '').split(/\s+/);
  return words[0] === 'events' ? `events ${words[1] ?? ''}` : (words[0] ?? '');
}

const flagsIn = (text: string): Set<string> => new Set(text.match(/--[a-z][a-z0-9-]*/g) ?? []);

/** README "Command line" rows: command → the options its first cell names. */
function readmeCommands(): Map<string, Set<string>> {
  const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Command line'), readme.indexOf('## Configuration reference'));
  const rows = new Map<string, Set<string>>();
  for (const line of section.split('\n')) {
    // The first cell, up to the first `|` that is not escaped (`list \| show`).
    const cell = /^\| (`lab-gateway (?:\\\||[^|])*)\|/.exec(line)?.[1];
    if (cell) rows.set(commandOf(cell.replace(/`/g, '')), flagsIn(cell));
  }
  return rows;
}

describe('README command line and --help', () => {
  it('every command the README lists is in --help with the same options, and --help offers nothing the README leaves out', async () => {
    // The demo's --hl7-port/--status-port/--mqtt-port (how a second demo runs beside a gateway
    // already on 2575/8484/1883) were in the README but not in --help; sandbox list took --limit
    // and --json that neither named.
    const help = await runCli(cliSource, ['--help']);
    expect(help.code).toBe(0);
    const usage = new Map<string, Set<string>>();
    for (const line of help.out.split('\n')) {
      const m = /^\s+(lab-gateway \S.*)$/.exec(line);
      if (m?.[1]) usage.set(commandOf(m[1]), flagsIn(m[1]));
    }
    const readme = readmeCommands();
    expect([...readme.keys()].sort()).toEqual([...usage.keys()].sort());
    for (const [command, flags] of readme) {
      expect([...(usage.get(command) ?? [])].sort(), `--help for ${command}`).toEqual([...flags].sort());
    }
  });
});

describe('sandbox list', () => {
  const { dir, configFile } = useConfigDir('readme-cli-');
  const dataDir = path.join(dir, 'data');

  /** A sandbox with three sale orders, as a commissioning week leaves it. */
  async function sandboxWithOrders(): Promise<string> {
    const odoo = new OdooEmulator({ version: 17, persistFile: sandboxFile(dataDir), seed: 'lab-demo', persistDebounceMs: 10 });
    const partner = odoo.records('res.partner')[0]!.id as number;
    for (const ref of ['ACC-1', 'ACC-2', 'ACC-3']) odoo.call('sale.order', 'create', [{ partner_id: partner, client_order_ref: ref }]);
    odoo.flush();
    await odoo.close();
    return configFile(`gateway: { id: lab-1, dataDir: ${JSON.stringify(dataDir)} }\nhl7: []\n`);
  }

  it('--limit N shows the N newest records of each model, and a --limit that is not a positive whole number is a usage error', async () => {
    // `--limit abc`, `--limit 0` and `--limit -1` printed every record (or all but the first),
    // exit 0: the operator read a listing that was not what was asked for, with no word of it.
    const config = await sandboxWithOrders();
    const one = await runCli(cliSource, ['sandbox', 'list', '--config', config, '--model', 'sale.order', '--limit', '1', '--json']);
    expect(one.code).toBe(0);
    const summary = JSON.parse(one.out) as { models: Record<string, { count: number; recent: Array<{ client_order_ref?: string }> }> };
    expect(summary.models['sale.order']?.count).toBe(3);
    expect(summary.models['sale.order']?.recent.map((r) => r.client_order_ref)).toEqual(['ACC-3']);
    for (const bad of ['abc', '0', '-1', '2.5']) {
      const r = await runCli(cliSource, ['sandbox', 'list', '--config', config, '--limit', bad]);
      expect(r.code, `--limit ${bad}`).toBe(2);
      expect(r.err, `--limit ${bad}`).toContain('--limit');
      expect(r.out, `--limit ${bad}`).not.toContain('ACC-');
    }
  });

  it('a --model the sandbox does not list is a usage error naming the models it does, not an empty listing', async () => {
    // `--model sale_order` (or `sale.orders`) printed the header and nothing, exit 0: read as
    // "no sale orders in the sandbox" while it held three.
    const config = await sandboxWithOrders();
    const r = await runCli(cliSource, ['sandbox', 'list', '--config', config, '--model', 'sale_order']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('sale_order');
    expect(r.err).toContain('sale.order');
    expect(r.out).not.toContain('ACC-');
  });
});
