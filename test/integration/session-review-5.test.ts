/**
 * Session review 5: regressions of today's changes (bb04432..HEAD) on the relay, config, status and
 * desktop side. Each test fails on HEAD; its comment says what the user sees, the commit and
 * file:line that caused it, and the fix suggested.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { hostname, tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { validateConfig } from '../../gateway/src/config/validate.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { createLogger, silentLogger } from '../../gateway/src/log.ts';
import { MqttStatusPublisher } from '../../gateway/src/status/mqtt-publisher.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeRig, secondRfqLineAnswerLost, type Rig } from '../fixtures/relay/harness.ts';
import { rfqLines, waitFor } from '../fixtures/relay/helpers.ts';
import { makeConfig, openStore, useMosquitto } from '../fixtures/status/harness.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';

let rig: Rig | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('reference pull meeting a 503 (commit 2e4fb3d)', () => {
  /**
   * What the user sees: one periodic reference pull meets a 503 from Odoo's front proxy (a deploy,
   * a proxy restart). The next pull succeeds, but with nothing queued (a quiet night, a weekend)
   * /api/status keeps `odoo.state: "unreachable"`, after 2 min health turns `degraded` with
   * ODOO_UNREACHABLE "Odoo unreachable for N min", the tray shows a warning and MQTT publishes
   * it — while Odoo answers every pull — until the next event happens to be posted.
   * Cause: 2e4fb3d, gateway/src/relay/relay.ts:361 — #pullReference now calls
   * odoo.noteFailure(err) for a link-down pull (state → 'unreachable'), but a successful pull never
   * calls noteSuccess(): only #postBatch does (relay.ts:555). Before, a pull did not touch the state.
   * Fix: in #pullReference, after `await this.refreshReference()` succeeds (also when only some
   * models were refused), call `odoo.noteSuccess?.()` (and clear #lastError), as #postBatch does.
   */
  it('Odoo 17: after one pull meets a 503 and the next succeeds, the link is "connected" again', async () => {
    rig = await makeRig(17, { relay: { referenceRefreshMs: 300 } });
    await waitFor(() => rig!.relay.snapshot().referencePulledAt !== undefined && rig!.client.state === 'connected');
    rig.emu.faults.inject({ match: { transport: 'jsonrpc', model: 'product.product', method: 'search_read' }, times: 1, action: { kind: 'status', status: 503 } });
    await waitFor(() => rig!.emu.faults.log.some((f) => f.action === 'status'), 10_000, 10);
    const failedAt = Date.now();
    // Pulls after the failed one succeed (the fault fired once).
    await waitFor(() => Date.parse(rig!.relay.snapshot().referencePulledAt ?? '') > failedAt, 10_000, 20);
    await sleep(500);
    expect(rig.relay.snapshot().state).toBe('connected');
    expect(rig.client.state).toBe('connected');
  }, 20_000);
});

/** A TCP relay to the broker that can be frozen: nothing more crosses it, and the broker's side stays open. */
async function freezableProxy(targetPort: number): Promise<{ port: number; freeze: () => void; close: () => void }> {
  const pairs: Array<{ a: net.Socket; b: net.Socket }> = [];
  let frozen = false;
  const server = net.createServer((a) => {
    const b = net.connect(targetPort, '127.0.0.1');
    pairs.push({ a, b });
    a.on('data', (d) => { if (!frozen) b.write(d); });
    b.on('data', (d) => { if (!frozen) a.write(d); });
    // A client that goes away without a word (power cut, cable): the broker's side is NOT closed.
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    b.on('close', () => { if (!frozen) a.destroy(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => { frozen = true; },
    close: () => {
      for (const p of pairs) { p.a.destroy(); p.b.destroy(); }
      server.close();
    },
  };
}

describe('MQTT publisher client id with an external broker (commit 103a7ba)', () => {
  const broker = useMosquitto('sr5-mosq-');

  /**
   * What the user sees: the gateway box loses power (or its network) and comes back within the
   * broker's keep-alive window, or the service is restarted while the old TCP session is still
   * open at the broker. The new process publishes "online"; ~15 s later the broker times the OLD
   * session out and publishes its Last Will — retained `{"state":"offline"}` — over it. Every tray
   * then shows the running gateway "offline — the gateway is not running" (tray-state.ts:90) until
   * the gateway happens to reconnect: availability is only published on connect.
   * Before, both processes used the client id `lab-gateway-<gatewayId>`: the new connection took
   * the old session over (MQTT 3.1.1 §3.1.4), the old will (if any) went out first and "online"
   * was the last retained word.
   * Cause: 103a7ba, gateway/src/status/mqtt-topics.ts:33 (publisherClientId adds a per-process
   * random part) used by mqtt-publisher.ts:90 for external brokers too.
   * Fix: keep the stable id `lab-gateway-<gatewayId>` for an external broker (the embedded broker
   * can keep its random id, or refuse the stable id to other clients as it does now), or
   * re-publish the retained `online` availability on every publishIntervalMs tick
   * (mqtt-publisher.ts #publishAll publishes it only when `force`).
   */
  it('a restarted gateway is still "online" after its previous, silently dead session timed out', async () => {
    const gatewayId = 'lab-ho';
    const proxy = await freezableProxy(broker.port);
    cleanups.push(() => proxy.close());
    const start = async (url: string, dir: string): Promise<MqttStatusPublisher> => {
      const config = makeConfig(path.join(broker.dir, dir), { id: gatewayId, mqtt: { broker: url } });
      const store = await openStore(config.gateway.dataDir);
      const model = new StatusModel({ config, store, telemetry: new Telemetry(), version: 't', startedAt: new Date().toISOString() });
      const pub = new MqttStatusPublisher({ gatewayId, model, log: silentLogger, url, publishIntervalMs: 1000 });
      await pub.start();
      cleanups.push(async () => {
        await pub.stop(200);
        await model.stop();
        await store.close();
      });
      return pub;
    };
    // The first process, through a link that then goes silent (its process dies without a FIN).
    const first = await start(`mqtt://127.0.0.1:${proxy.port}`, 'p1');
    expect(first.connected).toBe(true);
    proxy.freeze();
    await first.stop(200);
    // The restarted gateway.
    const second = await start(`mqtt://127.0.0.1:${broker.port}`, 'p2');
    expect(second.connected).toBe(true);
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'sr5-watcher', reconnectPeriod: 0 });
    cleanups.push(() => watcher.endAsync());
    let availability: { state?: string } = {};
    watcher.on('message', (_t, payload) => { availability = JSON.parse(payload.toString()) as { state?: string }; });
    await watcher.subscribeAsync(`lab-gateway/${gatewayId}/availability`, { qos: 1 });
    await waitFor(() => availability.state !== undefined, 5_000);
    // The broker drops the dead session after 1.5 × keepalive (10 s) at most.
    await sleep(24_000);
    expect(second.connected).toBe(true);
    expect(availability.state).toBe('online');
  }, 50_000);
});

describe('status API Host check (commit 506f2ad)', () => {
  /**
   * What the user sees: a gateway listening on 0.0.0.0 that IT reaches by the machine's own name —
   * `http://<host>.local:8484` (mDNS/avahi, the usual way to find a Debian box on a LAN without
   * DNS) in the tray's gatewayUrl, a bookmark of the status page, a Prometheus target — worked
   * yesterday and now answers 421 to everything but /healthz after the upgrade: Prometheus marks
   * the target down, the tray's status window shows a JSON error and its Pause/Resume fail. Only
   * the bare os.hostname() is accepted; the same machine's mDNS name (and its FQDN when
   * hostname() is the short name) is not, though no web page can choose either.
   * Cause: 506f2ad, gateway/src/status/http-server.ts:70 (defaultAllowedHosts: listen host,
   * localhost, 127.0.0.1, ::1, hostname() only), enforced at http-server.ts:262.
   * Fix: add `<hostname>.local` and the machine's FQDN (dns.lookupService / getaddrinfo
   * AI_CANONNAME at start) to the defaults, and log the accepted names at start so IT knows what
   * to add to status.allowedHosts.
   */
  it('answers /metrics and /api/status for the machine\'s mDNS name', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sr5-host-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = testGatewayConfig('sr5-host', path.join(dir, 'data'), { status: { listen: { host: '0.0.0.0', port: 0 } } });
    const gateway = new Gateway({ config, log: createLogger({ level: 'error', write: () => {} }) });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const port = addresses.status.port;
    const get = (target: string, host: string): Promise<number> =>
      new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: target, headers: { Host: host } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
      });
    const name = `${hostname()}.local:${port}`;
    expect({ metrics: await get('/metrics', name), status: await get('/api/status', name) }).toEqual({ metrics: 200, status: 200 });
  }, 30_000);
});

describe('config validation (commit 506f2ad)', () => {
  /**
   * What the user sees: a site publishing status to its lab Mosquitto over plain MQTT with a
   * password (`mqtt.broker: mqtt://10.0.0.7:1883`, mqtt.usernameFile / passwordFile) — the same
   * exposure the gateway itself accepts from every tray on its embedded broker beyond loopback —
   * upgrades, and `start` refuses the configuration: the whole gateway is down (no HL7/ASTM intake,
   * no relay), for a preference about the status channel.
   * Cause: 506f2ad, gateway/src/config/validate.ts:547 (c.error on plain mqtt:// / ws:// with
   * credentials beyond loopback).
   * Fix: make it a warning (c.warn naming mqtt.broker and recommending mqtts://), or an error only
   * behind an explicit setting; never refuse a configuration that ran before without a migration note.
   */
  it('a LAN Mosquitto over mqtt:// with credentials files is still a valid configuration', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sr5-cfg-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'mqtt.user'), 'gateway\n');
    writeFileSync(path.join(dir, 'mqtt.pass'), 's3cret\n');
    const { config, issues } = validateConfig(
      {
        gateway: { id: 'lab-1', dataDir: path.join(dir, 'data') },
        mqtt: { broker: 'mqtt://10.0.0.7:1883', usernameFile: path.join(dir, 'mqtt.user'), passwordFile: path.join(dir, 'mqtt.pass') },
      },
      dir,
    );
    expect(issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(config).toBeDefined();
  });
});

describe('replenishment: exactly once with RFQ line merging (commit ea775eb)', () => {
  /**
   * What purchasing sees: the gateway adds the HbA1c reagent line to DiagSupply's open draft RFQ;
   * Odoo commits it but the answer is lost (connection reset). Before the retry (the ambiguous
   * settle window), the buyer does the normal thing: rewrites the new line's description to the
   * vendor's catalogue text and confirms the RFQ. The retry finds no marker (it was in the
   * description the buyer replaced), no external id (a line added by write has none), no open
   * line (the RFQ is confirmed), so it loads a NEW RFQ for the same reagent: the kit is ordered
   * twice. Before ea775eb every breach was its own RFQ loaded with the external id
   * rfq_<breach key>, which the retry looked up (B.4) whatever the buyer did to the lines.
   * Cause: ea775eb, gateway/src/relay/rules/threshold-breached.ts:139 (the vendor's draft
   * gets the line by `write`, whose only trace is the marker in the editable `name`, searched at
   * :54-55); the xmlid check at :83-85 can only find RFQs created by load.
   * Fix: give the added line an identity the buyer does not edit — create it with
   * `purchase.order.line` load() and an external id `rfq_line_<breach key>` (look it up on a
   * retry like the RFQ's), or keep a per-breach external id pointing at the line
   * (ir.model.data via load of the line), and fall back to the marker only for old events.
   */
  it('Odoo 17: a line added to the open RFQ whose answer was lost, then re-described and confirmed by the buyer, is not ordered again', async () => {
    rig = await makeRig(17, { relayOptions: { ambiguousSettleMs: 1500 } });
    const emu = rig.emu;
    await secondRfqLineAnswerLost(rig, 'purchase.order', 'write');
    const line = rfqLines(emu, 'RGT-HBA1C')[0]!;
    emu.call('purchase.order.line', 'write', [[line.id as number], { name: 'HbA1c reagent kit, 2 x 50 tests (cat. 1234)' }]);
    emu.call('purchase.order', 'button_confirm', [[line['order_id'] as number]]);
    await rig.waitDrained();
    expect(emu.faults.log.map((f) => f.action)).toContain('reset-after-commit');
    expect(rfqLines(emu, 'RGT-HBA1C')).toHaveLength(1);
  }, 30_000);
});
