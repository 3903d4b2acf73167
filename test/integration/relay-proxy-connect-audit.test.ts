import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpTransport } from '../../gateway/src/relay/odoo/http-transport.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Audit of the words a forward proxy's refusal of the CONNECT tunnel gets (odoo.proxy). IT reads
 * them as the link's last error: a 407 is the proxy asking for credentials, and what to do differs
 * when none are configured, when those of odoo.proxyAuthFile are refused, and when the proxy asks
 * for a scheme the gateway does not speak. Before, all read "proxy refused CONNECT host:443
 * (HTTP 407)".
 */

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A proxy answering every CONNECT with `status` and `challenge` (Proxy-Authenticate, one header line each). */
async function refusingProxy(status: number, challenge?: string | string[]): Promise<string> {
  const proxy = http.createServer((_req, res) => {
    res.statusCode = 405;
    res.end();
  });
  proxy.on('connect', (_req, client) => {
    const challenges = (typeof challenge === 'string' ? [challenge] : challenge ?? []).map((c) => `Proxy-Authenticate: ${c}\r\n`).join('');
    client.end(`HTTP/1.1 ${status} Refused\r\n${challenges}Content-Length: 0\r\n\r\n`);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  closers.push(() => {
    proxy.closeAllConnections();
    proxy.close();
  });
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

async function refusal(proxy: string, proxyAuth?: string, timeoutMs = 5000): Promise<Error> {
  const t = new HttpTransport({ url: 'https://odoo.lab.example:8443', timeoutMs, proxy, ...(proxyAuth ? { proxyAuth } : {}) });
  closers.unshift(() => t.close());
  const err = await t.post('/jsonrpc', {}, {}, false).then(() => undefined, (e: unknown) => e);
  expect(failureOf(err)).toBe('transient');
  expect(isLinkDown(err)).toBe(true);
  return err as Error;
}

describe("a forward proxy's refusal of the tunnel", () => {
  it('407 without credentials configured: names odoo.proxyAuthFile', async () => {
    const err = await refusal(await refusingProxy(407, 'Basic realm="hospital"'));
    expect(err.message).toMatch(/refused CONNECT odoo\.lab\.example:8443 \(HTTP 407\): it asks for credentials; put user:password in the file odoo\.proxyAuthFile names/);
  });

  it('407 with credentials sent: they were refused', async () => {
    const err = await refusal(await refusingProxy(407, 'Basic realm="hospital"'), 'lab:wrong');
    expect(err.message).toMatch(/\(HTTP 407\): it refused the credentials of odoo\.proxyAuthFile/);
  });

  it('407 asking for Negotiate or NTLM: the gateway sends only Basic', async () => {
    const err = await refusal(await refusingProxy(407, 'Negotiate'), 'lab:secret');
    expect(err.message).toMatch(/\(HTTP 407\): it asks for Negotiate credentials; the gateway sends only Basic/);
  });

  it('407 offering Negotiate and Basic (two challenges, one header to the gateway): the credentials, not the scheme', async () => {
    // A Kerberos proxy with a Basic fallback, the usual hospital set-up. Node joins the two
    // headers ("Negotiate, Basic realm=…"): before, only the first scheme was read, and IT was
    // told the proxy wants Negotiate when it takes Basic and refused the file's credentials.
    const offered = ['Negotiate', 'Basic realm="hospital, main site"'];
    const refused = await refusal(await refusingProxy(407, offered), 'lab:wrong');
    expect(refused.message).toMatch(/\(HTTP 407\): it refused the credentials of odoo\.proxyAuthFile$/);
    const none = await refusal(await refusingProxy(407, offered));
    expect(none.message).toMatch(/\(HTTP 407\): it asks for credentials; put user:password in the file odoo\.proxyAuthFile names$/);
    const other = await refusal(await refusingProxy(407, ['Negotiate', 'NTLM', 'Digest realm="hospital, main site", nonce="n1"']), 'lab:secret');
    expect(other.message).toMatch(/\(HTTP 407\): it asks for Negotiate, NTLM, Digest credentials; the gateway sends only Basic/);
  });

  it('403: the refusal and its status', async () => {
    const err = await refusal(await refusingProxy(403));
    expect(err.message).toMatch(/the proxy \(odoo\.proxy\) refused CONNECT odoo\.lab\.example:8443 \(HTTP 403\)$/);
  });
});

describe('a forward proxy that never answers the CONNECT', () => {
  it('is given up with its words, and its connection closed (not one more open socket at each retry)', async () => {
    let open = 0;
    const proxy = http.createServer();
    proxy.on('connect', (_req, client) => {
      open++;
      // The gateway closing its side (the proxy's server keeps half-open sockets: 'end', not 'close').
      client.once('end', () => open--);
      client.on('error', () => undefined);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    closers.push(() => {
      proxy.closeAllConnections();
      proxy.close();
    });
    const err = await refusal(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, undefined, 600);
    // Before: "Timeout awaiting 'request'" at the request's limit, and the tunnel request stayed open.
    expect(err.message).toMatch(/the proxy \(odoo\.proxy\) did not answer CONNECT odoo\.lab\.example:8443 within 0\.6 s/);
    await waitFor(() => open === 0);
  });
});
