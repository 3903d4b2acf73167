/**
 * The composition root: the only module that wires the stages together (DESIGN.md §1).
 * Start order follows the data backwards so nothing is acknowledged before it can be kept and
 * shown: store → Odoo link (or the sandbox) → status model → relay → status (HTTP, MQTT) →
 * ingress. The status model, a listener only, starts before the relay so that it sees the link's
 * first states; alerts raised before it subscribed are kept for it (Telemetry.takeStartupAlerts).
 * Stop order is the data flow: ingress first (no new ACKs), then the relay, the sandbox, the HTTP
 * status, MQTT (it publishes the final `offline`), the store last. The status model is told first
 * that the gateway is stopping (markStopping): what the stopping links do is no news for the lab.
 */
import type { GatewayConfig, AnalyzerConfig, Hl7EndpointConfig } from './config/types.ts';
import { displayUrl } from './config/display-url.ts';
import { applyTimeZone, timeZoneIssues } from './config/time-zone.ts';
import type { Component } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { createLogger } from './log.ts';
import { Telemetry } from './telemetry.ts';
import { describeError, type ErrorCode, GatewayError, isGatewayError } from './errors.ts';
import { EventStore } from './store/event-store.ts';
import { billingRetention, invoiceEligibility } from './events/invoice-eligibility.ts';
import { StatusModel } from './status/status-model.ts';
import { StatusServer } from './status/http-server.ts';
import { MqttStatus } from './status/mqtt-status.ts';
import { MllpEndpoint } from './ingress/mllp/mllp-endpoint.ts';
import { AstmEndpoint } from './ingress/astm/astm-endpoint.ts';
import { resolveAnalyzerResult } from './astm/accessions.ts';
import { normalizeAstmMessage } from './astm/normalize.ts';
import { answerHostQuery, hl7HostQueryAnswer, type OrderCollision, type OrderLookupOptions } from './astm/host-query.ts';
import { applyAccessionPrefix } from './hl7/accession-namespace.ts';
import { normalizeLis } from './hl7/normalize-lis.ts';
import { productionOnly } from './hl7/processing-id.ts';
import { OrderDownload } from './astm/order-download.ts';
import { resolveAnalyzerProfile } from './profiles/load.ts';
import { defaultProfilesDir } from './profiles/check.ts';
import type { HostQuery } from './astm/types.ts';
import type { Profile } from './profiles/types.ts';
import { createAnalyzerHl7Normalizer } from './profiles/hl7-analyzer-normalize.ts';
import type { Hl7HostQuery } from './hl7/host-query.ts';
import { OdooClient } from './relay/odoo/odoo-client.ts';
import { Relay } from './relay/relay.ts';
import { dueDelayFor } from './relay/sync-modes.ts';
import { adoptOdooTarget, checkStoreUse, describeOdooTarget, storeUseEndpoints, odooTargetChangeMessage, odooTargetOf } from './relay/odoo-target.ts';
import { Sandbox } from './sandbox.ts';
import { VERSION } from './version.ts';

/** How long a stop during start-up waits for the current start step before stopping what is open. */
const STARTUP_STEP_WAIT_MS = 3_000;

export interface GatewayOptions {
  config: GatewayConfig;
  /**
   * `lab-gateway demo`: the store is marked the demo's, and refused when a gateway used it; a
   * gateway with a real Odoo refuses a store so marked (relay/odoo-target.ts checkStoreUse).
   * `dataDir` names the data dir as the user gave it (its --data-dir), for the refusal.
   */
  demo?: { dataDir: string };
  log?: Logger;
  telemetry?: Telemetry;
}

export interface GatewayAddresses {
  gatewayId: string;
  dataDir: string;
  hl7: Record<string, { host: string; port: number }>;
  analyzers: Record<string, { host?: string; port?: number; serial?: string; connect?: string }>;
  status: { host: string; port: number; url: string };
  mqtt: { url: string };
  odoo: { url: string; sandbox: boolean };
}

type Ingress = Component & { address?: () => { host: string; port: number } | undefined };

export class Gateway {
  readonly config: GatewayConfig;
  readonly #demo: { dataDir: string } | undefined;
  readonly log: Logger;
  readonly telemetry: Telemetry;
  readonly startedAt = new Date().toISOString();
  store: EventStore | undefined;
  sandbox: Sandbox | undefined;
  odoo: OdooClient | undefined;
  relay: Relay | undefined;
  statusModel: StatusModel | undefined;
  statusServer: StatusServer | undefined;
  mqtt: MqttStatus | undefined;
  readonly ingress: Array<{ id: string; kind: 'hl7' | 'astm'; component: Ingress }> = [];
  /** ASTM analyzers that get LIS orders pushed as order downloads (analyzers[].pushOrders). */
  readonly #orderDownload: OrderDownload[] = [];
  #stopping: Promise<void> | undefined;
  /** The start-up in progress (settles, never rejects), for stop() to wait on. */
  #starting: Promise<void> | undefined;
  /** Components already stopped (a stop during start-up may tear down twice). */
  readonly #tornDown = new WeakSet<object>();
  #started = false;
  /** Puts TZ back as it was before start applied gateway.timeZone. */
  #restoreTimeZone: () => void = () => undefined;

  constructor(options: GatewayOptions) {
    this.config = options.config;
    this.#demo = options.demo;
    this.telemetry = options.telemetry ?? new Telemetry();
    this.log = options.log ?? createLogger({ level: options.config.gateway.logLevel, bindings: { gateway: options.config.gateway.id } });
    this.#logTelemetry();
  }

  /**
   * Start everything; on any failure stops what was started and rethrows. A stop() that arrives
   * during start-up is honoured between start steps: start-up stops opening things, stop() tears
   * down what was opened, and start() rejects with GW_SHUTTING_DOWN.
   */
  async start(): Promise<GatewayAddresses> {
    if (this.#stopping) throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is stopping; it cannot start');
    const run = this.#start();
    this.#starting = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await run;
    } catch (err) {
      if (this.#stopping) {
        // stop() was called during start-up: it stops what was open; a step that finished after
        // that (it waits only so long) is stopped here.
        this.log.info('start-up interrupted: the gateway is stopping', { at: describeError(err) });
        await this.#stopping;
        await this.#teardown(() => 2_000);
        throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway was stopped during start-up', { cause: err });
      }
      this.log.error('start-up failed', { error: describeError(err) });
      await this.stop(5_000).catch(() => undefined);
      throw err;
    } finally {
      this.#starting = undefined;
    }
  }

  /** Between start steps: give up when stop() was called meanwhile. */
  #checkNotStopping(step: string): void {
    if (this.#stopping) throw new GatewayError('GW_SHUTTING_DOWN', `start-up stopped before ${step}`);
  }

  async #start(): Promise<GatewayAddresses> {
    const cfg = this.config;
    // The lab's zone first, before anything reads a time: analyzer and LIS times without an offset
    // are read in it, times written to analyzers written in it (config/time-zone.ts).
    let zone: ReturnType<typeof applyTimeZone>;
    try {
      zone = applyTimeZone(cfg);
    } catch (err) {
      throw new GatewayError('GW_CONFIG_INVALID', (err as Error).message);
    }
    this.#restoreTimeZone = zone.restore;
    this.log.info('starting', { version: VERSION, timeZone: zone.timeZone, timeZoneFrom: zone.from });
    for (const issue of timeZoneIssues(cfg)) this.log.warn('time zone not set', { key: issue.path, message: issue.message });
    const profiles = this.#loadProfiles();

    this.store = await EventStore.open({
      dataDir: cfg.gateway.dataDir,
      dueDelayMs: dueDelayFor(cfg.relay),
      backoff: cfg.relay.backoff,
      retention: cfg.store,
      minFreeBytes: cfg.store.minFreeBytes,
      deriver: invoiceEligibility,
      // An order's billing events outlive store.retentionDays until it is billed in full.
      retentionHold: billingRetention,
      // Order download (analyzers[].pushOrders): LIS orders and cancels into each analyzer's outbox.
      onCommitted: (events) => {
        for (const download of this.#orderDownload) download.onCommitted(events);
      },
      // The status model raises STORE_DOWN (critical) once when the store stops committing and
      // STORE_DOWN_CLEARED when it commits again; a change of reason alone (the free byte count of
      // a full disk, every 2 s) updates its message without another alert.
      onHealth: (health, reason) => {
        if (health === 'closed') return;
        this.telemetry.emit('store.health', { state: health, ...(reason ? { reason } : {}) });
      },
    });
    const store = this.store;
    // Another Odoo than last time (the sandbox, then the site's own): what the store kept of the
    // earlier one (reference data, stock reorder marks keyed by its ids) goes before the relay reads it.
    const odooTarget = odooTargetOf(cfg.odoo);
    // The demo and a real gateway never share a store (both default to ./var): checked before anything is written.
    const use = { gatewayId: cfg.gateway.id, demo: this.#demo !== undefined, dataDir: this.#demo?.dataDir ?? cfg.gateway.dataDir, endpoints: storeUseEndpoints(cfg) };
    const shared = await checkStoreUse(store, odooTarget, use);
    if (shared.warning) {
      this.log.warn(shared.demoStore ? 'the data dir is the demo\'s' : 'the demo ran on the data dir', { dataDir: cfg.gateway.dataDir, message: shared.warning });
      // Also where IT and the lab look (the tray, the MQTT alerts topic): the demo's fake orders,
      // results and consumption in the queue are for someone to discard before finance sees them.
      this.telemetry.alert('warning', 'DEMO_DATA_IN_STORE', shared.warning);
    }
    const targetChange = await adoptOdooTarget(store, odooTarget, undefined, { ...use, demoStore: shared.demoStore });
    if (targetChange) {
      this.log.info('Odoo target changed: local state of the earlier Odoo reset', { from: describeOdooTarget(targetChange.from), to: describeOdooTarget(targetChange.to), reset: targetChange.reset });
      // Alerts raised before the status starts are kept for it (Telemetry.takeStartupAlerts): the
      // MQTT alerts topic and the tray get this one once MQTT is up.
      this.telemetry.alert('info', 'ODOO_TARGET_CHANGED', odooTargetChangeMessage(targetChange));
    }
    this.#checkNotStopping('the Odoo link');

    // Odoo: the configured server, or the in-process sandbox that keeps its records under dataDir.
    const odooDeps = { telemetry: this.telemetry, log: this.log.child({ component: 'odoo' }) };
    if (cfg.odoo.url === undefined) {
      this.sandbox = new Sandbox(cfg.gateway.dataDir, cfg.odoo);
      await this.sandbox.start();
      this.odoo = this.sandbox.client(cfg.odoo, odooDeps);
      this.#checkNotStopping('the relay');
    } else {
      // The key is read from odoo.apiKeyFile / odoo.apiKeyEnv (never from the config itself).
      this.odoo = OdooClient.fromConfig(cfg.odoo, odooDeps);
    }
    this.relay = new Relay({
      store,
      odoo: this.odoo,
      config: cfg.relay,
      odooConfig: cfg.odoo,
      odooTarget,
      telemetry: this.telemetry,
      log: this.log.child({ component: 'relay' }),
    });
    // Status: one model, read by the HTTP server and the MQTT publisher. It subscribes to the
    // telemetry before the relay starts, so that it sees the link's first states: a relay turned
    // off (relay.enabled false) says `disabled` as it starts, and the page showed "connecting"
    // for ever when the model subscribed after that.
    const relay = this.relay;
    this.statusModel = new StatusModel({
      config: cfg,
      store,
      telemetry: this.telemetry,
      version: VERSION,
      startedAt: this.startedAt,
      relayPaused: () => relay.snapshot().paused,
    });
    await this.statusModel.start();
    this.#checkNotStopping('the relay');
    // Turned off, the relay only says so (odoo.state `disabled`) and checks the clock: it sends nothing.
    await this.relay.start();
    this.#checkNotStopping('the status API');
    // A committed message wakes the relay at once instead of at its next poll.
    this.telemetry.on('intake.message', (e) => {
      if (e.outcome === 'accepted') this.relay?.notify();
    });
    const sandbox = this.sandbox;
    this.statusServer = new StatusServer({
      config: cfg,
      store,
      telemetry: this.telemetry,
      log: this.log.child({ component: 'status' }),
      version: VERSION,
      startedAt: this.startedAt,
      model: this.statusModel,
      relayControl: {
        pause: (detail) => relay.pause(detail),
        resume: () => relay.resume(),
        get paused() {
          return relay.snapshot().paused;
        },
        get pausedBy() {
          return relay.pausedBy;
        },
      },
      ...(sandbox ? { sandbox: { summary: () => sandbox.summary() } } : {}),
      // Started below: /metrics reads its counters at each scrape, once it runs.
      mqttBroker: () => this.mqtt?.broker,
    });
    await this.statusServer.start();
    this.#checkNotStopping('MQTT');
    this.mqtt = new MqttStatus({ config: cfg, model: this.statusModel, log: this.log.child({ component: 'mqtt' }) });
    await this.mqtt.start();
    this.#checkNotStopping('the listeners');

    // Ingress last: only now can a message be kept, relayed and shown.
    for (const ep of cfg.hl7) this.#addHl7(ep);
    for (const analyzer of cfg.analyzers) {
      const profile = profiles.get(analyzer.id) as Profile;
      if (profile.protocol === 'hl7-mllp') this.#addHl7Analyzer(analyzer, profile);
      else this.#addAstm(analyzer, profile);
    }
    // Order download turned off: its cursor goes, so turning it on again starts from then.
    await OrderDownload.forgetOtherCursors(
      this.store,
      cfg.analyzers.filter((a) => a.pushOrders).map((a) => a.id),
    );
    // What waits for each of those analyzers (how many orders, since when, the last refusal) on its status entry.
    const statusModel = this.statusModel;
    for (const download of this.#orderDownload) download.onSummary((summary) => statusModel.setOrderDownload(download.analyzerId, summary));
    for (const { id, component } of this.ingress) {
      this.#checkNotStopping(`listener ${id}`);
      await component.start();
    }
    this.#checkNotStopping('ready');
    this.#started = true;
    return this.addresses();
  }

  /**
   * Every analyzer's profile, before anything is opened. Problems are named by the analyzer's key
   * (`analyzers[<index>].profile`, as `lab-gateway check` names them), all at once.
   */
  #loadProfiles(): Map<string, Profile> {
    const out = new Map<string, Profile>();
    const problems: Array<{ code: ErrorCode; text: string }> = [];
    this.config.analyzers.forEach((a, i) => {
      const at = `analyzers[${i}]`;
      let profile: Profile;
      try {
        profile = resolveAnalyzerProfile(a, this.config.profilesDir ?? defaultProfilesDir());
      } catch (err) {
        const code: ErrorCode = isGatewayError(err) ? err.code : 'GW_PROFILE_INVALID';
        problems.push({ code, text: `${code === 'GW_CONFIG_INVALID' ? `${at}.overrides` : `${at}.profile`}: ${(err as Error).message}` });
        return;
      }
      const name = profile.name ?? a.profile;
      if (profile.protocol === 'hl7-mllp') {
        if (!a.tcp?.listen) problems.push({ code: 'GW_CONFIG_INVALID', text: `${a.tcp?.connect ? `${at}.tcp.connect` : `${at}.serial`}: profile ${name} speaks HL7 over MLLP and needs tcp.listen` });
        if (a.pushOrders) problems.push({ code: 'GW_CONFIG_INVALID', text: `${at}.pushOrders: profile ${name} speaks HL7; its analyzers ask for orders by host query and take no pushed orders` });
      } else if (a.pushOrders && !profile.hostQuery.supported) {
        problems.push({ code: 'GW_CONFIG_INVALID', text: `${at}.pushOrders: profile ${a.profile} does not describe order download (hostQuery)` });
      }
      out.set(a.id, profile);
    });
    if (problems.length) {
      // One code for the lot: "unknown" only when every problem is an unknown profile.
      const codes = new Set(problems.map((p) => p.code));
      const code: ErrorCode = codes.size === 1 ? problems[0]!.code : codes.has('GW_CONFIG_INVALID') ? 'GW_CONFIG_INVALID' : 'GW_PROFILE_INVALID';
      throw new GatewayError(code, problems.map((p) => p.text).join('\n'));
    }
    return out;
  }

  #addHl7(ep: Hl7EndpointConfig): void {
    const store = this.store as EventStore;
    const prefix = ep.analyzer ? undefined : ep.accessionPrefix;
    const component = new MllpEndpoint({
      config: ep,
      store,
      telemetry: this.telemetry,
      log: this.log.child({ endpoint: ep.id }),
      // Named as check names it (config/validate.ts): the entry's place in the list.
      listenKey: `hl7[${this.config.hl7.indexOf(ep)}].listen`,
      // A second LIS's accession namespace (hl7[].accessionPrefix): its orders and results are
      // keyed `<prefix>-<accession>` before the commit; a pure step that reads no store.
      ...(prefix ? { resolveEvents: (draft) => Promise.resolve(applyAccessionPrefix(draft, prefix)) } : {}),
      // Posting to a production Odoo: training and debugging messages (MSH-11 T/D) are refused
      // AR 202 and kept (hl7/processing-id.ts); the sandbox takes them as usual.
      ...(odooTargetOf(this.config.odoo).sandbox ? {} : { normalize: productionOnly(normalizeLis) }),
    });
    this.ingress.push({ id: ep.id, kind: 'hl7', component });
  }

  /**
   * How an analyzer's barcode finds its LIS order: across the accession prefixes of the LIS links
   * (`12345` is also `OUT-12345`), and a barcode whose orders collide (two LIS links, or two
   * patients) raises a warning alert naming the tube, the accessions and the links.
   */
  #orderLookup(analyzerId: string, use: 'host-query' | 'result' | 'download'): OrderLookupOptions {
    const lis = this.config.hl7.filter((h) => !h.analyzer);
    const namespaces = [...new Set(lis.flatMap((h) => (h.accessionPrefix ? [h.accessionPrefix] : [])))];
    // Only the LIS links' messages hold orders: an analyzer's own are not read for them.
    const lisEndpoints = lis.map((h) => h.id);
    return {
      ...(namespaces.length > 0 ? { namespaces } : {}),
      lisEndpoints,
      onCollision: (c: OrderCollision) => {
        // An order whose number the barcode carries keeps the tube (astm/host-query.ts tubeOrders).
        const kept = c.kept?.join(', ');
        const what = kept
          ? `${kept} keeps the tube, and ${use === 'host-query' ? 'the analyzer was not asked for the other orders\' tests' : use === 'download' ? 'the other orders\' tests were not downloaded (those the analyzer had are cancelled)' : 'results of tests only the other orders asked for are attached to none of them'}`
          : use === 'host-query'
            ? 'the analyzer was answered "no order" for it'
            : use === 'download'
              ? 'none of their tests is downloaded (those the analyzer had are cancelled)'
              : 'its results are attached to none of them';
        const whose = c.differentPatients ? ' for different patients' : '';
        // Orders under the barcode's upper and lower case (astm/host-query.ts barcodeOrders): a
        // prefix would not tell them apart. Before, this alert said they share the barcode.
        const how = c.byCase ? 'differ from this barcode only by case (no order has it as the analyzer sent it)' : 'share this barcode';
        const advice = c.byCase ? 'Read the label and sort the tube out by hand' : 'Sort the tube out by hand; two LIS systems numbering alike need hl7[].accessionPrefix on one of them (README.md "Two LIS systems")';
        this.telemetry.alert(
          'warning',
          'ACCESSION_COLLISION',
          `tube ${c.specimenId} on ${analyzerId}: orders ${c.accessions.join(', ')} from LIS link(s) ${c.endpoints.join(', ')}${whose} ${how}, and ${what}. ${advice}`,
          analyzerId,
        );
      },
    };
  }

  /**
   * An analyzer that speaks HL7 over MLLP (Mindray BS/BC): the MLLP listener with its profile's
   * normalizer, tube barcodes resolved to their LIS order's accession, and host queries (QRY^Q02)
   * answered when the profile describes them.
   */
  #addHl7Analyzer(analyzer: AnalyzerConfig, profile: Profile): void {
    const store = this.store as EventStore;
    // #loadProfiles refused tcp.connect, serial and pushOrders for HL7 analyzers before anything opened.
    const listen = analyzer.tcp?.listen;
    if (!listen) throw new GatewayError('GW_CONFIG_INVALID', `analyzers[${this.config.analyzers.indexOf(analyzer)}]: profile ${profile.name ?? analyzer.profile} speaks HL7 over MLLP and needs tcp.listen`);
    const ep: Hl7EndpointConfig = {
      id: analyzer.id,
      listen,
      ack: 'original',
      maxMessageBytes: 16 * 1024 * 1024,
      idleTimeoutMs: 0,
      maxConnections: 4,
      unknownMessageTypes: 'accept',
      defaultCharset: 'utf8',
      analyzer: analyzer.id,
    };
    const component = new MllpEndpoint({
      config: ep,
      store,
      telemetry: this.telemetry,
      log: this.log.child({ endpoint: analyzer.id }),
      // The analyzer's own key: it has no hl7[] entry.
      listenKey: `analyzers[${this.config.analyzers.indexOf(analyzer)}].tcp.listen`,
      normalize: createAnalyzerHl7Normalizer({ analyzerId: analyzer.id, profile }),
      // A tube barcode read by the analyzer is resolved to its order's accession before the commit,
      // as for ASTM analyzers (the LIS endpoint, #addHl7, resolves nothing).
      resolveEvents: (draft) => resolveAnalyzerResult(draft, store, this.#orderLookup(analyzer.id, 'result')),
      ...(profile.hostQuery.supported ? { answerQuery: (query: Hl7HostQuery) => hl7HostQueryAnswer(query.specimenId, store, profile, this.#orderLookup(analyzer.id, 'host-query')) } : {}),
    });
    this.ingress.push({ id: analyzer.id, kind: 'hl7', component });
  }

  #addAstm(analyzer: AnalyzerConfig, profile: Profile): void {
    const store = this.store as EventStore;
    let download: OrderDownload | undefined;
    const component = new AstmEndpoint<HostQuery>({
      analyzer,
      profile,
      store,
      telemetry: this.telemetry,
      log: this.log.child({ endpoint: analyzer.id }),
      // A tube barcode read by the analyzer is resolved to its order's accession before the commit.
      normalize: (text, ctx) => resolveAnalyzerResult(normalizeAstmMessage(text, { analyzerId: analyzer.id, endpoint: analyzer.id, profile, receivedAt: ctx.receivedAt }), store, this.#orderLookup(analyzer.id, 'result')),
      // What a query answer the analyzer took asks it to run is downloaded already
      // (astm/order-download.ts answeredByQuery); an answer refused or lost with its link is not.
      answerHostQuery: async (query) => {
        const answered: Array<Parameters<OrderDownload['answeredByQuery']>[0]> = [];
        const records = await answerHostQuery(query, store, profile, { ...this.#orderLookup(analyzer.id, 'host-query'), onAnswered: (a) => answered.push(a) });
        return { records, delivered: () => answered.forEach((a) => download?.answeredByQuery(a)) };
      },
      onLink: () => download?.onLink(),
      // Named as check names it (config/validate.ts): the entry's place in the list.
      configKey: `analyzers[${this.config.analyzers.indexOf(analyzer)}]`,
    });
    this.ingress.push({ id: analyzer.id, kind: 'astm', component });
    // #loadProfiles refused pushOrders for a profile without order download.
    if (analyzer.pushOrders) {
      // Durable per-analyzer outbox, sent when a connection opens (astm/order-download.ts).
      download = new OrderDownload({ analyzerId: analyzer.id, profile, link: component, store, lookup: this.#orderLookup(analyzer.id, 'download'), retentionDays: this.config.store.retentionDays, telemetry: this.telemetry, log: this.log.child({ endpoint: analyzer.id, component: 'order-download' }) });
      this.#orderDownload.push(download);
    }
  }

  addresses(): GatewayAddresses {
    const hl7: GatewayAddresses['hl7'] = {};
    const analyzers: GatewayAddresses['analyzers'] = {};
    for (const { id, kind, component } of this.ingress) {
      const a = component.address?.();
      const analyzerCfg = this.config.analyzers.find((x) => x.id === id);
      if (kind === 'hl7' && !analyzerCfg && a) hl7[id] = a;
      else if (analyzerCfg) {
        analyzers[id] = {
          ...(a ? { host: a.host, port: a.port } : {}),
          ...(analyzerCfg.serial ? { serial: analyzerCfg.serial.path } : {}),
          ...(analyzerCfg.tcp?.connect ? { connect: `${analyzerCfg.tcp.connect.host}:${analyzerCfg.tcp.connect.port}` } : {}),
        };
      }
    }
    const s = this.statusServer?.address() ?? this.config.status.listen;
    return {
      gatewayId: this.config.gateway.id,
      dataDir: this.config.gateway.dataDir,
      hl7,
      analyzers,
      status: { host: s.host, port: s.port, url: `http://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}/` },
      // Printed on the ready line and by the demo: never with a user name or password in them.
      mqtt: { url: this.config.mqtt.broker === 'embedded' ? `mqtt://${this.config.mqtt.listen.host}:${this.mqtt?.broker?.address()?.port ?? this.config.mqtt.listen.port}` : displayUrl(this.config.mqtt.broker) },
      odoo: { url: displayUrl(this.sandbox?.url ?? this.config.odoo.url ?? ''), sandbox: this.sandbox !== undefined },
    };
  }

  get started(): boolean {
    return this.#started;
  }

  /**
   * The process is about to stop on an error of its own (an uncaught exception): the store notes
   * which events were being delivered, so that an event that stops the gateway each time it is
   * sent is held after a few such stops instead of a crash loop (EventStore.noteCrash).
   */
  noteCrash(error: unknown): void {
    this.store?.noteCrash(error);
  }

  /**
   * Idempotent graceful stop within `deadlineMs`: ingress, relay, sandbox, status, MQTT, store.
   * During start-up it first waits (a bounded time) for start() to finish its current step and
   * give up; start-up opens nothing once stop() was called, and whatever its last step opened
   * after this teardown is closed by start() itself before it rejects.
   */
  stop(deadlineMs = 10_000): Promise<void> {
    if (this.#stopping) return this.#stopping;
    // Before anything stops: links stopped are the gateway no longer looking, not alarms over
    // (no ENDPOINT_DOWN_CLEARED for an analyzer still unplugged), and the status says `stopping`.
    this.statusModel?.markStopping();
    this.#stopping = (async () => {
      const deadline = Date.now() + deadlineMs;
      const left = (): number => Math.max(500, deadline - Date.now());
      const starting = this.#starting;
      if (starting) {
        this.log.info('stop requested during start-up; waiting for the current start step');
        let timer: NodeJS.Timeout | undefined;
        const waitMs = Math.min(STARTUP_STEP_WAIT_MS, deadlineMs / 2);
        const settled = await Promise.race([starting.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), waitMs)))]);
        clearTimeout(timer);
        if (!settled) this.log.warn('the current start step is still running; stopping what is open (start-up opens nothing more)');
      }
      await this.#teardown(left);
      this.log.info('stopped');
    })();
    return this.#stopping;
  }

  /** Stop every component not stopped yet, in the data-flow order. */
  async #teardown(left: () => number): Promise<void> {
    const step = async (name: string, target: object | undefined, fn: () => Promise<void> | void): Promise<void> => {
      if (!target || this.#tornDown.has(target)) return;
      this.#tornDown.add(target);
      try {
        await fn();
      } catch (err) {
        this.log.warn(`stopping ${name} failed`, { error: describeError(err) });
      }
    };
    await Promise.all(this.ingress.map(({ id, component }) => step(id, component, () => component.stop(left()))));
    // Order download documents of orders committed last are written before the store closes:
    // once LevelDB has every batch (flush), the store has handed their events to onCommitted, and
    // the documents they make are written by d.stop().
    if (this.#orderDownload.length > 0) await this.store?.flush().catch(() => undefined);
    await Promise.all(this.#orderDownload.map((d) => step('order download', d, () => d.stop())));
    await step('relay', this.relay, () => this.relay?.stop(left()));
    await step('odoo', this.odoo, () => this.odoo?.close());
    await step('sandbox', this.sandbox, () => this.sandbox?.close());
    await step('status', this.statusServer, () => this.statusServer?.stop(left()));
    await step('status-model', this.statusModel, () => this.statusModel?.stop());
    await step('mqtt', this.mqtt, () => this.mqtt?.stop(left()));
    await step('store', this.store, () => this.store?.close());
    // TZ as it was before start (a gateway run inside another program: the tests).
    this.#restoreTimeZone();
    this.#restoreTimeZone = () => undefined;
  }

  /** Structured log lines from the typed telemetry (components never import the logger). */
  #logTelemetry(): void {
    const t = this.telemetry;
    t.on('endpoint.state', (e) => this.log.info('endpoint state', { endpoint: e.endpoint, kind: e.kind, state: e.state, connections: e.connections, ...(e.detail ? { detail: e.detail } : {}) }));
    t.on('store.health', (e) => (e.state === 'ok' ? this.log.info('store healthy') : this.log.error('store cannot commit', { state: e.state, reason: e.reason })));
    t.on('odoo.state', (e) => this.log.info('odoo link', { state: e.state, ...(e.lastError ? { lastError: e.lastError } : {}), ...(e.serverVersion ? { serverVersion: e.serverVersion } : {}) }));
    t.on('alert', (e) => this.log.warn('alert', { severity: e.severity, code: e.code, message: e.message }));
    t.on('intake.message', (e) => {
      if (e.outcome === 'rejected') this.log.warn('message rejected', { endpoint: e.endpoint, reason: e.reason, messageType: e.messageType });
    });
    // Dead letters are logged by the relay itself, with the reason.
  }
}
