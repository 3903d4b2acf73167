/**
 * The relay's kept-alive connection to Odoo after a pause longer than the keep-alive time the
 * server announced (`Keep-Alive: timeout=N`, sent by Node, Apache, and nginx when configured).
 *
 * What the user saw: an order acknowledged in a quiet moment reached Odoo three minutes late, its
 * event marked ambiguous ("no answer from Odoo after the request was sent (ECONNRESET)") and
 * looked up before it was sent again. The gateway had sent it on the connection the server was
 * closing at that very moment (its idle time was over): the request crossed the server's close,
 * the reset came back, and a write that may have landed is held AMBIGUOUS_SETTLE_MS (180 s).
 * Promise broken: DESIGN.md §1 step 4 (the relay posts due events near real time); §7 "keep-alive
 * agent": a kept connection must not turn a plain send into an ambiguous one.
 *
 * Cause: Node's http.Agent reads the server's Keep-Alive hint only to shorten a `timeout` set on
 * the agent (lib/_http_agent.js keepSocketAlive); the transport set none, so an idle connection
 * was kept, and reused, for ever, whatever the server announced.
 *
 * The server below announces 2 s and, like a server whose idle timer fires as the request
 * arrives, drops a connection reused after that without answering: the request is lost, so the
 * client can only call it ambiguous (a server that read it and died looks the same).
 */
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { HttpTransport } from '../../gateway/src/relay/odoo/http-transport.ts';

const ANNOUNCED_S = 2;
const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

/** The JSON-RPC id of a request body (null when it has none), as Odoo reads it. */
function requestId(body: string): unknown {
  try {
    return (JSON.parse(body) as { id?: unknown }).id ?? null;
  } catch {
    return null;
  }
}

/** A minimal HTTP/1.1 server announcing `Keep-Alive: timeout=2`; counts connections and answers. */
async function keepAliveServer(): Promise<{ url: string; connections: () => number; answered: () => number }> {
  let connections = 0;
  let answered = 0;
  const server = net.createServer((socket) => {
    connections++;
    let lastAnswerAt: number | undefined;
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const head = buffered.indexOf('\r\n\r\n');
        if (head < 0) return;
        const length = Number(/content-length:\s*(\d+)/i.exec(buffered.slice(0, head))?.[1] ?? 0);
        if (buffered.length < head + 4 + length) return;
        const request = buffered.slice(head + 4, head + 4 + length);
        buffered = buffered.slice(head + 4 + length);
        if (lastAnswerAt !== undefined && Date.now() - lastAnswerAt >= ANNOUNCED_S * 1000) {
          socket.destroy(); // its idle time was over: closed as the request came in, unanswered
          return;
        }
        // Odoo echoes the request's id (odoo-api.md A.1).
        const body = JSON.stringify({ jsonrpc: '2.0', id: requestId(request), result: true });
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\nkeep-alive: timeout=${ANNOUNCED_S}\r\n\r\n${body}`);
        answered++;
        lastAnswerAt = Date.now();
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  closers.push(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, connections: () => connections, answered: () => answered };
}

it('a write sent after the keep-alive time the server announced goes on a new connection, not on the one the server is closing', async () => {
  const odoo = await keepAliveServer();
  const transport = new HttpTransport({ url: odoo.url, timeoutMs: 3000 });
  closers.push(() => transport.close());
  const write = { jsonrpc: '2.0', method: 'call', params: { service: 'object', method: 'execute_kw', args: ['lab', 2, 'key', 'sale.order', 'load', [['id'], [['lab_gateway.so_1']]]] } };

  expect((await transport.post('/jsonrpc', write, {}, false)).status).toBe(200);
  // A quiet moment in the lab, longer than the server keeps an idle connection.
  await new Promise((r) => setTimeout(r, ANNOUNCED_S * 1000 + 200));
  const next = await transport.post('/jsonrpc', write, {}, false).then(
    (reply) => `answered ${reply.status}`,
    (err: unknown) => `failed: ${err instanceof Error ? err.message : String(err)}`,
  );
  expect(next, 'the second write').toBe('answered 200');
  expect({ connections: odoo.connections(), answered: odoo.answered() }).toEqual({ connections: 2, answered: 2 });
});
