import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { kernelTcpState, peerAcknowledgesNothing, socketKey, UnacknowledgedWatch } from '../../gateway/src/net/unacknowledged-bytes.ts';
import { until } from '../fixtures/gateway-process.ts';
import { repoRoot } from '../fixtures/hl7/helpers.ts';

/**
 * What the kernel says of a connection (gateway/src/net/unacknowledged-bytes.ts), read from the
 * real /proc/net/tcp and /proc/net/tcp6 for real sockets on this machine. A peer that vanished is
 * tested with the endpoints on a veth pair (mllp-vanished-lis-audit.test.ts,
 * astm-vanished-analyzer-download-audit.test.ts); here, that every kind of socket the gateway holds
 * is found, and that a peer alive but not reading is never taken for gone.
 */
const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A server on `host` and a client connected to it through `connectTo`; resolves with both ends once they exchanged a byte each way. */
async function connectedPair(host: string, connectTo: string): Promise<{ server: net.Socket; client: net.Socket }> {
  const srv = net.createServer();
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const client = net.connect({ host: connectTo, port: (srv.address() as net.AddressInfo).port });
  const server = await accepted;
  closers.push(() => {
    client.destroy();
    server.destroy();
    srv.close();
  });
  server.write('x');
  await new Promise((r) => client.once('data', r));
  client.write('y');
  await new Promise((r) => server.once('data', r));
  return { server, client };
}

describe('the kernel line of a connection', () => {
  it.each([
    ['IPv4', '127.0.0.1', '127.0.0.1'],
    ['IPv6', '::1', '::1'],
    ['IPv4 on a listener of every address (IPv4-mapped IPv6)', '::', '127.0.0.1'],
  ])('%s: found on both ends, everything acknowledged', async (_kind, host, connectTo) => {
    const { server, client } = await connectedPair(host, connectTo);
    for (const s of [server, client]) {
      const where = socketKey(s);
      expect(where).toBeDefined();
      // The byte each side wrote was acknowledged at once (the peer's stack answers, not its program).
      const state = await until('the byte acknowledged', async () => {
        const k = await kernelTcpState(where!);
        return k && k.txQueue === 0 ? k : undefined;
      }, 5_000);
      expect(state).toMatchObject({ state: 1, txQueue: 0 });
      expect(peerAcknowledgesNothing(state)).toBe(false);
    }
  });

  it('a TLS connection: the line of the TCP connection under it', async () => {
    const srv = tls.createServer({
      cert: readFileSync(path.join(repoRoot, 'test/fixtures/relay/odoo-test.crt')),
      key: readFileSync(path.join(repoRoot, 'test/fixtures/relay/odoo-test.key')),
    });
    const accepted = new Promise<tls.TLSSocket>((r) => srv.once('secureConnection', r));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const client = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, rejectUnauthorized: false });
    const server = await accepted;
    closers.push(() => {
      client.destroy();
      server.destroy();
      srv.close();
    });
    const where = socketKey(server);
    expect(where?.file).toBe('/proc/net/tcp');
    expect(await until('the line', () => kernelTcpState(where!), 5_000)).toMatchObject({ state: 1 });
  });

  it('a closed connection is no longer listed', async () => {
    const { server, client } = await connectedPair('127.0.0.1', '127.0.0.1');
    const where = socketKey(server)!;
    client.destroy();
    server.destroy();
    await until('the line gone', async () => (await kernelTcpState(where)) === undefined || undefined, 5_000);
  });
});

describe('a peer that is alive but reads nothing', () => {
  /**
   * Its window fills and the kernel probes it (zero-window probes) rather than retransmitting:
   * its stack answers each probe, so the bytes waiting are not "unacknowledged by a gone peer".
   * Megabytes wait in the send queue for as long as it reads nothing; its connection stays.
   */
  it('is not taken for gone, however long its window stays full', async () => {
    const { server, client } = await connectedPair('127.0.0.1', '127.0.0.1');
    client.pause();
    let gone: number | undefined;
    const watch = new UnacknowledgedWatch({ socket: server, boundMs: 300, onUnacknowledged: (s) => (gone = s) });
    closers.push(() => watch.stop());
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    for (let i = 0; i < 32; i++) server.write(chunk);
    watch.wrote();
    const where = socketKey(server)!;
    const probing = await until('the window full, the kernel probing it', async () => {
      const k = await kernelTcpState(where);
      return k && k.timer === 4 ? k : undefined;
    }, 10_000);
    expect(probing.txQueue).toBeGreaterThan(0);
    expect(peerAcknowledgesNothing(probing)).toBe(false);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(gone).toBeUndefined();
    expect(server.destroyed).toBe(false);
  });
});
