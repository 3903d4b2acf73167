import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig } from '../config/types.ts';
import { displayUrl } from '../config/display-url.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { describeError, GatewayError } from '../errors.ts';
import { ID_PATTERN, mqttBrokerProblem } from '../config/validate.ts';
import type { StatusModel } from './status-model.ts';
import { EmbeddedBroker, INTERNAL_USERNAME, readMqttCredentials } from './mqtt-broker.ts';
import { MqttStatusPublisher } from './mqtt-publisher.ts';

/**
 * MQTT status for the composition root: `mqtt.broker: embedded` starts the aedes broker and
 * connects the publisher to it over loopback; `mqtt.broker: mqtt(s)://host:port` (or MQTT over
 * WebSockets, `ws(s)://host:port[/path]`) publishes to that external broker with
 * `mqtt.usernameFile/passwordFile` and `mqtt.tls.{ca,cert,key}`.
 * Stops publisher first (it publishes `offline`), then the broker — the broker is the last status
 * surface to go (STYLE.md practice 6).
 */
export interface MqttStatusOptions {
  config: GatewayConfig;
  model: StatusModel;
  log: Logger;
  /** Coalescing gap of change-triggered publishes (ms). Default 250. */
  coalesceMs?: number;
}

/**
 * `<dataDir>/mqtt-published.json`: the external broker this gateway publishes to and the gateway
 * ids it published under there, the current one first, then former ones whose retained topics are
 * not cleared yet. When IT renames `gateway.id`, the broker keeps the old id's retained status,
 * availability (`offline`), endpoints and last alert for ever: every dashboard and tray
 * subscribing to `lab-gateway/+/…` was handed a second gateway, offline, that no longer exists.
 * The file tells the next start which id was used before, so the publisher clears its topics
 * (mqtt-publisher.ts #clearRetiredGateways), and `instances` which processes of this data
 * directory published under each id (the `instance` of their availability payloads, the last
 * MAX_INSTANCES): only an old id whose retained availability one of them wrote is this gateway's to
 * clear; one another gateway publishes under now (a copy of this data directory or of its
 * configuration on another box) is that gateway's. With the embedded broker retained topics die
 * with the process and the file is not used.
 */
export const PUBLISHED_IDS_FILE = 'mqtt-published.json';

/** Instances kept per id in PUBLISHED_IDS_FILE (one per start): a start that never reached the broker does not push out the one whose availability is there. */
const MAX_INSTANCES = 20;

interface PublishedIds {
  broker: string;
  gatewayIds: string[];
  /** By gateway id: the instances (processes) of this data directory that published under it, oldest first. */
  instances: Record<string, string[]>;
}

function stringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function readPublishedIds(file: string, log: Logger): PublishedIds | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('cannot read the MQTT ids file; former gateway ids are not cleared from the broker', { file, error: describeError(err) });
    return undefined;
  }
  try {
    const v = JSON.parse(text) as { broker?: unknown; gatewayIds?: unknown; instances?: unknown };
    // Ids as gateway.id allows them: one edited to `+` or with a `/` would name other gateways' topics.
    if (typeof v.broker === 'string' && stringArray(v.gatewayIds) && v.gatewayIds.every((id) => ID_PATTERN.test(id))) {
      const instances: Record<string, string[]> = {};
      const given = v.instances !== null && typeof v.instances === 'object' ? (v.instances as Record<string, unknown>) : {};
      for (const id of v.gatewayIds) {
        const list = given[id];
        instances[id] = stringArray(list) ? list.slice(-MAX_INSTANCES) : [];
      }
      return { broker: v.broker, gatewayIds: v.gatewayIds, instances };
    }
  } catch {
    // reported below
  }
  log.warn('the MQTT ids file is not readable JSON (or names an id gateway.id cannot be); it is written again, former gateway ids are not cleared from the broker', { file });
  return undefined;
}

export class MqttStatus implements Component {
  readonly name = 'mqtt-status';
  #status: ComponentStatus = 'created';
  readonly #o: MqttStatusOptions;
  readonly broker: EmbeddedBroker | undefined;
  #publisher: MqttStatusPublisher | undefined;

  constructor(options: MqttStatusOptions) {
    this.#o = options;
    const b = options.config.mqtt.broker;
    if (b === 'embedded') {
      this.broker = new EmbeddedBroker({ config: options.config.mqtt, log: options.log, gatewayId: options.config.gateway.id });
    } else {
      // The rule `check` applies (config/validate.ts): mqtt(s):// and ws(s):// alike, since
      // mqtt.js connects over WebSockets too (a broker that IT exposes only behind a web proxy).
      const problem = mqttBrokerProblem(b);
      if (problem) throw new GatewayError('GW_CONFIG_INVALID', `mqtt.broker: ${problem}`, { details: { path: 'mqtt.broker' } });
    }
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  /** Former gateway ids on this broker whose retained topics are still to be cleared, with the instances of this data directory that published under each. */
  readonly #retiredLeft = new Map<string, string[]>();
  /** This process's instance (in its availability payloads), and those before it under the current id. */
  readonly #instance = randomUUID();
  #instances: string[] = [];

  /**
   * The former ids of this gateway on the configured external broker (PUBLISHED_IDS_FILE), and the
   * file written again with the current id first and this process's instance. Written before
   * connecting: a gateway stopped before the clearing is done clears them at its next start.
   */
  #retiredGatewayIds(): Map<string, string[]> {
    const cfg = this.#o.config;
    const file = path.join(cfg.gateway.dataDir, PUBLISHED_IDS_FILE);
    const broker = displayUrl(cfg.mqtt.broker);
    const before = readPublishedIds(file, this.#o.log);
    if (before && before.broker !== broker) {
      const ids = before.gatewayIds.filter((id) => id !== cfg.gateway.id);
      if (ids.length > 0) {
        this.#o.log.warn('the gateway published to another MQTT broker before, under other ids: their retained topics stay there until cleared on that broker', { formerBroker: before.broker, formerGatewayIds: ids });
      }
    }
    const same = before?.broker === broker ? before : undefined;
    for (const id of same?.gatewayIds ?? []) if (id !== cfg.gateway.id) this.#retiredLeft.set(id, same?.instances[id] ?? []);
    this.#instances = [...(same?.instances[cfg.gateway.id] ?? []), this.#instance].slice(-MAX_INSTANCES);
    this.#writePublishedIds();
    return new Map(this.#retiredLeft);
  }

  #writePublishedIds(): void {
    const cfg = this.#o.config;
    const file = path.join(cfg.gateway.dataDir, PUBLISHED_IDS_FILE);
    const body: PublishedIds = {
      broker: displayUrl(cfg.mqtt.broker),
      gatewayIds: [cfg.gateway.id, ...this.#retiredLeft.keys()],
      instances: Object.fromEntries([[cfg.gateway.id, this.#instances], ...this.#retiredLeft]),
    };
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(body) + '\n');
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.#o.log.warn('cannot write the MQTT ids file; a later change of gateway.id leaves this id\'s retained topics on the broker', { file, error: describeError(err) });
    }
  }

  get publisher(): MqttStatusPublisher | undefined {
    return this.#publisher;
  }

  async start(): Promise<void> {
    if (this.#status !== 'created') return;
    this.#status = 'starting';
    try {
      const cfg = this.#o.config;
      let publisher: MqttStatusPublisher;
      const common = {
        gatewayId: cfg.gateway.id,
        model: this.#o.model,
        log: this.#o.log,
        publishIntervalMs: cfg.mqtt.publishIntervalMs,
        instance: this.#instance,
        ...(this.#o.coalesceMs !== undefined ? { coalesceMs: this.#o.coalesceMs } : {}),
      };
      if (this.broker) {
        await this.broker.start();
        publisher = new MqttStatusPublisher({
          ...common,
          url: this.broker.loopbackUrl(),
          username: INTERNAL_USERNAME,
          password: this.broker.internalPassword,
          // The one id the broker refuses to every other client.
          clientId: this.broker.publisherClientId,
          // Its retained topics die with the process: none of a removed endpoint to clear.
          clearRemovedEndpoints: false,
        });
      } else {
        const creds = readMqttCredentials(cfg.mqtt);
        const retired = this.#retiredGatewayIds();
        publisher = new MqttStatusPublisher({
          ...common,
          retiredGatewayIds: retired,
          onRetiredDone: (id) => {
            this.#retiredLeft.delete(id);
            this.#writePublishedIds();
          },
          url: cfg.mqtt.broker,
          ...(creds ? { username: creds.username, password: creds.password } : {}),
          ...(cfg.mqtt.tls ? { tls: { ...(cfg.mqtt.tls.ca ? { ca: cfg.mqtt.tls.ca } : {}), cert: cfg.mqtt.tls.cert, key: cfg.mqtt.tls.key } } : {}),
        });
      }
      this.#publisher = publisher;
      await publisher.start();
      this.#status = 'running';
    } catch (err) {
      this.#status = 'failed';
      await this.#publisher?.stop(500);
      await this.broker?.stop(500);
      throw err;
    }
  }

  async stop(deadlineMs = 3000): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'stopping') return;
    this.#status = 'stopping';
    await this.#publisher?.stop(deadlineMs);
    await this.broker?.stop(deadlineMs);
    this.#status = 'stopped';
  }
}
