import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';

/**
 * `lab-gateway send` (and the demo's LIS) connect with MllpClient. What IT saw while commissioning:
 * `send --tls --timeout-ms 500` to a LIS-like server that accepts TCP and never starts the TLS
 * handshake (a plain MLLP port, a stuck proxy) waited forever: `timeoutMs` bounded only the wait
 * for replies, not the connection. The promise (README, CLI reference): `send` answers within
 * its timeout, with a reason.
 */
describe('MllpClient.connect within its timeout', () => {
  const servers: net.Server[] = [];
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A server that accepts the connection and never says anything. */
  async function silentServer(): Promise<number> {
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.resume(); // reads (and drops) what comes, so it sees the other side go away
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as net.AddressInfo).port;
  }

  it('gives up on a TLS handshake that never comes, naming it, and leaves no socket open', async () => {
    const port = await silentServer();
    const outcome = await Promise.race([
      MllpClient.connect({ host: '127.0.0.1', port, tls: { rejectUnauthorized: false }, timeoutMs: 300 }).then(
        () => 'connected',
        (err: Error) => err.message,
      ),
      new Promise<string>((r) => setTimeout(() => r('still waiting after 10 s'), 10_000)),
    ]);
    expect(outcome).toMatch(/no TLS handshake within 300 ms/);
    // The server sees the gateway's side go away (the socket is not left half open).
    await expect.poll(() => sockets.every((s) => s.destroyed || s.readableEnded), { timeout: 10_000 }).toBe(true);
  });

  // The bound is 2 s, not less: a local connect on a loaded CI machine whose event loop stalls past
  // the bound would see the timer first and fail for no fault of the client (the timers run before
  // the connection's callback in a loop turn).
  it('a plain connection that is accepted is not cut by the timer afterwards', async () => {
    const port = await silentServer();
    const client = await MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 2_000 });
    await new Promise((r) => setTimeout(r, 2_500)); // past the connect bound: the timer would have cut it by now
    const reply = await client.request(Buffer.from('MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r'), 1).then(
      () => 'reply',
      (err: Error) => err.message,
    );
    expect(reply).toMatch(/no reply within 2000 ms/);
    client.close();
  }, 15_000);
});
