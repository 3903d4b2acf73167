import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { GATEWAY_ADDRESS, type JsonChild, type NetnsPair, PEER_ADDRESS, netnsPair } from '../fixtures/net/netns-pair.ts';

/**
 * An analyzer on a records-only TCP link switched off (or its cable pulled) while idle: no FIN, no
 * RST. Then the gateway writes an order download, or a host query's answer, to it. Keepalive sends
 * no probe while sent bytes wait for their acknowledgement: the kernel retransmitted them for about
 * 15 minutes (tcp_retries2), and the tray showed the analyzer connected all that time (ingress/astm
 * README, records-only TCP: "Not covered: a download written to an analyzer switched off while
 * idle"). The link expects no answer to a download, so no link timer runs out either.
 *
 * Real kernels on both sides: the gateway's ASTM endpoint in a network namespace of its own, the
 * analyzer in another, joined by a veth pair whose far end is set down (test/fixtures/net/
 * netns-pair.ts). `silentPeerMs`, the bound, is shortened so the test runs in seconds.
 */
const SILENT_PEER_MS = 1_500;
const gatewayChild = path.join(repoRoot, 'test/fixtures/net/gateway-child.ts');
const peerChild = path.join(repoRoot, 'test/fixtures/net/tcp-peer-child.ts');
const DOWNLOAD = ['H|\\^&|||lab-gateway', 'P|1||PID-1', 'O|1|S-1||^^^GLU', 'L|1|N'];

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pairAndDir(): Promise<{ pair: NetnsPair; dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lgw-astm-vanished-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const pair = await netnsPair();
  cleanups.push(() => pair.close());
  return { pair, dir };
}

/** The gateway connects to the analyzer (tcp.connect); `since`: the gateway's first event once connected. */
async function gatewayConnects(lowLevel: string): Promise<{ pair: NetnsPair; gw: JsonChild; analyzer: JsonChild; since: number }> {
  const { pair, dir } = await pairAndDir();
  const analyzer = pair.peer(peerChild, ['listen', PEER_ADDRESS]);
  const listening = await analyzer.waitFor('the analyzer listening', (e) => e.event === 'listening');
  const gw = pair.gateway(gatewayChild, ['astm', dir, 'connect', PEER_ADDRESS, String(listening.port), lowLevel, String(SILENT_PEER_MS)]);
  await analyzer.waitFor('the gateway connected', (e) => e.event === 'connected');
  const up = await gw.waitFor('the link up', (e) => e.event === 'state' && e.state === 'connected');
  return { pair, gw, analyzer, since: gw.events.indexOf(up) + 1 };
}

/** The analyzer connects to the gateway (tcp.listen). */
async function analyzerConnects(lowLevel: string): Promise<{ pair: NetnsPair; gw: JsonChild; analyzer: JsonChild; since: number }> {
  const { pair, dir } = await pairAndDir();
  const gw = pair.gateway(gatewayChild, ['astm', dir, 'listen', GATEWAY_ADDRESS, '0', lowLevel, String(SILENT_PEER_MS)]);
  const ready = await gw.waitFor('the listener', (e) => e.event === 'ready');
  const analyzer = pair.peer(peerChild, ['connect', GATEWAY_ADDRESS, String(ready.port)]);
  await analyzer.waitFor('the analyzer connected', (e) => e.event === 'connected');
  const up = await gw.waitFor('the connection counted', (e) => e.event === 'state' && e.connections === 1);
  return { pair, gw, analyzer, since: gw.events.indexOf(up) + 1 };
}

const REASON = /the analyzer acknowledged nothing the gateway sent for \d+ s \(switched off, or its cable pulled\?\): connection closed/;

describe('an order download written to a TCP analyzer switched off while idle (records-only link)', () => {
  /**
   * User sees: the analyzer was switched off overnight, idle; the morning's first order download
   * went to it. The tray showed it connected for about 15 minutes, and the gateway did not try to
   * reach it again. Promise: once the analyzer has acknowledged nothing the gateway sent for
   * `silentPeerMs` (60 s by default), the link shows `disconnected` with the reason, and the
   * gateway connects again; the analyzer switched back on is reached.
   */
  it('gateway as client: the link goes down with the reason and the gateway connects again', async () => {
    const { pair, gw, analyzer, since } = await gatewayConnects('records-only');
    await pair.cut();
    gw.send({ cmd: 'download', records: DOWNLOAD });
    const down = await gw.waitFor('the link reported down', (e) => e.event === 'state' && e.state === 'disconnected', 20_000, since);
    expect(down.detail).toMatch(REASON);
    const warning = await gw.waitFor('the warning', (e) => e.event === 'log' && e.msg === 'analyzer silent: connection closed', 5_000, since);
    expect(warning.remote).toMatch(/^tcp:10\.201\.0\.2:\d+$/);
    expect(analyzer.events.filter((e) => e.event === 'data')).toEqual([]);

    await pair.mend();
    await analyzer.waitFor('the gateway connected again', (e) => e.event === 'connected' && e.conn === 1, 40_000);
  }, 90_000);

  /** The same with the analyzer connecting to the gateway (tcp.listen): its dead connection was kept and counted. */
  it('gateway as server: the connection is closed and no longer counted', async () => {
    const { pair, gw, since } = await analyzerConnects('records-only');
    await pair.cut();
    gw.send({ cmd: 'download', records: DOWNLOAD });
    const gone = await gw.waitFor('the connection closed', (e) => e.event === 'state' && e.connections === 0, 20_000, since);
    expect(gone.state).toBe('listening');
    expect(gone.detail).toMatch(REASON);
  }, 60_000);

  /** An analyzer that is on but reads nothing (busy, or it reads only when it sends) acknowledges at TCP level: kept. */
  it('an analyzer that is there but reads nothing keeps its connection', async () => {
    const { gw, analyzer, since } = await analyzerConnects('records-only');
    analyzer.send({ cmd: 'pause', conn: 0 });
    gw.send({ cmd: 'download', records: DOWNLOAD });
    await gw.waitFor('the download written', (e) => e.event === 'download', 5_000, since);
    await new Promise((r) => setTimeout(r, SILENT_PEER_MS * 4));
    expect(gw.events.slice(since).filter((e) => e.event === 'state').map((e) => e.connections)).not.toContain(0);
    expect(gw.events.slice(since).filter((e) => e.event === 'log' && e.level === 'warn').map((e) => e.msg)).toEqual([]);
  }, 60_000);
});
