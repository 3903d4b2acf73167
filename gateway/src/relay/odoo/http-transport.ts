import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls, { type PeerCertificate } from 'node:tls';
import got, { RequestError, TimeoutError, type Got } from 'got';
import { odooError } from './odoo-error.ts';
import { createTunnelAgent } from './tunnel-agent.ts';

export interface HttpTransportOptions {
  /** Base URL of the Odoo server (https://lab.example.com). */
  url: string;
  timeoutMs: number;
  /** PEM bundle of extra trusted CAs (private deployments). Verification stays on. */
  caFile?: string;
  /** SHA-256 fingerprint of the server's leaf certificate, hex, colons optional. */
  pinnedCertSha256?: string;
  /** http://host:port — CONNECT tunnel (see tunnel-agent.ts). */
  proxy?: string;
  /** The proxy's `user:password` (from odoo.proxyAuthFile), sent as Proxy-Authorization: Basic. */
  proxyAuth?: string;
  /** Sockets kept open per host (one Odoo worker handles one request at a time). */
  maxSockets?: number;
}

export interface HttpReply {
  status: number;
  contentType: string;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** The size of the request's body as sent (bytes): what a proxy refusing it as too large measured. */
  requestBytes: number;
}

/**
 * How long a kept-alive connection to Odoo may stay idle before the gateway closes it (ms), and
 * 1 s less than the keep-alive time the server announces (`Keep-Alive: timeout=N`) when that is
 * shorter: Node's agent applies the server's hint only to shorten this (lib/_http_agent.js
 * keepSocketAlive). Without it a connection was kept for ever, and a write sent after a pause as
 * long as the server's keep-alive time went out on the connection the server was closing: reset,
 * unanswered, so ambiguous and held AMBIGUOUS_SETTLE_MS (test/integration/relay-keepalive-reuse
 * .test.ts). 60 s is below nginx's default keepalive_timeout (75 s), which it does not announce.
 * On a connection in use the same socket timeout only emits `timeout`, which nothing acts on:
 * the request's own limit is `timeoutMs`.
 */
const IDLE_SOCKET_MS = 60_000;

export function normaliseFingerprint(fp: string): string {
  return fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
}

/**
 * The only place that touches the network. `got` with a keep-alive agent; HTTPS verification on
 * (never `rejectUnauthorized: false`); NO automatic retry (`retry.limit 0`): a POST that may have
 * committed must not be resent blindly — the store owns retries and the relay looks up first.
 */
export class HttpTransport {
  readonly #got: Got;
  readonly #agents: { http: http.Agent; https: https.Agent };
  readonly baseUrl: string;

  constructor(options: HttpTransportOptions) {
    this.baseUrl = options.url.replace(/\/+$/, '');
    const secure = this.baseUrl.startsWith('https:');
    // `timeout`: an idle kept connection is closed before the server closes it (IDLE_SOCKET_MS).
    const agentOptions: https.AgentOptions = { keepAlive: true, keepAliveMsecs: 15_000, timeout: IDLE_SOCKET_MS, maxSockets: options.maxSockets ?? 16, maxFreeSockets: options.maxSockets ?? 16, scheduling: 'lifo' };
    const pin = options.pinnedCertSha256 ? normaliseFingerprint(options.pinnedCertSha256) : undefined;
    const ca = options.caFile ? readFileSync(options.caFile) : undefined;
    const checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined => {
      const err = tls.checkServerIdentity(host, cert);
      if (err) return err;
      if (pin && normaliseFingerprint(cert.fingerprint256 ?? '') !== pin) {
        return Object.assign(new Error(`Odoo certificate fingerprint ${cert.fingerprint256} does not match odoo.pinnedCertSha256`), { code: 'ERR_CERT_PIN_MISMATCH' });
      }
      return undefined;
    };
    if (options.proxy) {
      const tunnel = createTunnelAgent(options.proxy, secure, agentOptions, options.proxyAuth, Math.min(options.timeoutMs, 10_000));
      this.#agents = secure ? { http: new http.Agent(agentOptions), https: tunnel as https.Agent } : { http: tunnel, https: new https.Agent(agentOptions) };
    } else {
      this.#agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
    }
    this.#got = got.extend({
      agent: this.#agents,
      https: { rejectUnauthorized: true, checkServerIdentity, ...(ca ? { certificateAuthority: [...tls.rootCertificates, ca.toString('utf8')] } : {}) },
      retry: { limit: 0 },
      timeout: { request: options.timeoutMs, connect: Math.min(options.timeoutMs, 10_000) },
      throwHttpErrors: false,
      followRedirect: false,
      decompress: true,
      responseType: 'text',
      headers: { 'user-agent': 'lab-gateway/0.1 (+odoo-relay)' },
    });
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<HttpReply> {
    return this.#send('GET', path, undefined, headers, true);
  }

  /** `idempotent`: a lost answer cannot have changed anything (reads), so it is transient. */
  async post(path: string, body: unknown, headers: Record<string, string>, idempotent: boolean): Promise<HttpReply> {
    return this.#send('POST', path, JSON.stringify(body), { 'content-type': 'application/json', accept: 'application/json', ...headers }, idempotent);
  }

  async #send(method: 'GET' | 'POST', path: string, body: string | undefined, headers: Record<string, string>, idempotent: boolean): Promise<HttpReply> {
    try {
      const res = await this.#got(`${this.baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
      return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), body: res.body, headers: res.headers, requestBytes: body === undefined ? 0 : Buffer.byteLength(body) };
    } catch (err) {
      throw networkError(err, idempotent);
    }
  }

  /**
   * At least `n` sockets per host (never fewer than configured): the relay keeps relay.concurrency
   * requests in flight, and a request queued for a socket has its timeout running already.
   */
  ensureSockets(n: number): void {
    for (const agent of [this.#agents.http, this.#agents.https]) {
      if (agent.maxSockets >= n) continue;
      agent.maxSockets = n;
      agent.maxFreeSockets = n;
    }
  }

  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}

/**
 * Timeouts before the request went out are transient; after, ambiguous (the write may have landed).
 * "Out" is the whole body handed to the socket (`timings.upload`, the request's `finish`): a request
 * whose time ran out while it waited for a free socket, or half-written, cannot have run in Odoo
 * (the server waits for the whole body).
 *
 * Any other failure after the whole request went out is ambiguous too, whatever its code: the
 * connection reset or closed (ECONNRESET, EPIPE), and also an answer that started and broke — a
 * body shorter than its Content-Length (ERR_HTTP_CONTENT_LENGTH_MISMATCH: a proxy restarted, a TLS
 * session or the Wi-Fi cut mid-answer), a response that does not parse (HPE_*), a compressed body
 * that does not inflate. An answer that started means Odoo ran the call. Before, only four reset
 * codes counted; the others read as "Odoo unreachable", the event was released unchanged (not
 * ambiguous), and a new RFQ whose answer was cut was loaded again onto the order the buyer had
 * confirmed meanwhile (test/integration/relay-answer-cut-audit.test.ts).
 */
const BEFORE_SEND_EVENTS = new Set(['lookup', 'connect', 'secureConnect', 'socket']);

export function networkError(err: unknown, idempotent: boolean): Error {
  const code = (err as NodeJS.ErrnoException).code ?? 'ERR_NETWORK';
  const message = err instanceof Error ? err.message : String(err);
  let sent = false;
  if (err instanceof TimeoutError) sent = !BEFORE_SEND_EVENTS.has(err.event) && (err.timings === undefined || err.timings.upload !== undefined);
  else if (err instanceof RequestError) sent = err.timings?.upload !== undefined;
  const tlsProblem = /CERT|SELF_SIGNED|TLS|SSL|PIN/.test(code);
  if (sent) {
    const what = afterSending(err, code, message);
    if (!idempotent) return odooError('ambiguous', `${what}: it may have been applied`, { odooName: code }, err);
    return odooError('transient', what, { odooName: code, linkDown: true }, err);
  }
  return odooError('transient', tlsProblem ? `TLS verification of the Odoo server failed (${code}): ${message}` : `Odoo unreachable (${code}): ${message}`, { odooName: code, linkDown: true }, err);
}

/**
 * What happened to a request sent whole, in the words IT reads in the event and the link's last
 * error. An answer had started (its status line and headers read) and broke, or was too slow to
 * finish; or none came: the connection closed, the time ran out, or what came back was not HTTP.
 * Before, all of these said "no answer from Odoo", also of an answer Odoo had started to send,
 * which sent IT looking for an Odoo that did not answer when it had run the call
 * (test/integration/relay-answer-words-audit.test.ts).
 */
function afterSending(err: unknown, code: string, message: string): string {
  const req = err instanceof RequestError ? err : undefined;
  const started = req !== undefined && (req.timings?.response !== undefined || req.response !== undefined);
  const status = req?.response?.statusCode;
  if (started) {
    const answer = `Odoo's answer${status ? ` (HTTP ${status})` : ''}`;
    if (err instanceof TimeoutError) return `${answer} started after the request was sent but did not arrive whole within odoo.timeoutMs (${code})`;
    return `${answer} started after the request was sent and was cut off or broken on its way (${code}: ${message})`;
  }
  if (err instanceof TimeoutError) return `no answer from Odoo within odoo.timeoutMs after the request was sent (${code})`;
  if (/^HPE_/.test(code)) return `an answer that is not HTTP came back after the request was sent (${code}: ${message})`;
  return `the connection closed after the request was sent, before any answer (${code}: ${message})`;
}
