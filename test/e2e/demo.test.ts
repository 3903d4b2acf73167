/**
 * `npm start` runs `lab-gateway demo`: the gateway, the sandbox Odoo, a simulated LIS and a
 * simulated analyzer. Run it as a real process for a short while and check that the business
 * documents appeared in the sandbox: draft sales orders for the ordered tests, validated
 * consumption transfers with lots, a draft RFQ from the reorder point, chatter notes; and that
 * nothing was dead-lettered or rejected.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repo, 'gateway/src/cli/main.ts');
let dir = '';

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { cwd: repo });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

interface Summary {
  models: Record<string, { count: number; recent: Array<Record<string, unknown>> }>;
}

// HL7 orders and results from the LIS and ASTM runs from the analyzer in, the expected Odoo
// records out, for every Odoo version the gateway speaks (JSON-RPC 16-18, JSON-2 19).
describe.each([16, 17, 18, 19])('lab-gateway demo (npm start) against Odoo %i', (version) => {
  it('fills the sandbox with orders, consumption, a reorder RFQ and chatter as it runs', async () => {
    dir = await mkdtemp(path.join(tmpdir(), `lgw-demo-${version}-`));
    const demo = await run(['demo', '--data-dir', dir, '--duration', '20', '--interval', '2', '--odoo-version', String(version), '--hl7-port', '0', '--status-port', '0', '--mqtt-port', '0']);
    expect(demo.code).toBe(0);
    expect(demo.out).toMatch(/status page\s+http:\/\/127\.0\.0\.1:\d+\//);

    await writeFile(path.join(dir, 'demo.yaml'), `gateway: { id: lab-demo, dataDir: ${dir} }\nodoo: { sandboxVersion: ${version} }\n`);
    const listed = await run(['sandbox', 'list', '--json', '--limit', '50', '--config', path.join(dir, 'demo.yaml')]);
    expect(listed.code).toBe(0);
    const summary = JSON.parse(listed.out) as Summary;
    const m = summary.models;
    expect(m['sale.order']!.count).toBeGreaterThanOrEqual(5);
    expect(m['sale.order']!.recent.every((so) => so.state === 'draft')).toBe(true);
    expect(m['stock.picking']!.recent.some((p) => p.state === 'done')).toBe(true);
    expect(m['stock.move.line']!.recent.some((l) => Array.isArray(l.lot_id) || typeof l.lot_id === 'number')).toBe(true);
    expect(m['purchase.order']!.recent.some((po) => String(po.origin).includes('ROC-C111-GLU') && po.state === 'draft')).toBe(true);
    expect(m['mail.message']!.count).toBeGreaterThanOrEqual(3);

    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      expect(store.stats().deadLettered).toBe(0);
      expect(store.stats().delivered).toBeGreaterThan(20);
      expect(store.intake().rejected).toBe(0);
      expect(store.intake().accepted).toBeGreaterThan(10);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
