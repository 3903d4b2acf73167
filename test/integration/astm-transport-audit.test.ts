import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { GatewayStore } from '../../gateway/src/store/types.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { openSerialSim } from '../fixtures/astm-link/sim-wires.ts';
import { freePort, makeConfig, tempDir } from '../fixtures/status/harness.ts';

/**
 * The analyzer transports below the ASTM sessions, on real sockets: how the gateway behaves when
 * an analyzer's connection cannot be kept.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** No message reaches the store in these tests: a store that refuses every commit proves it. */
const noStore = {
  health: 'ok',
  commit: () => Promise.reject(new Error('no message expected')),
  countRejectedWithoutCommit: () => undefined,
} as unknown as GatewayStore; // only the members the endpoint calls

function clientEndpoint(id: string, port: number, reconnect: { initialMs: number; maxMs: number }, telemetry = new Telemetry()) {
  const states: Array<TelemetryEvents['endpoint.state']> = [];
  telemetry.on('endpoint.state', (e) => states.push(e));
  const ep = new AstmEndpoint({
    analyzer: { id, profile: 'test', tcp: { connect: { host: '127.0.0.1', port } } },
    profile: { name: 'test', quirks: {} },
    store: noStore,
    telemetry,
    log: silentLogger,
    normalize: () => ({ events: [], messageType: 'ASTM', searchTerms: [] }),
    reconnect,
  });
  cleanups.push(() => ep.stop(1_000));
  return { ep, states };
}

describe('gateway as TCP client: an analyzer port that accepts and closes at once', () => {
  /**
   * What IT staff saw: an analyzer whose LIS interface is switched off (or a serial-to-LAN
   * converter whose port is held by another client) accepts the connection and closes it at
   * once. The gateway reconnected every half second, forever: a connected/disconnected warning
   * pair in the log twice a second and a status that flickered between OK and ENDPOINT_DOWN.
   * README (Transports): the TCP client "reconnects with the same backoff" (500 ms doubling to
   * 30 s): the backoff started over at every accepted connection, so it never grew.
   */
  it('backs off as for a refused connection: the delays double, they do not start over at every accept', async () => {
    const accepted: number[] = [];
    const server = net.createServer((s) => {
      accepted.push(Date.now());
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;

    const { ep, states } = clientEndpoint('flap', port, { initialMs: 100, maxMs: 5_000 });
    await ep.start();
    await sleep(3_000);
    await ep.stop(1_000);
    // Doubling from 100 ms (±20 %): about 100, 200, 400, 800, 1 600 ms apart, 6 connections in
    // 3 s. Starting over at every accept: one every ~100 ms, about 30.
    expect(accepted.length).toBeGreaterThanOrEqual(3);
    expect(accepted.length).toBeLessThanOrEqual(10);
    // Each gap is longer than the one before (doubling, jitter ±20 % cannot undo a doubling).
    const gaps = accepted.slice(1).map((t, i) => t - (accepted[i] as number));
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThan(gaps[i - 1] as number);
    expect(states.some((s) => s.state === 'disconnected')).toBe(true);
  });
});

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}

/** The status model the tray, /api/status and MQTT show, fed by the endpoint's telemetry; its alerts. */
async function statusModel(): Promise<{ telemetry: Telemetry; alerts: StatusAlert[]; dir: string }> {
  const { dir, cleanup } = tempDir('astm-transport-');
  cleanups.push(cleanup);
  const store = await EventStore.open({ dataDir: path.join(dir, 'data'), pruneIntervalMs: 0 });
  cleanups.push(() => store.close());
  const telemetry = new Telemetry();
  const model = new StatusModel({ config: { ...makeConfig(dir), hl7: [], analyzers: [] }, store, telemetry, version: 't', startedAt: new Date().toISOString() });
  await model.start();
  cleanups.push(() => model.stop());
  const alerts: StatusAlert[] = [];
  model.onAlert((a) => alerts.push(a));
  return { telemetry, alerts, dir };
}

describe('gateway as TCP client: the analyzer is switched off, then on again', () => {
  /**
   * What the lab technician saw: the analyzer went off; the gateway said "Analyzer an-1 down",
   * then at once "Resolved: endpoint down (an-1)" while it was still off, then "down" again. The
   * reconnect attempt reported `connecting`, which the status reads as not down: health OK for
   * as long as that attempt lasts (about 2 min for an address that does not answer). README
   * (Transports): a link that is down keeps saying why until a connection succeeds.
   */
  it('stays down, without a "Resolved", from the drop until the analyzer accepts a connection again', async () => {
    const { telemetry, alerts } = await statusModel();

    const sockets = new Set<net.Socket>();
    const listen = (srv: net.Server, port: number) => new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    const analyzer = () =>
      net.createServer((s) => {
        sockets.add(s);
        s.on('error', () => undefined); // the gateway's stop may reset the connection: not this test's concern
        s.write(Buffer.from([0x04])); // an EOT in neutral: the analyzer is there
      });
    // Switched on again on the same port: not one listen(0) may hand to another test while it is off.
    const port = await freePort();
    let server = analyzer();
    await listen(server, port);
    const { ep, states } = clientEndpoint('an-1', port, { initialMs: 100, maxMs: 400 }, telemetry);
    await ep.start();
    await until(() => ep.connections === 1);

    // Switched off: the connection closes and nothing listens any more.
    await new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
    await until(() => states.some((s) => s.state === 'error'));
    await sleep(600); // a few more attempts
    const drop = states.findIndex((s) => s.state === 'disconnected');
    expect(drop).toBeGreaterThan(0);
    expect(alerts.map((a) => a.code)).not.toContain('ENDPOINT_DOWN_CLEARED');
    expect(alerts.filter((a) => a.code === 'ENDPOINT_DOWN')).toHaveLength(1);
    expect(states.slice(drop).map((s) => s.state)).not.toContain('connecting');

    // Switched on again: one "Resolved" when it accepts.
    server = analyzer();
    await listen(server, port);
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    await until(() => ep.connections === 1);
    expect(alerts.filter((a) => a.code === 'ENDPOINT_DOWN_CLEARED')).toHaveLength(1);
    await ep.stop(1_000);
    for (const s of sockets) s.destroy();
  });
});

describe('serial: the USB-serial adapter is unplugged, then plugged back (socat pty pair)', () => {
  /**
   * What the lab technician saw: "Analyzer an-2 disconnected", then at once "Resolved: endpoint
   * down (an-2)" with the adapter still unplugged, then "in error". The reopen attempt reported
   * `connecting` between the drop and the failed open, which the status reads as not down.
   * README (Transports): the error "is not replaced by connecting while the last attempt failed".
   */
  it('stays down, without a "Resolved", until the port opens again', async () => {
    const { telemetry, alerts, dir } = await statusModel();
    let pair = await startPtyPair(dir);
    cleanups.push(() => pair.kill());
    const ep = new AstmEndpoint({
      analyzer: { id: 'an-2', profile: 'test', serial: { path: pair.b } },
      profile: { name: 'test', quirks: {} },
      store: noStore,
      telemetry,
      log: silentLogger,
      normalize: () => ({ events: [], messageType: 'ASTM', searchTerms: [] }),
      reconnect: { initialMs: 100, maxMs: 400 },
    });
    cleanups.push(() => ep.stop(1_000));
    const states: string[] = [];
    telemetry.on('endpoint.state', (e) => states.push(e.state));
    await ep.start();
    expect(ep.connections).toBe(1);
    await sleep(300); // in use a while (an unplug right after the open is the next test's)

    await pair.kill(); // unplugged: the device vanishes
    await until(() => states.includes('error'));
    await sleep(600); // a few more reopen attempts
    expect(alerts.map((a) => a.code)).not.toContain('ENDPOINT_DOWN_CLEARED');
    expect(alerts.filter((a) => a.code === 'ENDPOINT_DOWN')).toHaveLength(1);
    expect(states.slice(states.indexOf('disconnected'))).not.toContain('connecting');

    pair = await startPtyPair(dir); // plugged back in, the same device path
    await until(() => ep.connections === 1);
    expect(alerts.filter((a) => a.code === 'ENDPOINT_DOWN_CLEARED')).toHaveLength(1);
  });
});

describe('serial: a USB-serial connector that bounces as it is plugged in (socat pty pair)', () => {
  /**
   * What IT staff saw: the adapter was plugged in with a bounce (it came, went and came back
   * within a moment). The gateway opened the port as it appeared, the device vanished right
   * after, and the link stayed "connected" for good: the read of a hung-up tty returns 0 bytes
   * (end of file), which `serialport` reads again at once, forever, so no close ever came. The
   * port was never reopened when the adapter settled (results piled up in the analyzer), and one
   * thread of Node's pool spun on the dead descriptor, slowing the store behind it. README
   * (Transports): "a port that disappears … is reopened with backoff".
   */
  it('reports each vanished port disconnected and reopens it, however soon after the open it vanished', async () => {
    const { dir } = await statusModel();
    const telemetry = new Telemetry();
    let pair: PtyPair | undefined;
    cleanups.push(() => pair?.kill());
    let unplugOnOpen = true;
    const states: string[] = [];
    telemetry.on('endpoint.state', (e) => {
      states.push(e.state);
      // The bounce: the device goes the moment the gateway has opened it.
      if (e.state === 'connected' && unplugOnOpen) pair?.proc.kill('SIGKILL');
    });
    const link = path.join(dir, 'b');
    const ep = new AstmEndpoint({
      analyzer: { id: 'an-3', profile: 'test', serial: { path: link } },
      profile: { name: 'test', quirks: {} },
      store: noStore,
      telemetry,
      log: silentLogger,
      normalize: () => ({ events: [], messageType: 'ASTM', searchTerms: [] }),
      reconnect: { initialMs: 20, maxMs: 50 },
    });
    cleanups.push(() => ep.stop(1_000));
    await ep.start(); // nothing there yet: error, retrying
    for (let bounce = 0; bounce < 6; bounce++) {
      const opened = states.filter((s) => s === 'connected').length;
      pair = await startPtyPair(dir);
      await until(() => states.filter((s) => s === 'connected').length > opened);
      await pair.kill();
      // Gone: reported down, not left "connected".
      await until(() => ep.connections === 0 && states.at(-1) !== 'connected', 3_000);
    }
    // Plugged in for good: the port is opened again and carries a message.
    unplugOnOpen = false;
    pair = await startPtyPair(dir);
    await until(() => ep.connections === 1);
    const { sim } = await openSerialSim(pair.a, cleanups);
    sim.write([0x05]);
    expect(await sim.nextByte()).toBe(0x06); // ENQ answered: the link reads the new port
  });
});
