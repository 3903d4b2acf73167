import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpTransport } from '../../gateway/src/relay/odoo/http-transport.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';

/**
 * Audit of the words a request sent whole and never answered in full gets. IT reads them in the
 * event's reason and the link's last error ("Odoo: …" on the status page). Before, every case said
 * "no answer from Odoo after the request was sent", also when Odoo had answered (status line and
 * headers read) and the answer was cut on its way: IT looked for an Odoo that did not answer,
 * when Odoo had run the call and its answer was lost between it and the lab (a proxy restarted, the
 * Wi-Fi cut). Each case now says what happened; the classes are unchanged (ambiguous for a write,
 * the link down for a read: test/integration/relay-answer-cut-audit.test.ts).
 */

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A server that reads each whole request and then does `behave` with the socket. */
async function server(behave: (s: net.Socket) => void): Promise<string> {
  const srv = net.createServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      const len = /content-length:\s*(\d+)/i.exec(buf);
      if (end >= 0 && len && buf.length - end - 4 >= Number(len[1])) {
        buf = '';
        behave(sock);
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    srv.close();
  });
  const sockets = new Set<net.Socket>();
  srv.on('connection', (s) => sockets.add(s));
  closers.push(() => {
    for (const s of sockets) s.destroy();
  });
  return `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
}

const CASES: Array<[string, (s: net.Socket) => void, RegExp]> = [
  [
    'a body shorter than its Content-Length',
    (s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc": "2.0", "id"'),
    /^Odoo's answer \(HTTP 200\) started after the request was sent and was cut off or broken on its way \(ERR_HTTP_CONTENT_LENGTH_MISMATCH/,
  ],
  [
    'a chunked body with a bad chunk size',
    (s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{"jso\r\n0\r\n\r\n'),
    /^Odoo's answer \(HTTP 200\) started after the request was sent and was cut off or broken on its way \(HPE_/,
  ],
  [
    'a gzip body that does not inflate',
    (s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello'),
    /^Odoo's answer \(HTTP 200\) started after the request was sent and was cut off or broken on its way/,
  ],
  [
    'headers, then the body stalls past the time limit',
    (s) => s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"'),
    /^Odoo's answer \(HTTP 200\) started after the request was sent but did not arrive whole within odoo\.timeoutMs \(ETIMEDOUT\)/,
  ],
  ['a status line that is not HTTP', (s) => s.end('\x15\x03\x03\x00\x02\x02\x14 not http\r\n\r\n'), /^an answer that is not HTTP came back after the request was sent \(HPE_/],
  ['the connection closed without a byte', (s) => s.destroy(), /^the connection closed after the request was sent, before any answer \(ECONNRESET/],
  ['nothing at all before the time limit', () => undefined, /^no answer from Odoo within odoo\.timeoutMs after the request was sent \(ETIMEDOUT\)/],
];

describe('a request sent whole whose answer never came whole', () => {
  for (const [what, behave, words] of CASES) {
    it(`${what}: says so`, async () => {
      const url = await server(behave);
      const transport = new HttpTransport({ url, timeoutMs: 800 });
      closers.unshift(() => transport.close());
      const write = await transport.post('/jsonrpc', { params: { method: 'execute_kw' } }, {}, false).then(() => undefined, (e: unknown) => e);
      expect(failureOf(write)).toBe('ambiguous');
      expect((write as Error).message).toMatch(words);
      expect((write as Error).message).toMatch(/: it may have been applied$/);
      const read = await transport.post('/jsonrpc', { params: { method: 'execute_kw' } }, {}, true).then(() => undefined, (e: unknown) => e);
      expect(failureOf(read)).toBe('transient');
      expect(isLinkDown(read)).toBe(true);
      expect((read as Error).message).toMatch(words);
    });
  }
});
