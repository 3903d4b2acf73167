import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { GatewayStore } from '../../gateway/src/store/types.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';

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

function clientEndpoint(id: string, port: number, reconnect: { initialMs: number; maxMs: number }) {
  const telemetry = new Telemetry();
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
