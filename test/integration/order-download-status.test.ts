/**
 * Order download (analyzers[].pushOrders) as the lab's IT staff see it: an analyzer whose
 * worklist never arrives shows, on its endpoint entry, how many orders wait for it, since when,
 * and why the last send failed — in GET /api/status, on its retained MQTT endpoint topic, on the
 * status page (real Chromium) and in `lab-gateway status`. Before, the only trace was the log.
 *
 * Real gateway, real LevelDB in a temp dir kept across a restart, real MLLP from the LIS, a
 * simulated E1381 analyzer over TCP that NAKs every frame and later accepts, real HTTP and MQTT.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { type Browser } from 'playwright-core';
import { launchChromium } from '../fixtures/chromium.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { ACK, ENQ, EOT, NAK, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { sendOrder, testGatewayConfig } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';
import type { OrderDownloadSummary } from '../../gateway/src/astm/order-download.ts';

const GATEWAY_ID = 'orders-status';

type EndpointEntry = { id: string; kind: string; state: string; connections: number; lastMessageAt: string | null; orderDownload?: OrderDownloadSummary };

async function gatewayAt(dir: string): Promise<Gateway> {
  const gateway = new Gateway({ config: testGatewayConfig(GATEWAY_ID, dir, { analyzers: [CENTAUR] }), log: silentLogger });
  await gateway.start();
  return gateway;
}

const baseOf = (gateway: Gateway): string => gateway.addresses().status.url.replace(/\/$/, '');

async function apiStatus(gateway: Gateway): Promise<{ text: string; endpoints: EndpointEntry[] }> {
  const res = await fetch(`${baseOf(gateway)}/api/status`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, endpoints: (JSON.parse(text) as { endpoints: EndpointEntry[] }).endpoints };
}

/** The analyzer's order download entry once `ready` holds (polled: the state follows the link). */
async function orderDownloadWhen(gateway: Gateway, ready: (o: OrderDownloadSummary) => boolean, what: string): Promise<OrderDownloadSummary> {
  let last: OrderDownloadSummary | undefined;
  for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
    last = (await apiStatus(gateway)).endpoints.find((e) => e.id === 'centaur-1')?.orderDownload;
    if (last && ready(last)) return last;
  }
  throw new Error(`GET /api/status never showed ${what} for centaur-1 (last: ${JSON.stringify(last)})`);
}

/** An LIS order whose PID carries the patient's name, as real LIS orders do. */
const namedOrder = (controlId: string, accession: string): Buffer => Buffer.from(orm(controlId, accession, ['TSH']).toString('latin1').replace('PID|1||MRN-7^^^LAB^MR', 'PID|1||MRN-7^^^LAB^MR||SMITHSON^JOANNA'), 'latin1');


/**
 * The analyzer takes the line (ACK to ENQ) and NAKs every frame, as an analyzer does that refuses
 * the worklist (an unknown test code, the host interface off). Runs until the socket closes.
 */
function refuseEveryFrame(sim: AnalyzerSim): { refused: () => number } {
  let refused = 0;
  void (async () => {
    for (;;) {
      const b = await sim.nextByte(60_000);
      if (b === ENQ) sim.write([ACK]);
      else if (b === STX) {
        while ((await sim.nextByte(5_000)) !== 0x0a) {
          // the rest of the frame, up to its LF
        }
        refused++;
        sim.write([NAK]);
      } else if (b === EOT) continue;
    }
  })().catch(() => undefined);
  return { refused: () => refused };
}

/** The retained `endpoints/centaur-1` topic, as a subscriber (the tray) gets it. */
async function retainedEndpoint(gateway: Gateway, ready: (e: EndpointEntry) => boolean): Promise<EndpointEntry> {
  const client = await mqtt.connectAsync(gateway.addresses().mqtt.url, { reconnectPeriod: 0 });
  try {
    let latest: EndpointEntry | undefined;
    client.on('message', (_topic, payload) => (latest = JSON.parse(payload.toString()) as EndpointEntry));
    await client.subscribeAsync(`lab-gateway/${GATEWAY_ID}/endpoints/centaur-1`, { qos: 1 });
    for (const until = Date.now() + 10_000; !(latest && ready(latest)); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > until) throw new Error(`the endpoint topic never showed it (last: ${JSON.stringify(latest)})`);
    }
    return latest;
  } finally {
    await client.endAsync();
  }
}

/** The line the status page shows under the analyzer's row, in real Chromium. */
async function pageLine(browser: Browser, gateway: Gateway, contains: string): Promise<string> {
  const page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${baseOf(gateway)}/`);
    const line = page.locator('#endpoints [data-order-download="centaur-1"]');
    await line.filter({ hasText: contains }).waitFor({ timeout: 10_000 });
    expect(errors, 'the page threw').toEqual([]);
    // One screen at 1024×600: the line does not widen the page.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1024);
    return (await line.textContent()) ?? '';
  } finally {
    await page.close();
  }
}

describe('order download state on the status surfaces', () => {
  let dir: string;
  let browser: Browser;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lgw-orders-status-'));
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the orders waiting for an analyzer that refuses them, since when and why, through a restart, until it accepts', async () => {
    const first = await gatewayAt(dir);
    cleanup.push(() => first.stop(5_000));

    // Nothing queued yet: the analyzer's entry says so; the DESIGN.md §5 fields stay as they are,
    // and an endpoint without order download gets no such entry.
    const idle = await orderDownloadWhen(first, () => true, 'the order download entry');
    expect(idle).toEqual({ waiting: 0, oldestWaitingSince: null, failing: 0, lastError: null, lastErrorAt: null, lastErrorAccession: null, lastSentAt: null });
    const { endpoints } = await apiStatus(first);
    const analyzerEntry = endpoints.find((e) => e.id === 'centaur-1')!;
    for (const k of ['id', 'kind', 'state', 'connections', 'lastMessageAt']) expect(analyzerEntry).toHaveProperty(k);
    expect(endpoints.find((e) => e.id === 'lis')).not.toHaveProperty('orderDownload');

    // The analyzer connects and NAKs every frame of the worklist.
    let analyzer: { sim: AnalyzerSim; socket: net.Socket } = await connectAnalyzer(first, 'centaur-1');
    const refuser = refuseEveryFrame(analyzer.sim);
    const sentAt = new Date().toISOString();
    await sendOrder(first, namedOrder('ST-1', 'ACC-ST-1'));
    const refused = await orderDownloadWhen(first, (o) => o.failing === 1, 'a failing download');
    expect(refuser.refused()).toBeGreaterThan(0);
    expect(refused.waiting).toBe(1);
    expect(refused.oldestWaitingSince! >= sentAt && refused.oldestWaitingSince! <= new Date().toISOString(), `oldestWaitingSince ${refused.oldestWaitingSince} is not when the order was queued`).toBe(true);
    expect(refused.lastError).toMatch(/frame refused \d+ times/);
    expect(refused.lastErrorAccession).toBe('ACC-ST-1');
    expect(refused.lastErrorAt! >= refused.oldestWaitingSince!).toBe(true);
    expect(refused.lastSentAt).toBeNull();
    expect((await apiStatus(first)).text, 'a patient name on the status API').not.toMatch(/SMITHSON|JOANNA/);
    // The health says it too (the tray's icon and the page's headline follow it).
    const health = (await (await fetch(`${baseOf(first)}/api/status`)).json()) as { health: string; healthReasons: Array<{ code: string; endpoint?: string; message: string }> };
    expect(health.health).toBe('degraded');
    expect(health.healthReasons.find((r) => r.code === 'ORDER_DOWNLOAD_FAILING')).toMatchObject({ endpoint: 'centaur-1', message: expect.stringMatching(/^Analyzer centaur-1 did not accept 1 order download \(1 waiting for \d+ min\); last refusal \(ACC-ST-1\): .*frame refused \d+ times/) });

    // The same entry on the analyzer's retained MQTT topic.
    const topic = await retainedEndpoint(first, (e) => e.orderDownload?.failing === 1);
    expect(topic.orderDownload).toEqual(refused);

    // `lab-gateway status` says it under the analyzer's line.
    const cli = await runCli(cliSource, ['status', '--url', baseOf(first)]);
    expect(cli.code, cli.err).toBe(0);
    expect(cli.out).toMatch(/centaur-1: .*\n\s+orders: 1 waiting since \S+, 1 not accepted — last refusal \(ACC-ST-1, \S+\): .*frame refused \d+ times/);

    // The status page shows a line under the analyzer.
    const line = await pageLine(browser, first, 'last refusal');
    expect(line).toMatch(/^1 order waiting since \d{1,2}:\d{2}.* — last refusal \(ACC-ST-1\): .*frame refused \d+ times/);

    // Restart with the order still waiting: the counts come back from the outbox.
    analyzer.socket.destroy();
    await first.stop(5_000);
    const second = await gatewayAt(dir);
    cleanup.push(() => second.stop(5_000));
    const afterRestart = await orderDownloadWhen(second, () => true, 'the order download entry after the restart');
    expect(afterRestart).toEqual({ ...refused, lastSentAt: null });

    // The analyzer now takes the worklist: nothing waits any more, and the refusal is over.
    analyzer = await connectAnalyzer(second, 'centaur-1');
    cleanup.push(async () => analyzer.socket.destroy());
    const session = await nextSession(analyzer.sim, 10_000);
    expect(orderRecords(session).map((o) => o[2])).toEqual(['ACC-ST-1']);
    const accepted = await orderDownloadWhen(second, (o) => o.waiting === 0, 'the order sent');
    expect(accepted).toMatchObject({ waiting: 0, oldestWaitingSince: null, failing: 0, lastError: null, lastErrorAt: null, lastErrorAccession: null });
    expect(accepted.lastSentAt! >= afterRestart.lastErrorAt!).toBe(true);
    const cleared = (await (await fetch(`${baseOf(second)}/api/status`)).json()) as { healthReasons: Array<{ code: string }> };
    expect(cleared.healthReasons.map((r) => r.code)).not.toContain('ORDER_DOWNLOAD_FAILING');
    expect((await retainedEndpoint(second, (e) => e.orderDownload?.waiting === 0)).orderDownload).toEqual(accepted);
    expect(await pageLine(browser, second, 'No orders waiting')).toMatch(/^No orders waiting, last sent /);
  });

  it('a refusal reason quoting a patient record is shown with the names masked', async () => {
    const gateway = await gatewayAt(await mkdtemp(path.join(dir, 'mask-')));
    cleanup.push(() => gateway.stop(5_000));
    await orderDownloadWhen(gateway, () => true, 'the order download entry');
    // No link reason quotes a record today; should one ever do, the surfaces mask it like raw text.
    gateway.statusModel!.setOrderDownload('centaur-1', {
      waiting: 1,
      oldestWaitingSince: new Date().toISOString(),
      failing: 1,
      lastError: 'GW_ASTM_LINK: analyzer answered "P|1||MRN-7||SMITHSON^JOANNA||19800412|F"',
      lastErrorAt: new Date().toISOString(),
      lastErrorAccession: 'ACC-MASK-1',
      lastSentAt: null,
    });
    const shown = await orderDownloadWhen(gateway, (o) => o.failing === 1, 'the refusal');
    expect(shown.lastError).toBe('GW_ASTM_LINK: analyzer answered "P|1||MRN-7||***||19800412|F"');
    expect((await apiStatus(gateway)).text).not.toMatch(/SMITHSON|JOANNA/);
    expect(JSON.stringify(await retainedEndpoint(gateway, (e) => e.orderDownload?.failing === 1))).not.toMatch(/SMITHSON|JOANNA/);
  });
});
