/**
 * An ASTM analyzer on `tcp.listen` whose port already holds the most connections the gateway
 * takes (8): connections an analyzer's serial-to-LAN converter left open as it reconnected, or
 * other clients on the LAN. The real gateway process and real TCP connections.
 */
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { useConfigDir } from '../fixtures/cli.ts';
import { getJson, startGatewayProcess, until, TEST_LISTENERS, type GatewayProcess } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-astm-conn-limit-');
const running: GatewayProcess[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const g of running.splice(0)) await g.stop();
});

function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  sockets.push(s);
  s.on('error', () => undefined);
  return new Promise((resolve, reject) => s.once('connect', () => resolve(s)).once('error', reject));
}

describe('a connection beyond the analyzer port\'s limit', () => {
  /**
   * User sees (was): the analyzer's new connection closed at once, again and again, and nothing in
   * the log at any level, the status showing "8 connection(s)": IT could not tell why the analyzer
   * never got through. The HL7 listener logs the same refusal ("connection refused: limit reached").
   */
  it('is refused with a warning in the log naming the analyzer, the peer and the limit', async () => {
    const cfg = await configFile([`gateway: { id: site-lim, dataDir: ${path.join(dir, 'data')} }`, TEST_LISTENERS, 'analyzers: [ { id: chem-1, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]', ''].join('\n'));
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const port = ready!.analyzers['chem-1']!.port;
    const base = ready!.status.url.replace(/\/$/, '');
    for (let i = 0; i < 8; i++) await connect(port);
    await until('8 connections counted', async () => {
      const s = await getJson<{ endpoints: Array<{ id: string; connections: number }> }>(`${base}/api/status`);
      return s.endpoints.find((e) => e.id === 'chem-1')?.connections === 8 ? true : undefined;
    });

    const ninth = await connect(port);
    const local = `127.0.0.1:${ninth.localPort}`;
    await new Promise<void>((resolve) => ninth.once('close', () => resolve()));
    const line = await until('the refusal logged', () => gw.err().split('\n').find((l) => l.includes('connection refused') && l.includes(local)));
    const entry = JSON.parse(line) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'warn', endpoint: 'chem-1', remote: local, maxConnections: 8 });
  }, 60_000);
});
