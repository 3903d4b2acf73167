/**
 * The tray's tooltip and menu line with several problems at once, the first of them in long words:
 * the status comes from the real status model (a real store in a temp dir holding a dead letter,
 * an analyzer's link reported down on the real telemetry bus), and goes through the tray's own
 * logic (desktop/src/tray-state.ts) as the tray reads it from the retained MQTT status.
 *
 * Before: the line was cut at Windows' 127 characters from its end, and the count of the other
 * problems ("(+1 more)") is at its end: the dead letter's reason (about 200 characters) filled
 * the tooltip, and a technician read one problem while an analyzer was unplugged too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { MENU_LINE_MAX, TOOLTIP_MAX, normalizeStatus, trayIcon, trayMenu, trayTooltip, type TrayInput } from '../../desktop/src/tray-state.ts';
import { makeConfig, makeDeadLetter, openStore, tempDir, waitFor } from '../fixtures/status/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gatewayStatus(opts: { deadReason: string; analyzerDown: boolean }) {
  const t = tempDir('review-s22-tray-more-');
  cleanups.push(t.cleanup);
  const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-1' });
  const store = await openStore(config.gateway.dataDir);
  cleanups.push(() => store.close());
  const telemetry = new Telemetry();
  const m = new StatusModel({
    config,
    store,
    telemetry,
    version: 't',
    startedAt: new Date().toISOString(),
    pollIntervalMs: 3_600_000, // polled by the test
    diskIntervalMs: 3_600_000,
    readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }),
  });
  await m.start();
  cleanups.push(() => m.stop());
  telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 0 });
  telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: opts.analyzerDown ? 'disconnected' : 'connected', connections: opts.analyzerDown ? 0 : 1 });
  await makeDeadLetter(store, 'CTRL-77', opts.deadReason);
  // A dead letter blocks its order (BLOCKED_PARTITIONS): one problem more.
  const want = opts.analyzerDown ? 3 : 2;
  await waitFor(() => {
    m.poll();
    const reasons = m.toApiStatus().healthReasons;
    return reasons.length === want && reasons.some((r) => r.code === 'DEAD_LETTERS' && r.message.includes('ACC-CTRL-77')) ? true : undefined;
  }, 'the model shows the dead letter with its words');
  // Through JSON, as the MQTT status topic carries it.
  const status = normalizeStatus(JSON.parse(JSON.stringify(m.toApiStatus())));
  if (!status) throw new Error('the status does not parse');
  const input: TrayInput = { connection: 'connected', availability: 'online', status, statusAt: Date.now(), now: Date.now() };
  return input;
}

describe('the tray with several problems, the first in long words', () => {
  const longReason = 'Odoo refused the invoice line: product GLU has no Odoo counterpart in the price list of the lab (mapping products.GLU missing)';

  it('keeps the count of the other problems in the tooltip and the menu line', async () => {
    const input = await gatewayStatus({ deadReason: longReason, analyzerDown: true });
    expect(input.status!.healthReasons![0]!.code).toBe('DEAD_LETTERS');
    expect(trayIcon(input)).toBe('degraded');
    const tooltip = trayTooltip(input);
    expect(tooltip.length).toBeLessThanOrEqual(TOOLTIP_MAX);
    expect(tooltip).toMatch(/^Lab gateway lab-1: needs attention — 1 dead letter \(result\.validated of ACC-CTRL-77/);
    expect(tooltip).toMatch(/… \(\+2 more\)$/);
    const line = trayMenu(input, { isAdmin: false })[0]!.label;
    expect(line.length).toBeLessThanOrEqual(MENU_LINE_MAX);
    expect(line).toMatch(/… \(\+2 more\)$/);
  });

  it('keeps it beside a settings problem too', async () => {
    const input = await gatewayStatus({ deadReason: longReason, analyzerDown: true });
    const tooltip = trayTooltip({ ...input, configIssues: ['cannot read the admin token file C:\\ProgramData\\lab-gateway\\admin.token (adminTokenFile): ENOENT'] });
    expect(tooltip.length).toBeLessThanOrEqual(TOOLTIP_MAX);
    const [first, second] = tooltip.split('\n');
    // The settings problem takes the room; the state line says how many problems there are.
    expect(first).toBe('Lab gateway lab-1: needs attention — 3 problems');
    expect(second).toMatch(/^Tray settings: cannot read the admin token file/);
    // A short settings problem leaves room for the reason's first words, and the count stays.
    const short = trayTooltip({ ...input, configIssues: ['mqttUrl: not a URL'] }).split('\n')[0]!;
    expect(short).toMatch(/^Lab gateway lab-1: needs attention — 1 dead letter.*… \(\+2 more\)$/);
  });

  it('with a dead letter alone: its blocked order is counted in sight', async () => {
    const input = await gatewayStatus({ deadReason: longReason, analyzerDown: false });
    const tooltip = trayTooltip(input);
    expect(tooltip.length).toBeLessThanOrEqual(TOOLTIP_MAX);
    expect(tooltip).toMatch(/… \(\+1 more\)$/);
  });
});
