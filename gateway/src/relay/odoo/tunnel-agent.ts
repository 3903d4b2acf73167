import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/**
 * HTTP proxy support without a new dependency: an HTTP `CONNECT` tunnel (RFC 9110 §9.3.6) opened
 * with node:http, then TLS end to end with Odoo inside the tunnel. The proxy sees only the host name
 * and port; certificate verification, the custom CA and the pinned fingerprint still apply to the
 * Odoo certificate because the TLS handshake happens here, not at the proxy.
 *
 * `odoo.proxy` = `http://proxy-host:port`; `proxyAuth` = `user:password` read from
 * `odoo.proxyAuthFile` (→ Proxy-Authorization: Basic). Credentials are never taken from the URL:
 * secrets are not written inline in the configuration (DESIGN.md §5), and `check` refuses them.
 * The same tunnel carries plain-http Odoo URLs (sandbox/test deployments) when a proxy is set.
 */
export function createTunnelAgent(proxyUrl: string, secure: boolean, agentOptions: https.AgentOptions, proxyAuth?: string, connectTimeoutMs = 10_000): http.Agent {
  const proxy = new URL(proxyUrl);
  if (proxy.protocol !== 'http:') throw new Error(`odoo.proxy must be an http:// URL (got ${proxy.protocol})`);
  if (proxy.username || proxy.password) throw new Error('odoo.proxy must not carry credentials: put user:password in the file odoo.proxyAuthFile names');
  const auth = proxyAuth ? `Basic ${Buffer.from(proxyAuth).toString('base64')}` : undefined;
  const agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);

  // Node's Agent accepts an asynchronous createConnection(options, callback) (lib/_http_agent.js
  // createSocket → oncreate); the typings only describe the synchronous form, hence the cast.
  const createConnection = (options: Record<string, unknown>, callback?: (err: Error | null, socket?: Duplex) => void): undefined => {
    const host = String(options['host'] ?? options['hostname']);
    const port = Number(options['port'] ?? (secure ? 443 : 80));
    const done = callback ?? (() => {});
    const req = http.request({
      host: proxy.hostname,
      port: Number(proxy.port || 80),
      method: 'CONNECT',
      path: `${host}:${port}`,
      agent: false,
      headers: { host: `${host}:${port}`, ...(auth ? { 'proxy-authorization': auth } : {}) },
    });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        done(Object.assign(new Error(connectRefused(res.statusCode, `${host}:${port}`, auth !== undefined, res.headers['proxy-authenticate'])), { code: 'EPROXY' }));
        return;
      }
      if (!secure) {
        done(null, socket);
        return;
      }
      done(null, tls.connect({ ...(options as tls.ConnectionOptions), socket, servername: String(options['servername'] ?? host) }));
    });
    // A proxy that takes the connection and never answers the CONNECT: the request's own time
    // limit does not reach this request (the agent has no socket to give it yet), so the tunnel
    // request stayed open for good, one more socket to the proxy at every retry. It is given up
    // after the same time as a connection to Odoo (http-transport.ts `connect`), with its words.
    req.setTimeout(connectTimeoutMs, () => {
      req.destroy(Object.assign(new Error(`the proxy (odoo.proxy) did not answer CONNECT ${host}:${port} within ${Math.round(connectTimeoutMs / 100) / 10} s`), { code: 'ETIMEDOUT' }));
    });
    req.once('error', (err) => done(err));
    req.end();
    return undefined;
  };
  (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
  return agent;
}

/**
 * The proxy's refusal of the tunnel, in words IT can act on. A 407 is the proxy asking for
 * credentials: none configured (odoo.proxyAuthFile), or those it holds refused, or a scheme other
 * than Basic asked for (Negotiate, NTLM: the gateway sends only Basic). Before, every refusal read
 * "proxy refused CONNECT host:443 (HTTP 407)", which named neither the setting nor the scheme
 * (test/integration/relay-proxy-connect-audit.test.ts).
 */
function connectRefused(status: number | undefined, target: string, sentAuth: boolean, challenge: string | string[] | undefined): string {
  const head = `the proxy (odoo.proxy) refused CONNECT ${target} (HTTP ${status ?? '?'})`;
  if (status !== 407) return head;
  const asked = challengeSchemes(challenge);
  const basic = asked.length === 0 || asked.some((c) => /^basic$/i.test(c));
  if (!basic) return `${head}: it asks for ${asked.join(', ')} credentials; the gateway sends only Basic (odoo.proxyAuthFile): the proxy must accept Basic or let the gateway's address through`;
  if (!sentAuth) return `${head}: it asks for credentials; put user:password in the file odoo.proxyAuthFile names`;
  return `${head}: it refused the credentials of odoo.proxyAuthFile`;
}

/**
 * The schemes a Proxy-Authenticate asks for. Node joins a proxy's several challenges into one
 * header ("Negotiate, Basic realm=\"x\"", RFC 9110 §11.6.1): a scheme is a token at the start or
 * after a comma that is not an auth-param (`name=value`). Read as the first word only, a Kerberos
 * proxy with a Basic fallback read as "asks for Negotiate", and IT was sent after the scheme when
 * the file's credentials were refused (test/integration/relay-proxy-connect-audit.test.ts).
 */
function challengeSchemes(challenge: string | string[] | undefined): string[] {
  const schemes: string[] = [];
  // Quoted values (a realm may hold a comma) are emptied first.
  const joined = (typeof challenge === 'string' ? [challenge] : challenge ?? []).join(',').replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const part of joined.split(',')) {
    const m = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?=\s|$)(?!\s*=)/.exec(part);
    if (m && !schemes.some((s) => s.toLowerCase() === m[1]!.toLowerCase())) schemes.push(m[1]!);
  }
  return schemes;
}
