import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { displayUrl } from '../config/display-url.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { describeError } from '../errors.ts';
import type { StatusAlert, StatusModel } from './status-model.ts';
import { publisherClientId, topics, type AvailabilityPayload } from './mqtt-topics.ts';

/**
 * Publishes the status model over MQTT (DESIGN.md §5 topics): the retained status and endpoint
 * topics on change (coalesced: at most one publish per `coalesceMs`) and on an interval, each alert
 * as it is raised (retained too: the last one), and the retained availability topic with a Last
 * Will `offline`.
 *
 * It is an ordinary MQTT client — of the embedded broker over loopback, or of an external broker
 * (Mosquitto, EMQX). With an external broker the Last Will reaches subscribers even after kill -9
 * (MQTT 3.1.1 §3.1.2.5: the server publishes the will when the network connection closes without
 * a DISCONNECT). With the embedded broker the broker dies with the process; subscribers then see
 * their own connection close, which the tray treats as "gateway offline".
 *
 * Publishing never blocks the data path: the model notifies synchronously and the publisher only
 * schedules a timer; while the broker is unreachable updates are dropped (the next connect
 * publishes the current state), alerts are kept in a small buffer.
 */
export interface MqttPublisherOptions {
  gatewayId: string;
  model: StatusModel;
  log: Logger;
  /** mqtt://host:port or mqtts://host:port, or MQTT over WebSockets: ws(s)://host:port[/path] */
  url: string;
  username?: string;
  password?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /** Re-publish all retained topics this often (ms). */
  publishIntervalMs: number;
  /** Minimum gap between change-triggered publishes (ms). Default 250. */
  coalesceMs?: number;
  /** How long start() waits for the first connection before going on (ms). Default 5000. */
  connectWaitMs?: number;
  /** Default `lab-gateway-<gatewayId>` (mqtt-topics.ts publisherClientId). */
  clientId?: string;
  /**
   * After each connect, clear retained `endpoints/<id>` topics of ids no longer configured (an
   * external broker keeps them across restarts; default true). The embedded broker has none.
   */
  clearRemovedEndpoints?: boolean;
  /**
   * This process, in every availability payload (`instance`; default a random UUID): what tells a
   * retained availability this gateway wrote from one of another gateway under the same id.
   */
  instance?: string;
  /**
   * Gateway ids this gateway published under before on this broker (`gateway.id` changed since:
   * mqtt-status.ts remembers them), each with the instances of this data directory that published
   * under it. After each connect their retained topics are cleared when they are this gateway's
   * (#clearRetiredGateways), and `onRetiredDone` is told of each id done with: cleared, or found to
   * be another gateway's.
   */
  retiredGatewayIds?: ReadonlyMap<string, readonly string[]>;
  onRetiredDone?: (gatewayId: string) => void;
  /**
   * How long a former id is watched for a gateway publishing under it before its topics are
   * cleared (ms). Default two publishIntervalMs and a second: a gateway running under it re-publishes
   * its availability every interval (if the site's gateways publish at least as often as this one).
   */
  retiredWatchMs?: number;
}

const MAX_BUFFERED_ALERTS = 100;

/** A field of an availability payload (`state`, `instance`), undefined when it is not one. */
function availabilityField(payload: string, field: 'state' | 'instance'): unknown {
  try {
    const v: unknown = JSON.parse(payload);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[field] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long the gateway's own `online` may go without coming back (over at least two of its
 * publishes) before the link is reported as not delivering (#checkDelivery).
 */
const READ_BACK_WAIT_MS = 5_000;

export class MqttStatusPublisher implements Component {
  readonly name = 'mqtt-publisher';
  #status: ComponentStatus = 'created';
  readonly #o: MqttPublisherOptions;
  readonly #log: Logger;
  readonly #t: ReturnType<typeof topics>;
  #client: MqttClient | undefined;
  #interval: NodeJS.Timeout | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  /**
   * When the last change-triggered publish went out, on the monotonic clock (`performance.now()`):
   * measured on the wall clock, the gap lasted as long as the step when NTP set the clock back,
   * and changes waited for the interval re-publish.
   */
  #lastFlush = Number.NEGATIVE_INFINITY;
  #pending = new Set<string>();
  /** The retained `online` of the current connection (set at connect, re-published every interval). */
  #online: string | undefined;
  readonly #lastPayload = new Map<string, string>();
  readonly #alertBuffer: StatusAlert[] = [];
  readonly #unsubscribe: Array<() => void> = [];
  /** The clean-up of retained endpoint topics after the last connect (see #clearRemovedEndpoints). */
  #cleared: Promise<void> | undefined;
  /** The last connection error logged at warn (repeats go to debug); cleared at connect. */
  #warnedError: string | undefined;
  /**
   * Read-back of the gateway's own availability topic (#checkDelivery): `true` while the broker
   * granted the subscription, `false` when it refused it (the gateway may not read: nothing to
   * check), `undefined` until the SUBACK.
   */
  #readBack: boolean | undefined;
  /** The `online` publishes not seen back yet, and when the first of them went out. */
  #unanswered = 0;
  #unansweredSince = 0;
  /** Set while the broker accepts the connection but does not deliver the gateway's publishes. */
  #notDelivering: string | undefined;
  /** Former gateway ids whose retained topics are still to be cleared, with this data directory's instances under each (#clearRetiredGateways). */
  readonly #retired: Map<string, ReadonlySet<string>>;
  readonly #instance: string;
  /** Connections made: a former id's watch that spans a reconnect missed what was published meanwhile. */
  #connects = 0;
  /** Publishes made (for tests and the benchmark). */
  published = 0;

  constructor(options: MqttPublisherOptions) {
    this.#o = options;
    this.#retired = new Map([...(options.retiredGatewayIds ?? new Map<string, readonly string[]>())].filter(([id]) => id !== options.gatewayId).map(([id, ours]) => [id, new Set(ours)]));
    this.#instance = options.instance ?? randomUUID();
    this.#log = options.log.child({ component: 'mqtt-publisher' });
    this.#t = topics(options.gatewayId);
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  async start(): Promise<void> {
    if (this.#status !== 'created') return;
    this.#status = 'starting';
    await this.#o.model.start();
    const will: AvailabilityPayload = { gatewayId: this.#o.gatewayId, state: 'offline', reason: 'connection to the gateway lost', instance: this.#instance };
    const opts: IClientOptions = {
      clientId: this.#o.clientId ?? publisherClientId(this.#o.gatewayId),
      clean: true,
      keepalive: 10,
      reconnectPeriod: 2000,
      // A CONNACK refusing the connection (not authorized, server unavailable: the gateway's user
      // not yet on the broker, its authentication backend away) is retried like a broker away.
      // mqtt.js's default stops reconnecting after one, and the gateway published nothing until
      // it was restarted, though IT had fixed the broker.
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      // Retained state is re-published on connect; no stale backlog while offline.
      queueQoSZero: false,
      // MQTT 3.1.1 §3.1.2.5: the Will Message is published when the connection drops uncleanly.
      will: { topic: this.#t.availability, payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
      ...(this.#o.username !== undefined ? { username: this.#o.username } : {}),
      ...(this.#o.password !== undefined ? { password: this.#o.password } : {}),
    };
    const tlsOpts = this.#o.tls;
    if (tlsOpts) {
      if (tlsOpts.ca) opts.ca = readFileSync(tlsOpts.ca);
      if (tlsOpts.cert) opts.cert = readFileSync(tlsOpts.cert);
      if (tlsOpts.key) opts.key = readFileSync(tlsOpts.key);
    }
    // Not connected until the first CONNACK: a broker away from the start is reported too.
    this.#report(false);
    const client = mqtt.connect(this.#o.url, opts);
    this.#client = client;
    client.on('connect', () => {
      this.#log.info('connected to MQTT broker', { url: displayUrl(this.#o.url) });
      this.#connects++;
      this.#warnedError = undefined;
      this.#readBack = undefined;
      this.#unanswered = 0;
      this.#notDelivering = undefined;
      this.#report(true);
      const online: AvailabilityPayload = { gatewayId: this.#o.gatewayId, state: 'online', at: new Date().toISOString(), instance: this.#instance };
      this.#online = JSON.stringify(online);
      this.#readOwnAvailability(client);
      this.#publishAll();
      this.#drainAlerts();
      if (this.#o.clearRemovedEndpoints !== false) this.#cleared = this.#clearRemovedEndpoints(client);
      // In the background: each former id is watched for a while first (not awaited by start()).
      if (this.#retired.size > 0) void this.#clearRetiredGateways(client, this.#connects);
    });
    client.on('error', (err) => {
      const error = describeError(err);
      // Each reconnection attempt (every 2 s) fails the same way: logged once at warn, again when
      // the error changes; the status carries it (MQTT_UNREACHABLE after the grace period).
      if (error !== this.#warnedError) this.#log.warn('MQTT error', { url: displayUrl(this.#o.url), error });
      else this.#log.debug('MQTT error', { url: displayUrl(this.#o.url), error });
      this.#warnedError = error;
      this.#report(client.connected, error);
    });
    client.on('close', () => this.#report(false));
    client.on('message', (topic, payload) => {
      if (topic !== this.#t.availability || payload.toString() !== this.#online) return;
      this.#unanswered = 0;
      if (this.#notDelivering !== undefined) {
        this.#notDelivering = undefined;
        this.#log.info('the MQTT broker delivers the gateway\'s publishes again', { url: displayUrl(this.#o.url) });
        this.#report(true);
      }
    });
    client.on('offline', () => this.#log.debug('MQTT broker offline', { url: displayUrl(this.#o.url) }));
    this.#unsubscribe.push(
      this.#o.model.onChange((changed) => this.#onChange(changed)),
      // With those the model raised before (start-up: the gateway starts the relay and the model's
      // first checks before MQTT), buffered like any alert until the first connection.
      this.#o.model.onAlert((a) => this.#onAlert(a), { startup: true }),
    );
    this.#interval = setInterval(() => this.#publishAll(), this.#o.publishIntervalMs);
    this.#interval.unref();
    // Wait a little for the first connection; the gateway starts anyway if the broker is away.
    await new Promise<void>((resolve) => {
      if (client.connected) return resolve();
      const t = setTimeout(() => {
        this.#log.warn('MQTT broker not reachable yet; status will be published once it is', { url: displayUrl(this.#o.url) });
        resolve();
      }, this.#o.connectWaitMs ?? 5000);
      t.unref();
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
    // Started means the broker shows only endpoints the gateway has (bounded: a slow broker
    // does not hold the start).
    if (this.#cleared) await Promise.race([this.#cleared, new Promise<void>((r) => setTimeout(r, 2_000).unref())]);
    this.#status = 'running';
  }

  /** Graceful stop: publish `offline` (retained) so subscribers know it was intended, then DISCONNECT. */
  async stop(deadlineMs = 3000): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'stopping') return;
    this.#status = 'stopping';
    clearInterval(this.#interval);
    clearTimeout(this.#flushTimer);
    for (const u of this.#unsubscribe.splice(0)) u();
    const client = this.#client;
    if (client) {
      const work = (async () => {
        if (client.connected) {
          const offline: AvailabilityPayload = { gatewayId: this.#o.gatewayId, state: 'offline', at: new Date().toISOString(), reason: 'gateway stopped', instance: this.#instance };
          // The last word of this gateway: going (`stopping`, also when only the publisher stops),
          // and gone (`online: false`), with the reasons it had (the model keeps them while it stops).
          const last = { ...this.#o.model.toApiStatus(), online: false, stopping: true };
          // Every endpoint's final state too (stopped, no connections): a change made within the
          // coalescing gap before the stop would otherwise stay retained as "connected". QoS 0 like
          // every state (#publish): at QoS 1 a dashboard away with a persistent session was handed
          // this `offline` when it came back, after the gateway had restarted. The broker reads
          // these before the DISCONNECT that follows on the same connection.
          const endpoints = this.#o.model.endpointIds().flatMap((id) => {
            const e = this.#endpointPayload(id);
            return e ? [client.publishAsync(this.#t.endpoint(id), e.payload, { qos: 0, retain: true })] : [];
          });
          await Promise.allSettled([
            ...endpoints,
            client.publishAsync(this.#t.status, JSON.stringify(last), { qos: 0, retain: true }),
            client.publishAsync(this.#t.availability, JSON.stringify(offline), { qos: 0, retain: true }),
          ]);
          await client.endAsync();
        } else {
          // Never connected (or the broker is away): nothing to say goodbye to; a graceful end
          // would keep the socket until the connect timeout and hold the process open.
          client.end(true);
        }
      })();
      await Promise.race([work.catch(() => {}), new Promise<void>((r) => setTimeout(r, deadlineMs).unref())]);
      client.end(true);
    }
    this.#status = 'stopped';
  }

  /**
   * The broker connection, to the status model (`mqtt` in /api/status, MQTT_UNREACHABLE): when no
   * status reaches the subscribers, the HTTP surfaces say so. Not during a stop (its disconnect is
   * intended).
   */
  #report(connected: boolean, lastError?: string): void {
    if (this.#status === 'stopping' || this.#status === 'stopped') return;
    // Connected, but the broker drops the publishes (#checkDelivery): an error event meanwhile
    // does not make it read as delivering.
    if (connected && this.#notDelivering !== undefined) {
      connected = false;
      lastError = this.#notDelivering;
    }
    this.#o.model.setMqttLink({ broker: displayUrl(this.#o.url), connected, ...(lastError !== undefined ? { lastError } : {}) });
  }

  /**
   * An external broker keeps retained endpoint topics across restarts of the gateway: one of an
   * analyzer since removed from the configuration would be shown for ever. The retained topics
   * under `endpoints/+` are read once after connecting (the broker sends them right after the
   * SUBACK, so all of them have arrived when the UNSUBACK does), and those of ids the gateway no
   * longer has are cleared: an empty retained payload deletes a retained message (MQTT 3.1.1
   * §3.3.1.3).
   */
  async #clearRemovedEndpoints(client: MqttClient): Promise<void> {
    const wildcard = this.#t.endpointsWildcard;
    const prefix = wildcard.slice(0, -1);
    const stale = new Set<string>();
    const onMessage = (topic: string, payload: Buffer, packet: { retain?: boolean }): void => {
      if (!topic.startsWith(prefix) || !packet.retain || payload.length === 0) return;
      if (!this.#o.model.endpoint(topic.slice(prefix.length))) stale.add(topic);
    };
    client.on('message', onMessage);
    try {
      await client.subscribeAsync(wildcard, { qos: 1 });
      await client.unsubscribeAsync(wildcard);
    } catch (err) {
      this.#log.debug('could not read the retained endpoint topics', { error: describeError(err) });
    } finally {
      client.removeListener('message', onMessage);
    }
    for (const topic of stale) {
      this.#log.info('clearing the retained topic of an endpoint no longer configured', { topic });
      await client.publishAsync(topic, '', { qos: 1, retain: true }).catch(() => undefined);
    }
  }

  /**
   * The retained topics of the gateway ids this gateway published under before (`gateway.id`
   * renamed): an external broker keeps them for ever, and every dashboard or tray subscribing to
   * `lab-gateway/+/…` was handed a gateway that no longer exists, `offline`, with its last status
   * and its last alert, as if a second gateway were down. Cleared with an empty retained payload
   * (MQTT 3.1.1 §3.3.1.3) only when they are this gateway's: the old id may be another gateway's
   * now (this data directory or its configuration copied to another box), and clearing would take
   * a live gateway's topics and last alert, or make one stopped or slow to come back vanish from
   * the dashboards instead of reading offline. So each former id is watched (`lab-gateway/<id>/#`)
   * for retiredWatchMs, and left for good, its topics untouched, when
   * - its retained availability was not written by a process of this data directory (its
   *   `instance` is not one this gateway used under that id), or
   * - anything was published there meanwhile (a gateway re-publishes its topics every interval;
   *   one slow to start publishes `online` when it connects), or is there when read again after
   *   the clearing.
   * Otherwise the topics seen are cleared and read again: a broker whose ACL does not let the
   * gateway write there keeps them, and that is logged with what to run. A reconnect during the
   * watch (a broker restart) ends it: tried again after the next connect. No clock is compared.
   */
  async #clearRetiredGateways(client: MqttClient, connection: number): Promise<void> {
    const watchMs = this.#o.retiredWatchMs ?? 2 * this.#o.publishIntervalMs + 1_000;
    const current = (): boolean => this.#client === client && client.connected && this.#connects === connection && this.#status !== 'stopping' && this.#status !== 'stopped';
    for (const [id, ours] of [...this.#retired]) {
      const t = topics(id);
      const prefix = t.all.slice(0, -1);
      const retained = new Map<string, string>();
      let live: string | undefined;
      const onMessage = (topic: string, payload: Buffer, packet: { retain?: boolean }): void => {
        if (!topic.startsWith(prefix) || payload.length === 0) return;
        if (packet.retain) retained.set(topic, payload.toString());
        else live ??= topic;
      };
      const notOurs = (): string | undefined => {
        if (live !== undefined) return `a gateway published on ${live} while it was watched`;
        const availability = retained.get(t.availability);
        if (availability === undefined) return undefined;
        const instance = availabilityField(availability, 'instance');
        return typeof instance === 'string' && ours.has(instance) ? undefined : `its availability (${String(availabilityField(availability, 'state'))}) was published by another gateway`;
      };
      const leave = (why: string): void => {
        this.#log.warn('a former gateway id of this gateway is another gateway\'s on the MQTT broker: its retained topics are left, and not tried again', { formerGatewayId: id, why });
        this.#retired.delete(id);
        this.#o.onRetiredDone?.(id);
      };
      client.on('message', onMessage);
      try {
        await client.subscribeAsync(t.all, { qos: 1 });
        await new Promise<void>((r) => setTimeout(r, watchMs).unref());
        if (!current()) return;
        await client.unsubscribeAsync(t.all);
        if (!current()) return;
        const why = notOurs();
        if (why !== undefined) {
          leave(why);
          continue;
        }
        for (const topic of retained.keys()) await client.publishAsync(topic, '', { qos: 1, retain: true });
        const left = retained.size > 0 ? await this.#retainedUnder(client, t.all) : new Map<string, string>();
        const leftAvailability = left.get(t.availability);
        if (leftAvailability !== undefined && leftAvailability !== retained.get(t.availability)) {
          // A gateway came online under it between the watch and the clearing: it re-publishes its topics.
          leave('its availability was published by another gateway just as the topics were cleared');
          continue;
        }
        if (left.size > 0) {
          this.#log.warn('could not clear the retained topics of a former gateway id (the broker may not let the gateway write there): clear them on the broker', {
            formerGatewayId: id,
            topics: [...left.keys()],
            howTo: `mosquitto_pub -r -n -t <topic>, for each topic, as a user that may write ${t.all}`,
          });
          continue;
        }
        this.#retired.delete(id);
        if (retained.size > 0) this.#log.info('cleared the retained MQTT topics of a former gateway id', { formerGatewayId: id, topics: [...retained.keys()] });
        this.#o.onRetiredDone?.(id);
      } catch (err) {
        // Not connected any more, or the subscription refused (0x80): tried again at the next connect.
        this.#log.warn('could not read the retained topics of a former gateway id', { formerGatewayId: id, error: describeError(err) });
      } finally {
        client.removeListener('message', onMessage);
      }
    }
  }

  /** The retained messages (non-empty) under `filter`, by topic: subscribed and unsubscribed once. */
  async #retainedUnder(client: MqttClient, filter: string): Promise<Map<string, string>> {
    const prefix = filter.slice(0, -1);
    const found = new Map<string, string>();
    const onMessage = (topic: string, payload: Buffer, packet: { retain?: boolean }): void => {
      if (topic.startsWith(prefix) && packet.retain && payload.length > 0) found.set(topic, payload.toString());
    };
    client.on('message', onMessage);
    try {
      await client.subscribeAsync(filter, { qos: 1 });
      await client.unsubscribeAsync(filter);
    } finally {
      client.removeListener('message', onMessage);
    }
    return found;
  }

  /**
   * A broker may accept the connection and drop every publish: its ACL does not grant the
   * gateway's user write on `lab-gateway/<gatewayId>/#` (a typo, the gateway's id renamed), and
   * MQTT 3.1.1 tells a publisher nothing of it (Mosquitto even answers PUBACK). So the publisher
   * subscribes to its own availability topic and expects the `online` it publishes back. When the
   * broker refuses that subscription (a user that may write but not read, as status/README.md
   * suggests) nothing is checked.
   */
  #readOwnAvailability(client: MqttClient): void {
    client.subscribeAsync(this.#t.availability, { qos: 0 }).then(
      (granted) => {
        if (this.#client === client) this.#readBack = granted.every((g) => g.qos !== 128);
      },
      (err: unknown) => {
        // mqtt.js rejects a SUBACK with the failure code 0x80 (MQTT 3.1.1 §3.9.3).
        if (this.#client === client) this.#readBack = false;
        this.#log.debug('cannot read back the availability topic; delivery is not checked', { error: describeError(err) });
      },
    );
  }

  /**
   * Before each `online` publish (connect, every publishIntervalMs): when two or more of them,
   * the first at least READ_BACK_WAIT_MS ago, never came back while the gateway may read its
   * topic, the link is reported down with the reason (`mqtt.lastError`, MQTT_UNREACHABLE after
   * its grace). The next one seen back clears it.
   */
  #checkDelivery(): void {
    if (this.#readBack !== true || this.#unanswered < 2 || performance.now() - this.#unansweredSince < READ_BACK_WAIT_MS) return;
    if (this.#notDelivering !== undefined) return;
    this.#notDelivering = `the broker accepts the connection but does not deliver the gateway's publishes on ${this.#t.all} (its ACL may not grant the gateway's user write there)`;
    this.#log.warn('MQTT broker does not deliver the gateway\'s publishes', { url: displayUrl(this.#o.url), topic: this.#t.all });
    this.#report(false, this.#notDelivering);
  }

  #onChange(changed: ReadonlySet<string>): void {
    for (const k of changed) this.#pending.add(k);
    if (this.#flushTimer) return;
    const wait = Math.max(0, this.#lastFlush + (this.#o.coalesceMs ?? 250) - performance.now());
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flush();
    }, wait);
    this.#flushTimer.unref();
  }

  #flush(): void {
    this.#lastFlush = performance.now();
    const pending = this.#pending;
    this.#pending = new Set();
    if (!this.connected) return; // the next connect publishes everything
    for (const key of pending) {
      if (key === 'status') this.#publishStatus(false);
      else if (key.startsWith('endpoint:')) this.#publishEndpoint(key.slice('endpoint:'.length), false);
    }
  }

  /**
   * Every retained topic. The availability `online` goes out at every call (connect and each
   * publishIntervalMs tick), not only at connect: a Last Will `offline` a broker publishes late —
   * a previous session of this gateway that the broker times out after this one connected, a
   * session taken over — is corrected within one interval instead of showing the running gateway
   * offline until its next reconnect.
   */
  #publishAll(): void {
    if (!this.connected) return;
    if (this.#online !== undefined) {
      this.#checkDelivery();
      if (this.#unanswered++ === 0) this.#unansweredSince = performance.now();
      this.#publish(this.#t.availability, this.#online, true, true);
    }
    this.#publishStatus(true);
    for (const id of this.#o.model.endpointIds()) this.#publishEndpoint(id, true);
  }

  #publishStatus(force: boolean): void {
    this.#publish(this.#t.status, JSON.stringify(this.#o.model.toApiStatus()), true, force);
  }

  #publishEndpoint(id: string, force: boolean): void {
    const e = this.#endpointPayload(id);
    if (!e) return;
    this.#publish(this.#t.endpoint(id), e.payload, true, force, e.state);
  }

  /**
   * The retained `endpoints/<id>` payload: the endpoint's state, and `generatedAt` (additive), when
   * it was published. After a kill -9 an external broker keeps handing the last one out (only the
   * availability topic gets the Last Will): a dashboard that reads only these topics tells a stale
   * one by its age (fresher than two `mqtt.publishIntervalMs` while the gateway runs: every tick
   * re-publishes it). `state` is the payload without that time, to tell a change from a repeat.
   */
  #endpointPayload(id: string): { payload: string; state: string } | undefined {
    const e = this.#o.model.endpoint(id);
    if (!e) return undefined;
    const body = { gatewayId: this.#o.gatewayId, ...e };
    return { state: JSON.stringify(body), payload: JSON.stringify({ ...body, generatedAt: new Date(this.#o.model.now()).toISOString() }) };
  }

  /**
   * A retained state topic (status, endpoints, availability), at QoS 0. Only the latest state
   * counts: the broker keeps it as the retained copy, the next change or interval tick replaces
   * it, and a reconnect publishes everything again. At QoS 1 a broker also queues every publish
   * for each subscriber that is away with a persistent session (clean session 0, MQTT 3.1.1
   * §3.1.2.4; delivered at the lower of the two QoS, §3.8.4): the embedded broker held that queue
   * in the gateway's memory without limit (~100 MB a day of a working lab for one dashboard taken
   * away), and replayed hours of stale states to the dashboard when it came back. Alerts stay at
   * QoS 1 (#publishAlert): each is an event of its own, not a state the next one replaces.
   */
  #publish(topic: string, payload: string, retain: boolean, force: boolean, state: string = payload): void {
    const client = this.#client;
    if (!client?.connected) return;
    // `state`: what tells a change from a repeat (the payload without its publication time).
    if (!force && this.#lastPayload.get(topic) === state) return;
    this.#lastPayload.set(topic, state);
    this.published++;
    client.publish(topic, payload, { qos: 0, retain }, (err) => {
      if (err) this.#log.debug('MQTT publish failed', { topic, error: describeError(err) });
    });
  }

  #onAlert(alert: StatusAlert): void {
    if (!this.connected) {
      this.#alertBuffer.push(alert);
      if (this.#alertBuffer.length > MAX_BUFFERED_ALERTS) this.#alertBuffer.shift();
      return;
    }
    this.#publishAlert(alert);
  }

  #drainAlerts(): void {
    for (const a of this.#alertBuffer.splice(0)) this.#publishAlert(a);
  }

  /**
   * An alert, retained (DESIGN.md §5 lists the alerts topic among the retained ones) at QoS 1: a
   * subscriber connected then gets it live (RETAIN 0), one that subscribes later gets the last
   * alert as the broker's retained copy (RETAIN 1, MQTT 3.1.1 §3.3.1.3), dated by its `at`. The
   * tray does not notify such a copy (the status's `recentAlerts` tells it what it missed). It is
   * kept at a graceful stop and however old it gets: it is this gateway's last alert, and says
   * when it was raised; the next alert replaces it.
   */
  #publishAlert(alert: StatusAlert): void {
    this.published++;
    this.#client?.publish(this.#t.alerts, JSON.stringify({ gatewayId: this.#o.gatewayId, ...alert }), { qos: 1, retain: true });
  }
}
