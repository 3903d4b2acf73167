import type { GatewayConfig } from '../config/types.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { GatewayError } from '../errors.ts';
import { mqttBrokerProblem } from '../config/validate.ts';
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
        publisher = new MqttStatusPublisher({
          ...common,
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
