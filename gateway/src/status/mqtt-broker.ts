import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Aedes, type Client } from 'aedes';
import type { MqttConfig } from '../config/types.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { GatewayError } from '../errors.ts';
import { publisherClientId, TOPIC_ROOT } from './mqtt-topics.ts';
import { limitedConnection, MAX_SUBSCRIBER_PACKET_BYTES, type MqttPacketLimit } from './mqtt-packet-limit.ts';
import { EMBEDDED_BROKER_DEFAULTS } from '../config/defaults.ts';

/**
 * What aedes is handed for each connection: the socket behind a packet size limit. `socket` is
 * the TCP (or TLS) socket under it, counted against `mqtt.maxConnections` until it closes.
 */
type BrokerConnection = Duplex & { internalOnly?: boolean; packetLimit?: MqttPacketLimit; socket?: net.Socket };

/**
 * The part of aedes' session store (aedes-persistence, in memory) the session expiry uses, in
 * their promise forms (a call without a callback). aedes' types leave `persistence` out.
 */
interface SessionStore {
  outgoingStream(client: { id: string }): AsyncIterable<{ messageId?: number }>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<unknown>;
  cleanSubscriptions(client: { id: string }): Promise<unknown>;
  cleanIncoming?: (client: { id: string }) => Promise<unknown>;
}

/**
 * The embedded MQTT broker (aedes) for `mqtt.broker: embedded`.
 *
 * - Bound to `mqtt.listen` (127.0.0.1 by default). Anonymous access is allowed only on a loopback
 *   address; bound anywhere else the broker refuses to start unless `mqtt.usernameFile` and
 *   `mqtt.passwordFile` are set (a GW_CONFIG_INVALID error naming the key).
 * - TLS (`mqtt.tls.cert/key[/ca]`) makes it an MQTTS listener; with `ca` clients must present a
 *   certificate signed by it.
 * - Only the gateway's own publisher may publish: it authenticates with a per-process secret that
 *   never leaves the process. Subscribers are read-only (MQTT-3.3.5-2 allows the server to refuse
 *   a PUBLISH it does not authorize; aedes then drops it).
 * - A client's packet is read only if it announces at most `MAX_SUBSCRIBER_PACKET_BYTES` (64 KiB;
 *   mqtt-packet-limit.ts), else the connection is closed before its body is read: aedes has no
 *   limit and kept a 200 MB CONNECT whole in memory before authenticating it. The gateway's own
 *   publisher, once authenticated, is not limited.
 * - At most `mqtt.maxConnections` subscriber connections are open at once (sockets, counted from
 *   their accept to their close; the gateway's own publisher is not one of them): the next CONNECT
 *   is answered CONNACK 3, server unavailable (MQTT 3.1.1 §3.2.2.3), and logged at warn naming the
 *   setting. A client coming back with the id of a connection still open takes its place (§3.1.4)
 *   and is not refused. aedes has no limit of its own.
 * - A persistent session (clean session 0) whose client stays away longer than
 *   `PERSISTENT_SESSION_EXPIRY_MS` (7 days) is ended: its subscriptions and the QoS 1 messages
 *   queued for it are dropped, counted in the log (`mqtt persistent session expired`). aedes keeps
 *   such a session for ever (MQTT 3.1.1 sets no end; MQTT 5's Session Expiry Interval, which aedes
 *   does not implement, is the same idea).
 * - aedes' `$SYS` announcements that name clients (`new/clients`, `disconnect/clients`,
 *   `new/subscribes`, `new/unsubscribes`) are not forwarded to subscribers: a reader knowing
 *   another's client id can take its connection over (§3.1.4). `$SYS/<id>/heartbeat` is.
 * - The publisher's client id (`publisherClientId`: `lab-gateway-<gatewayId>`) is its own: a
 *   subscriber connecting with it is refused (CONNACK 2, identifier rejected) instead of taking
 *   the publisher's session over (MQTT 3.1.1 §3.1.4 would disconnect the publisher, and the broker
 *   would publish its Last Will: every tray would show the running gateway offline).
 *
 * A limit of the embedded mode: the broker lives in the gateway's process, so a Last Will cannot
 * outlive a kill -9: subscribers see their connection drop instead, and treat that as "gateway
 * offline" (the tray does). With an external broker the Last Will is delivered.
 */
export const INTERNAL_USERNAME = '$lab-gateway-publisher';

/**
 * Topic filters one subscriber may hold at once (distinct filters; subscribing again to one it
 * has is not a new one, an unsubscribe makes room). The gateway publishes a handful of topics per
 * endpoint; a dashboard subscribing to each endpoint of a large site stays far below. aedes has no
 * limit and keeps a persistent session's filters after it disconnects: a client subscribing in a
 * loop held 200 MB of the gateway's memory for 200,000 filters.
 */
export const MAX_SUBSCRIPTIONS_PER_CLIENT = 1000;
/** The longest topic filter granted (bytes): no gateway topic is longer than about 150. */
export const MAX_TOPIC_FILTER_BYTES = 1024;

/**
 * How long a persistent session (clean session 0) is kept for a client that does not come back:
 * 7 days, a dashboard's week of holiday. A client back later starts a new session (CONNACK session
 * present 0) and subscribes again, receiving the retained state at once (§3.3.1.3) and the last
 * alert; the other alerts of its week away are lost, which the status's `recentAlerts` and
 * `healthReasons` summarise.
 */
export const PERSISTENT_SESSION_EXPIRY_MS = 7 * 24 * 3600 * 1000;

/** aedes' own `$SYS/<broker id>/…` topics whose payload names a client (and its subscriptions). */
const CLIENT_ANNOUNCEMENT = /^\$SYS\/[^/]+\/(new|disconnect)\/(clients|subscribes|unsubscribes)$/;

/**
 * Refused connections of one kind (connection limit, bad credentials) are logged at most this
 * often, with how many were refused since the last line: a tray or script retrying every few
 * seconds would otherwise write a warning each time.
 */
const REFUSAL_LOG_EVERY_MS = 60_000;

/** Counts the refusals of one kind; `due()` answers how many to report when a line is due. */
class RefusalCount {
  #unlogged = 0;
  #loggedAt = Number.NEGATIVE_INFINITY;

  due(now = Date.now()): number | undefined {
    this.#unlogged++;
    if (now - this.#loggedAt < REFUSAL_LOG_EVERY_MS) return undefined;
    const refused = this.#unlogged;
    this.#unlogged = 0;
    this.#loggedAt = now;
    return refused;
  }
}

export interface BrokerCredentials {
  username: string;
  password: string;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || host === '::ffff:127.0.0.1';
}

/** Reads `mqtt.usernameFile` / `mqtt.passwordFile` (trailing newline trimmed). */
export function readMqttCredentials(config: MqttConfig): BrokerCredentials | undefined {
  if (!config.usernameFile && !config.passwordFile) return undefined;
  const read = (file: string | undefined, key: string): string => {
    if (!file) throw new GatewayError('GW_CONFIG_INVALID', `${key} is required when the other credential file is set`, { details: { path: key } });
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new GatewayError('GW_CONFIG_INVALID', `${key}: cannot read ${file}`, { cause: err, details: { path: key } });
    }
  };
  return { username: read(config.usernameFile, 'mqtt.usernameFile'), password: read(config.passwordFile, 'mqtt.passwordFile') };
}

function sameSecret(a: string | Buffer, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export interface EmbeddedBrokerOptions {
  config: MqttConfig;
  log: Logger;
  /** The gateway's id: the first part of `publisherClientId`. */
  gatewayId?: string;
  /** How long an abandoned persistent session is kept (default `PERSISTENT_SESSION_EXPIRY_MS`; tests shorten it). */
  persistentSessionExpiryMs?: number;
}

export class EmbeddedBroker implements Component {
  readonly name = 'mqtt-broker';
  #status: ComponentStatus = 'created';
  readonly #o: EmbeddedBrokerOptions;
  readonly #log: Logger;
  /** Per-process secret of the gateway's own publisher connection. */
  readonly internalPassword = randomBytes(24).toString('hex');
  /** Client id of the gateway's own publisher; refused to every other client. */
  readonly publisherClientId: string;
  #credentials: BrokerCredentials | undefined;
  #aedes: Aedes | undefined;
  #server: net.Server | undefined;
  /** With TLS: a plain listener on 127.0.0.1 for the gateway's own publisher only. */
  #internalServer: net.Server | undefined;
  readonly #internalClients = new WeakSet<Client>();
  /** The topic filters granted to each subscriber's connection (see MAX_SUBSCRIPTIONS_PER_CLIENT). */
  readonly #filters = new WeakMap<Client, Set<string>>();
  /** Subscribers already told (in the log) that a filter was refused: once per connection. */
  readonly #warnedFilters = new WeakSet<Client>();
  /** Open sockets of subscribers (accepted, not yet closed), against `mqtt.maxConnections`. */
  readonly #subscriberSockets = new Set<net.Socket>();
  /** Subscribers connected now, by client id (a takeover of one of them is not one more). */
  readonly #connected = new Map<string, Client>();
  /** Persistent sessions whose client is away: the timer that ends each. */
  readonly #awaySessions = new Map<string, NodeJS.Timeout>();
  readonly #limitRefusals = new RefusalCount();
  readonly #credentialRefusals = new RefusalCount();
  #expiredSessions = 0;
  #droppedQueuedMessages = 0;

  constructor(options: EmbeddedBrokerOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: 'mqtt-broker' });
    this.publisherClientId = publisherClientId(options.gatewayId ?? 'gateway');
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  get tls(): boolean {
    return this.#o.config.tls !== undefined;
  }

  address(): { host: string; port: number } {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) throw new GatewayError('GW_SHUTTING_DOWN', 'the MQTT broker is not listening');
    return { host: a.address, port: a.port };
  }

  /**
   * URL the gateway's own publisher uses: the listener itself (loopback when bound to all
   * interfaces), or with TLS a plain loopback listener that only the internal secret can use.
   */
  loopbackUrl(): string {
    const internal = this.#internalServer?.address() as AddressInfo | null | undefined;
    if (internal) return `mqtt://127.0.0.1:${internal.port}`;
    const { host, port } = this.address();
    const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `mqtt://${h}:${port}`;
  }

  get connectedClients(): number {
    return this.#aedes?.connectedClients ?? 0;
  }

  /** The limit of subscriber connections (`mqtt.maxConnections`). */
  get maxConnections(): number {
    return this.#o.config.maxConnections ?? EMBEDDED_BROKER_DEFAULTS.maxConnections;
  }

  /** Persistent sessions ended since start because their client stayed away too long. */
  get expiredSessions(): number {
    return this.#expiredSessions;
  }

  /** Messages that were queued for those sessions, dropped with them. */
  get droppedQueuedMessages(): number {
    return this.#droppedQueuedMessages;
  }

  async start(): Promise<void> {
    if (this.#status !== 'created') return;
    this.#status = 'starting';
    try {
      const cfg = this.#o.config;
      this.#credentials = readMqttCredentials(cfg);
      if (!isLoopback(cfg.listen.host) && !this.#credentials) {
        throw new GatewayError(
          'GW_CONFIG_INVALID',
          `mqtt.usernameFile: the embedded broker listens on ${cfg.listen.host}, beyond loopback, and anonymous access is off there: set mqtt.usernameFile and mqtt.passwordFile`,
          { details: { path: 'mqtt.usernameFile' } },
        );
      }
      const aedes = new Aedes({
        id: 'lab-gateway',
        // A subscriber that stops reading must not stall the others (aedes docs: drainTimeout).
        drainTimeout: 10_000,
        heartbeatInterval: 60_000,
        authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
        authorizeSubscribe: (client, sub, done) => done(null, this.#grantFilter(client, sub.topic) ? sub : null),
        // aedes announces each client id on $SYS (new/clients, disconnect/clients, new/subscribes,
        // new/unsubscribes): not to subscribers, who could take any client's connection over with
        // its id (MQTT 3.1.1 §3.1.4). The heartbeat and birth stay readable.
        authorizeForward: (_client, packet) => (CLIENT_ANNOUNCEMENT.test(packet.topic) ? null : packet),
        authorizePublish: (client, packet, done) => {
          if (client === null || this.#internalClients.has(client)) return done(null);
          done(new Error(`publishing is reserved to the gateway (topic ${packet.topic})`));
        },
      });
      await aedes.listen();
      aedes.on('unsubscribe', (filters, client) => {
        const granted = this.#filters.get(client);
        for (const f of filters) granted?.delete(f);
      });
      aedes.on('clientError', (client, err) => this.#log.debug('mqtt client error', { client: client.id, error: err.message }));
      aedes.on('client', (client) => {
        if (this.#internalClients.has(client)) return;
        this.#connected.set(client.id, client);
        this.#cancelExpiry(client.id);
      });
      aedes.on('clientDisconnect', (client) => {
        if (this.#internalClients.has(client)) return;
        if (this.#connected.get(client.id) === client) this.#connected.delete(client.id);
        if (!client.clean) this.#sessionAway(client.id);
      });
      this.#aedes = aedes;
      const handler = (socket: net.Socket, internalOnly = false): void => {
        const { conn, limit } = limitedConnection(socket, MAX_SUBSCRIBER_PACKET_BYTES, (err) =>
          this.#log.warn('mqtt client refused: packet too large', { remoteAddress: socket.remoteAddress, error: err.message }),
        );
        const c = conn as BrokerConnection;
        c.packetLimit = limit;
        c.socket = socket;
        // Only the internal publisher may use the loopback hop of a TLS broker (#authenticate).
        if (internalOnly) c.internalOnly = true;
        else {
          // A subscriber that vanishes without a FIN (a laptop closed or taken off the Wi-Fi) and
          // sends no PINGREQ (MQTT keepalive 0) would hold its socket, and a slot of
          // mqtt.maxConnections, for good: TCP keepalive closes it about 70 s later, as on the HL7
          // links (test/integration/status-mqtt-keepalive-audit.test.ts).
          socket.setKeepAlive(true, 60_000);
          this.#subscriberSockets.add(socket);
          socket.once('close', () => this.#subscriberSockets.delete(socket));
        }
        aedes.handle(conn);
      };
      const server = cfg.tls
        ? tls.createServer(
            {
              cert: readFileSync(cfg.tls.cert),
              key: readFileSync(cfg.tls.key),
              ...(cfg.tls.ca ? { ca: readFileSync(cfg.tls.ca), requestCert: true, rejectUnauthorized: true } : {}),
              minVersion: 'TLSv1.2',
            },
            (socket) => handler(socket),
          )
        : net.createServer((socket) => handler(socket));
      this.#server = server;
      await new Promise<void>((resolve, reject) => {
        const failed = (err: Error): void => reject(new GatewayError('GW_CONFIG_INVALID', `mqtt.listen: cannot listen on ${cfg.listen.host}:${cfg.listen.port}: ${err.message}`, { cause: err }));
        server.once('error', failed);
        server.listen(cfg.listen.port, cfg.listen.host, () => {
          server.off('error', failed);
          resolve();
        });
      });
      if (cfg.tls) {
        const internal = net.createServer((socket) => handler(socket, true));
        this.#internalServer = internal;
        await new Promise<void>((resolve, reject) => {
          internal.once('error', reject);
          internal.listen(0, '127.0.0.1', () => resolve());
        });
      }
      this.#log.info('embedded MQTT broker listening', { url: this.loopbackUrl(), tls: this.tls, anonymous: !this.#credentials });
      this.#status = 'running';
    } catch (err) {
      this.#status = 'failed';
      await this.#closeAll();
      throw err;
    }
  }

  async stop(deadlineMs = 3000): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'stopping') return;
    this.#status = 'stopping';
    for (const timer of this.#awaySessions.values()) clearTimeout(timer);
    this.#awaySessions.clear();
    await Promise.race([this.#closeAll(), new Promise<void>((r) => setTimeout(r, deadlineMs).unref())]);
    this.#status = 'stopped';
  }

  async #closeAll(): Promise<void> {
    const server = this.#server;
    const internal = this.#internalServer;
    const aedes = this.#aedes;
    this.#server = undefined;
    this.#internalServer = undefined;
    this.#aedes = undefined;
    await Promise.all([
      internal ? new Promise<void>((r) => internal.close(() => r())) : Promise.resolve(),
      server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve(),
      aedes ? new Promise<void>((r) => aedes.close(() => r())) : Promise.resolve(),
    ]);
  }

  /**
   * Whether a subscriber may hold one more topic filter. A refusal is the SUBACK failure code 0x80
   * for that filter (MQTT 3.1.1 §3.9.3: aedes sends it for a filter authorizeSubscribe answers
   * null); the client keeps its connection and the filters it has. A persistent session coming
   * back has its stored filters granted again through here (aedes restores them the same way).
   */
  #grantFilter(client: Client, filter: string): boolean {
    if (this.#internalClients.has(client)) return true;
    let granted = this.#filters.get(client);
    if (!granted) {
      granted = new Set();
      this.#filters.set(client, granted);
    }
    if (granted.has(filter)) return true;
    const tooLong = Buffer.byteLength(filter, 'utf8') > MAX_TOPIC_FILTER_BYTES;
    if (tooLong || granted.size >= MAX_SUBSCRIPTIONS_PER_CLIENT) {
      if (!this.#warnedFilters.has(client)) {
        this.#warnedFilters.add(client);
        this.#log.warn(tooLong ? 'mqtt subscription refused: topic filter too long' : 'mqtt subscription refused: too many topic filters', {
          client: client.id,
          limit: tooLong ? MAX_TOPIC_FILTER_BYTES : MAX_SUBSCRIPTIONS_PER_CLIENT,
        });
      }
      return false;
    }
    granted.add(filter);
    return true;
  }

  /** A persistent session's client left: its session ends if it is not back within the expiry. */
  #sessionAway(clientId: string): void {
    if (this.#status !== 'running') return;
    this.#cancelExpiry(clientId);
    const expiryMs = this.#o.persistentSessionExpiryMs ?? PERSISTENT_SESSION_EXPIRY_MS;
    const timer = setTimeout(() => {
      this.#awaySessions.delete(clientId);
      this.#expireSession(clientId, expiryMs).catch((err: unknown) =>
        this.#log.warn('mqtt persistent session not expired', { client: clientId, error: err instanceof Error ? err.message : String(err) }),
      );
    }, expiryMs);
    timer.unref();
    this.#awaySessions.set(clientId, timer);
  }

  /** No expiry pending for this id: its client connected, or left again (a new window starts). */
  #cancelExpiry(clientId: string): void {
    const timer = this.#awaySessions.get(clientId);
    if (timer) clearTimeout(timer);
    this.#awaySessions.delete(clientId);
  }

  /**
   * Ends the session of `clientId`, away for `awayMs`: the QoS 1 messages queued for it are dropped
   * (counted), then its subscriptions (so nothing more is queued) and any QoS 2 state. Nothing is
   * done if the client came back meanwhile.
   */
  async #expireSession(clientId: string, awayMs: number): Promise<void> {
    const aedes = this.#aedes;
    if (!aedes || this.#connected.has(clientId)) return;
    // aedes' types do not declare `persistence` (set in listen()): SessionStore names the calls used here.
    const store = (aedes as unknown as { persistence: SessionStore }).persistence;
    const session = { id: clientId };
    let dropped = 0;
    for await (const packet of store.outgoingStream(session)) {
      if (this.#connected.has(clientId)) break; // back while its queue was read: it keeps the rest
      await store.outgoingClearMessageId(session, packet);
      dropped++;
    }
    if (!this.#connected.has(clientId)) {
      await store.cleanSubscriptions(session);
      await store.cleanIncoming?.(session);
    }
    // A client back while its queue was being emptied keeps its session (its subscriptions and
    // what was not dropped yet), yet is counted here as expired and logged so, with the messages
    // really dropped. Left so: the window is the few awaits of clearing an in-memory queue, at the
    // end of the expiry (a week away by default), and all it costs is a counter of /metrics one
    // too high and a log line; no message is lost beyond those counted, no subscription dropped.
    // Not covered by a test: the broker's options cannot hold a client's return inside that
    // window.
    this.#expiredSessions++;
    this.#droppedQueuedMessages += dropped;
    this.#log.info('mqtt persistent session expired', {
      client: clientId,
      awayHours: Math.round((awayMs / 3_600_000) * 10) / 10,
      droppedMessages: dropped,
      expiredSessions: this.#expiredSessions,
      droppedMessagesTotal: this.#droppedQueuedMessages,
    });
  }

  /**
   * Whether one more subscriber may connect: fewer than `mqtt.maxConnections` other subscriber
   * sockets are open, or it takes over the session of a connected client with its id (§3.1.4: the
   * old connection is closed, so the count does not grow).
   */
  #roomFor(client: Client): boolean {
    const own = (client.conn as BrokerConnection).socket;
    const others = this.#subscriberSockets.size - (own && this.#subscriberSockets.has(own) ? 1 : 0);
    if (others < this.maxConnections || this.#connected.has(client.id)) return true;
    const refused = this.#limitRefusals.due();
    if (refused !== undefined) {
      this.#log.warn('mqtt client refused: connection limit reached (mqtt.maxConnections)', {
        client: client.id,
        remoteAddress: own?.remoteAddress,
        setting: 'mqtt.maxConnections',
        limit: this.maxConnections,
        refused,
      });
    }
    return false;
  }

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: (Error & { returnCode: number }) | null, success: boolean | null) => void,
  ): void {
    if (username === INTERNAL_USERNAME) {
      if (password && sameSecret(password, this.internalPassword)) {
        this.#internalClients.add(client);
        // Not a subscriber: it never counts against mqtt.maxConnections.
        const socket = (client.conn as BrokerConnection).socket;
        if (socket) this.#subscriberSockets.delete(socket);
        // Its status may outgrow the subscribers' limit (a site with many analyzers).
        const limit = (client.conn as BrokerConnection).packetLimit;
        if (limit) limit.maxPacketBytes = Number.POSITIVE_INFINITY;
        return done(null, true);
      }
      return done(Object.assign(new Error('bad credentials'), { returnCode: 4 }), false);
    }
    if ((client.conn as BrokerConnection).internalOnly) {
      return done(Object.assign(new Error('internal listener'), { returnCode: 5 }), false);
    }
    if (client.id === this.publisherClientId) {
      // MQTT 3.1.1 §3.2.2.3: return code 2, identifier rejected. Accepting it would disconnect the
      // gateway's publisher (§3.1.4) and publish its Last Will `offline`.
      this.#log.warn("mqtt client refused: it uses the gateway publisher's client id", { client: client.id });
      return done(Object.assign(new Error('identifier rejected'), { returnCode: 2 }), false);
    }
    const creds = this.#credentials;
    // Anonymous: loopback only (checked at start).
    if (creds && !(username !== undefined && password !== undefined && sameSecret(username, creds.username) && sameSecret(password, creds.password))) {
      // MQTT 3.1.1 §3.2.2.3: return code 4, bad user name or password.
      const refused = this.#credentialRefusals.due();
      if (refused !== undefined) {
        this.#log.warn('mqtt client refused: bad credentials', { client: client.id, remoteAddress: (client.conn as BrokerConnection).socket?.remoteAddress, refused });
      }
      return done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
    }
    // MQTT 3.1.1 §3.2.2.3: return code 3, server unavailable (the client may try again later).
    if (!this.#roomFor(client)) return done(Object.assign(new Error('server unavailable: connection limit reached'), { returnCode: 3 }), false);
    done(null, true);
  }
}
