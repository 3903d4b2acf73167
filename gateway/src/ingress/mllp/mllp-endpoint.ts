import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { certificateValidity, expiryProblem, pemOf as pem } from '../../config/certificates.ts';
import type { Hl7EndpointConfig } from '../../config/types.ts';
import { GatewayError, describeError } from '../../errors.ts';
import type { Hl7Normalizer } from '../../hl7/normalizer.ts';
import type { Component, ComponentStatus } from '../../lifecycle.ts';
import type { Logger } from '../../log.ts';
import type { GatewayStore } from '../../store/types.ts';
import type { EndpointState, Telemetry, TelemetryEvents } from '../../telemetry.ts';
import { Hl7Intake, type FrameResult, type Hl7IntakeOptions } from './hl7-intake.ts';
import { MllpConnection, NOISE_WARN_INTERVAL_MS } from './mllp-connection.ts';

/**
 * An HL7 v2 MLLP listener (our own code on node:net / node:tls; DESIGN.md §7 explains why not
 * node-hl7-server). Binds only `config.listen.host`; persistent connections; pipelined messages
 * answered in order; ACK only after the store's durable commit (hl7-intake.ts).
 */
export interface MllpEndpointOptions {
  config: Hl7EndpointConfig;
  store: GatewayStore;
  telemetry: Telemetry;
  log: Logger;
  /** Default: the LIS normalizer. HL7 analyzers (Mindray BS) get their own. */
  normalize?: Hl7Normalizer;
  /** Host queries (QRY^Q02) of an HL7 analyzer whose profile describes them (Hl7IntakeOptions). */
  answerQuery?: Hl7IntakeOptions['answerQuery'];
  /** HL7 analyzers: events resolved before the commit (Hl7IntakeOptions). Never on the LIS. */
  resolveEvents?: Hl7IntakeOptions['resolveEvents'];
  /** TLS only: a handshake not finished after this long (ms) is cut. Default TLS_HANDSHAKE_TIMEOUT_MS. */
  tlsHandshakeTimeoutMs?: number;
  /**
   * How long a peer may leave the gateway's replies unacknowledged by its TCP stack before its
   * connection is closed (ms). Default PEER_ACK_MS (mllp-connection.ts); tests shorten it.
   */
  peerAckMs?: number;
  /**
   * The listener's key in the configuration, as `lab-gateway check` names it: `hl7[<index>].listen`,
   * or `analyzers[<index>].tcp.listen` for an analyzer that speaks HL7. Without it,
   * `hl7[<id>].listen`.
   */
  listenKey?: string;
}

/**
 * How long a TLS client may take to finish its handshake (ms). Node's default is two minutes, and
 * a socket in its handshake holds a connection slot: a LAN peer needs milliseconds, so a few
 * seconds leave room for a slow embedded LIS box and free the slot of a peer that speaks plain
 * TCP (or nothing) to the TLS port.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;

export class MllpEndpoint implements Component {
  readonly name: string;
  readonly #config: Hl7EndpointConfig;
  /** The listener's key in the configuration, for a port that cannot be had (MllpEndpointOptions.listenKey). */
  readonly #listenKey: string;
  readonly #telemetry: Telemetry;
  readonly #log: Logger;
  readonly #intake: Hl7Intake;
  readonly #connections = new Set<MllpConnection>();
  /**
   * TLS: the TCP sockets whose handshake has not finished, by remote address:port (the TLS socket
   * handed to #accept has the same). They are no MllpConnection yet, but they hold a slot of
   * maxConnections (the listener counts every socket) and stop() destroys them at once.
   */
  readonly #handshaking = new Map<string, net.Socket>();
  /**
   * TLS: the remote address:port of each TCP socket, taken when it arrives. A peer that gives up on
   * the handshake (it refused our certificate) resets the connection, and Node clears a closed
   * socket's address: the refusal is logged with the address kept here.
   */
  readonly #remotes = new WeakMap<net.Socket, string>();
  /** Work of connections that closed while frames were still being committed: stop() waits for it. */
  readonly #closedWork = new Set<Promise<void>>();
  readonly #tlsHandshakeTimeoutMs: number;
  readonly #peerAckMs: number | undefined;
  #server: net.Server | undefined;
  #status: ComponentStatus = 'created';
  /** Epoch ms of the last answered frame (formatted when read). */
  #lastMessageMs: number | undefined;
  #stopping: Promise<void> | undefined;
  /** TLS: when the certificate loaded at start expires (epoch ms), and what to say once it has. */
  #certExpiry: { validTo: number; expired: string } | undefined;
  #certTimer: NodeJS.Timeout | undefined;
  #certExpiredLogged = false;
  /** When a warning about noise outside frames was last logged (performance.now()), for its rate limit. */
  #noiseWarnedAt = Number.NEGATIVE_INFINITY;

  constructor(options: MllpEndpointOptions) {
    this.#config = options.config;
    this.#listenKey = options.listenKey ?? `hl7[${options.config.id}].listen`;
    this.#telemetry = options.telemetry;
    this.#log = options.log.child({ endpoint: options.config.id, kind: 'hl7' });
    this.name = `hl7:${options.config.id}`;
    this.#tlsHandshakeTimeoutMs = options.tlsHandshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
    this.#peerAckMs = options.peerAckMs;
    this.#intake = new Hl7Intake({
      config: options.config,
      store: options.store,
      log: this.#log,
      ...(options.normalize ? { normalize: options.normalize } : {}),
      ...(options.answerQuery ? { answerQuery: options.answerQuery } : {}),
      ...(options.resolveEvents ? { resolveEvents: options.resolveEvents } : {}),
    });
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  get connections(): number {
    return this.#connections.size;
  }

  get lastMessageAt(): string | undefined {
    return this.#lastMessageMs === undefined ? undefined : new Date(this.#lastMessageMs).toISOString();
  }

  /** The bound address (useful with port 0), once started. */
  address(): { host: string; port: number } | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  async start(): Promise<void> {
    if (this.#status !== 'created') return;
    this.#status = 'starting';
    this.#emitState('starting');
    const { listen, tls: tlsConfig } = this.#config;
    let server: net.Server;
    try {
      if (tlsConfig) {
        const requireClientCert = tlsConfig.requireClientCert;
        const cert = pem(tlsConfig.cert);
        const validity = certificateValidity({ key: `hl7[${this.#config.id}].tls.cert`, file: cert.toString('latin1') }, 0);
        if (validity) this.#certExpiry = { validTo: validity.validTo.getTime(), expired: expiryProblem({ ...validity, expired: true }) ?? 'certificate has expired' };
        server = tls.createServer(
          {
            cert,
            key: pem(tlsConfig.key),
            ...(tlsConfig.ca ? { ca: pem(tlsConfig.ca) } : {}),
            // Mutual TLS: ask for a certificate and refuse the handshake without a valid one.
            requestCert: requireClientCert,
            rejectUnauthorized: requireClientCert,
            handshakeTimeout: this.#tlsHandshakeTimeoutMs,
          },
          (socket) => this.#accept(socket),
        );
        // Every TCP socket starts as a handshake in progress; #accept takes it over once secure.
        server.on('connection', (raw: net.Socket) => this.#handshakeStarted(raw));
        server.on('tlsClientError', (err, socket) => {
          this.#log.warn('TLS handshake refused', { remote: this.#remoteOf(socket), error: describeError(err) });
          // Node leaves the socket open after a handshake timeout (or any handshake error) once
          // this event has a listener: closed here, its slot is free.
          socket.destroy();
        });
      } else {
        server = net.createServer((socket) => this.#accept(socket));
      }
    } catch (err) {
      this.#status = 'failed';
      this.#emitState('error', describeError(err));
      throw new GatewayError('GW_CONFIG_INVALID', `hl7[${this.#config.id}].tls: ${describeError(err)}`, { cause: err });
    }
    this.#server = server;
    // The limit counts every socket, TLS handshakes in progress included; beyond it the listener
    // closes the new socket at once ('drop').
    server.maxConnections = this.#config.maxConnections;
    server.on('drop', (data) => {
      this.#log.warn('connection refused: limit reached', { remote: `${data?.remoteAddress}:${data?.remotePort}`, maxConnections: this.#config.maxConnections });
    });
    server.on('error', (err) => {
      this.#log.error('listener error', { error: describeError(err) });
      this.#emitState('error', describeError(err));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listen.host, port: listen.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.#status = 'failed';
      this.#emitState('error', describeError(err));
      throw new GatewayError('GW_CONFIG_INVALID', `${this.#listenKey} cannot listen on ${listen.host}:${listen.port}: ${describeError(err)}`, { cause: err });
    }
    this.#status = 'running';
    const addr = this.address();
    this.#log.info('listening', { host: addr?.host, port: addr?.port, tls: Boolean(tlsConfig) });
    this.#emitIdle();
    if (this.#certExpiry) {
      // Looked at daily: the day it expires, the link shows `error` (every TLS peer refuses it).
      this.#certTimer = setInterval(() => {
        if (this.#status === 'running' && this.#connections.size === 0) this.#emitIdle();
      }, 86_400_000);
      this.#certTimer.unref();
    }
  }

  /**
   * The state of a listener with no connection: `listening`, or `error` once the certificate it
   * serves has expired (LIS peers refuse every handshake: the link is down though it listens).
   */
  #emitIdle(detail?: string): void {
    const c = this.#certExpiry;
    if (c && c.validTo <= Date.now()) {
      if (!this.#certExpiredLogged) this.#log.error('TLS certificate expired: every peer that checks it refuses the connection', { detail: c.expired });
      this.#certExpiredLogged = true;
      this.#emitState('error', c.expired);
    } else this.#emitState('listening', detail);
  }

  #handshakeStarted(raw: net.Socket): void {
    const key = `${raw.remoteAddress}:${raw.remotePort}`;
    this.#remotes.set(raw, key);
    if (this.#status !== 'running') {
      raw.destroy();
      return;
    }
    this.#handshaking.set(key, raw);
    raw.once('close', () => {
      if (this.#handshaking.get(key) === raw) this.#handshaking.delete(key);
    });
  }

  /**
   * The address:port of a TLS socket whose handshake failed: the one recorded when its TCP
   * connection arrived (Node's TLS server wraps that socket and names it `_parent`, not a public
   * field), else what the socket still knows.
   */
  #remoteOf(socket: tls.TLSSocket): string {
    const raw = (socket as tls.TLSSocket & { _parent?: unknown })._parent;
    const known = raw instanceof net.Socket ? this.#remotes.get(raw) : undefined;
    return known ?? `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? '?'}`;
  }

  #accept(socket: net.Socket): void {
    if (this.#handshaking.size > 0) this.#handshaking.delete(`${socket.remoteAddress}:${socket.remotePort}`);
    if (this.#status !== 'running') {
      socket.destroy();
      return;
    }
    if (this.#connections.size >= this.#config.maxConnections) {
      this.#log.warn('connection refused: limit reached', { remote: `${socket.remoteAddress}:${socket.remotePort}`, maxConnections: this.#config.maxConnections });
      socket.destroy();
      return;
    }
    const conn: MllpConnection = new MllpConnection({
      socket,
      intake: this.#intake,
      maxFrameBytes: this.#config.maxMessageBytes,
      idleTimeoutMs: this.#config.idleTimeoutMs,
      ...(this.#config.frameTimeoutMs !== undefined ? { frameTimeoutMs: this.#config.frameTimeoutMs } : {}),
      log: this.#log,
      ...(this.#peerAckMs !== undefined ? { peerAckMs: this.#peerAckMs } : {}),
      ...(this.#config.analyzer !== undefined ? { peerName: 'the analyzer' } : {}),
      mayWarnNoise: () => {
        const now = performance.now();
        if (now - this.#noiseWarnedAt < NOISE_WARN_INTERVAL_MS) return false;
        this.#noiseWarnedAt = now;
        return true;
      },
      onAnswered: (result, info) => this.#answered(result, info),
      onIgnoredBytes: (count) => this.#telemetry.emit('endpoint.ignored-bytes', { endpoint: this.#config.id, count }),
      onClose: (detail) => {
        this.#connections.delete(conn);
        // Frames still in their commit (a frame cut by a reset is kept too): stop() waits for them.
        if (conn.inFlight > 0) {
          const work = conn.drained();
          this.#closedWork.add(work);
          void work.then(() => this.#closedWork.delete(work));
        }
        this.#log.debug('connection closed', { remote: conn.remoteAddress });
        if (this.#status === 'running') {
          // A connection the gateway closed for its peer's sake says why (its peer vanished).
          const why = detail !== undefined ? `connection closed: ${detail}` : undefined;
          if (this.#connections.size > 0) this.#emitState('connected', why);
          else this.#emitIdle(why);
        }
      },
    });
    this.#connections.add(conn);
    this.#log.debug('connection accepted', { remote: conn.remoteAddress });
    this.#emitState('connected');
  }

  #answered(result: FrameResult, info: { latencyMs: number; bytes: number }): void {
    this.#lastMessageMs = Date.now();
    for (const r of result.results) {
      const payload: TelemetryEvents['intake.message'] = { endpoint: this.#config.id, kind: 'hl7', outcome: r.outcome, ackLatencyMs: info.latencyMs, bytes: info.bytes };
      if (r.messageType) payload.messageType = r.messageType;
      if (r.reason) payload.reason = r.reason;
      this.#telemetry.emit('intake.message', payload);
      if (r.outcome === 'rejected') this.#log.info('message rejected', { controlId: r.controlId, messageType: r.messageType, reason: r.reason, ack: r.ackCode });
    }
  }

  #emitState(state: EndpointState, detail?: string): void {
    this.#telemetry.emit('endpoint.state', {
      endpoint: this.#config.id,
      kind: 'hl7',
      state,
      connections: this.#connections.size,
      ...(detail ? { detail } : {}),
    });
  }

  /**
   * Stop accepting, answer every frame already received (their commits finish and their ACKs are
   * written), close the sockets; whatever is still open at the deadline is destroyed.
   */
  stop(deadlineMs = 5_000): Promise<void> {
    this.#stopping ??= this.#stop(deadlineMs);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<void> {
    if (this.#status === 'created') {
      this.#status = 'stopped';
      return;
    }
    this.#status = 'stopping';
    clearInterval(this.#certTimer);
    const server = this.#server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    // A handshake in progress has sent no frame: nothing to answer or keep.
    for (const raw of this.#handshaking.values()) raw.destroy();
    this.#handshaking.clear();
    const conns = [...this.#connections];
    for (const c of conns) c.stopReading();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
      timer.unref();
    });
    const graceful = (async () => {
      await Promise.all(conns.map(async (c) => {
        await c.drained();
        await c.end();
      }));
      await Promise.all([...this.#closedWork]);
      await closed;
    })();
    const outcome = await Promise.race([graceful.then(() => 'done' as const), deadline]);
    if (timer) clearTimeout(timer);
    if (outcome === 'deadline') {
      this.#log.warn('stop deadline reached; closing remaining connections', { open: this.#connections.size });
      for (const c of this.#connections) c.destroy();
      await closed;
    }
    this.#status = 'stopped';
    this.#emitState('stopped');
    this.#log.info('stopped');
  }
}
