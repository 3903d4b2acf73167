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

/** What aedes is handed for each connection: the socket behind a packet size limit. */
type BrokerConnection = Duplex & { internalOnly?: boolean; packetLimit?: MqttPacketLimit };

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
      this.#aedes = aedes;
      const handler = (socket: net.Socket, internalOnly = false): void => {
        const { conn, limit } = limitedConnection(socket, MAX_SUBSCRIBER_PACKET_BYTES, (err) =>
          this.#log.warn('mqtt client refused: packet too large', { remoteAddress: socket.remoteAddress, error: err.message }),
        );
        const c = conn as BrokerConnection;
        c.packetLimit = limit;
        // Only the internal publisher may use the loopback hop of a TLS broker (#authenticate).
        if (internalOnly) c.internalOnly = true;
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

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: (Error & { returnCode: number }) | null, success: boolean | null) => void,
  ): void {
    if (username === INTERNAL_USERNAME) {
      if (password && sameSecret(password, this.internalPassword)) {
        this.#internalClients.add(client);
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
    if (!creds) return done(null, true); // loopback only (checked at start)
    if (username !== undefined && password !== undefined && sameSecret(username, creds.username) && sameSecret(password, creds.password)) {
      return done(null, true);
    }
    // MQTT 3.1.1 §3.2.2.3: return code 4, bad user name or password.
    this.#log.warn('mqtt client refused: bad credentials', { client: client.id });
    done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
  }
}
