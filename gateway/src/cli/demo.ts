/**
 * `lab-gateway demo` (what `npm start` runs): the gateway on embedded defaults with the sandbox
 * Odoo, a simulated LIS sending orders and validated results over MLLP, and a simulated chemistry
 * analyzer (Roche cobas c 111 profile) sending runs over ASTM E1381/TCP — patient runs for the
 * LIS's orders and a QC run now and then. Records appear in the sandbox as a user watches the
 * status page.
 */
import net from 'node:net';
import { validateConfig } from '../config/validate.ts';
import { formatIssues } from '../config/load.ts';
import { Gateway } from '../gateway.ts';
import { GatewayError, describeError } from '../errors.ts';
import { MllpClient } from '../ingress/mllp/mllp-client.ts';
import { createLinkSession } from '../ingress/astm/create-link-session.ts';
import { resolveLinkOptions } from '../ingress/astm/link-options.ts';
import { realScheduler } from '../ingress/astm/scheduler.ts';
import type { AstmLinkSession } from '../ingress/astm/link-session.ts';
import { loadProfile } from '../profiles/load.ts';
import { defaultProfilesDir } from '../profiles/check.ts';
import type { Sandbox } from '../sandbox.ts';
import { DEMO_ANALYZER_ID, DEMO_GATEWAY_ID, DEMO_LIS_ID } from '../relay/odoo-target.ts';
import { args, UsageError, type CliContext } from './main.ts';
import { runUntilSignal } from './start.ts';

const DEMO_PROFILE = 'roche-cobas-c111';
/** Tests the simulated LIS orders: chemistry the c 111 runs and the sandbox sells. */
const DEMO_TESTS = ['GLU', 'CREA', 'ALT'] as const;
const CLIENTS = ['CLINIC-A', 'CLINIC-B'] as const;

const hl7Time = (d = new Date()): string => d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
const astmTime = hl7Time;

export interface DemoOptions {
  dataDir: string;
  hl7Port: number;
  statusPort: number;
  mqttPort: number;
  /** Seconds between new orders. */
  intervalSeconds: number;
  /** Stop after this many seconds (0 = until a signal). */
  durationSeconds: number;
}

/**
 * A numeric option, or a usage error (exit 2) naming it: `Number('abc')` is NaN, and a NaN
 * interval made the simulated LIS send as fast as timers fire; a NaN port reached the
 * configuration as a failed check (exit 1) instead of a mistyped argument.
 */
function numberOption(name: string, raw: string | undefined, min: number, max: number, integer: boolean): number {
  const n = raw === undefined || raw.trim() === '' ? Number.NaN : Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(`demo ${name} needs ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} (found "${raw ?? ''}")`);
  }
  return n;
}

/** True when another program listens on 127.0.0.1:`port` (0, any free port, never is). */
function portInUse(port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(false);
  return new Promise((resolve) => {
    const probe = net.createServer();
    // Other failures (EACCES below 1024) are the gateway's own to report, with its key.
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
    probe.listen({ host: '127.0.0.1', port, exclusive: true }, () => probe.close(() => resolve(false)));
  });
}

export async function runDemo(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, {
    'data-dir': { type: 'string', default: './var' },
    'hl7-port': { type: 'string', default: '2575' },
    'status-port': { type: 'string', default: '8484' },
    'mqtt-port': { type: 'string', default: '1883' },
    interval: { type: 'string', default: '6' },
    duration: { type: 'string', default: '0' },
    'odoo-version': { type: 'string', default: '17' },
  });
  const options: DemoOptions = {
    dataDir: values['data-dir'] ?? './var',
    hl7Port: numberOption('--hl7-port', values['hl7-port'], 0, 65535, true),
    statusPort: numberOption('--status-port', values['status-port'], 0, 65535, true),
    mqttPort: numberOption('--mqtt-port', values['mqtt-port'], 0, 65535, true),
    intervalSeconds: numberOption('--interval', values.interval, 1, 86_400, false),
    durationSeconds: numberOption('--duration', values.duration, 0, 365 * 86_400, false),
  };
  const odooVersion = numberOption('--odoo-version', values['odoo-version'], 16, 19, true);
  // Checked before anything opens: a port another program holds (Debian's mosquitto on 1883, a
  // gateway already running) failed the start with "mqtt.listen: cannot listen …", a key the
  // demo's user never wrote, without the option that moves it.
  const taken: string[] = [];
  for (const [flag, port, what] of [
    ['--hl7-port', options.hl7Port, 'HL7/MLLP, the simulated LIS'],
    ['--status-port', options.statusPort, 'the status page and API'],
    ['--mqtt-port', options.mqttPort, 'the embedded MQTT broker; a Mosquitto service?'],
  ] as const) {
    if (await portInUse(port)) taken.push(`127.0.0.1:${port} (${what}) is in use by another program: run the demo with ${flag} P (another port, or 0 for any free one)`);
  }
  if (taken.length > 0) throw new GatewayError('GW_CONFIG_INVALID', taken.join('\n'));
  const { config, issues } = validateConfig(
    {
      gateway: { id: DEMO_GATEWAY_ID, dataDir: options.dataDir },
      hl7: [{ id: DEMO_LIS_ID, listen: { host: '127.0.0.1', port: options.hl7Port } }],
      analyzers: [{ id: DEMO_ANALYZER_ID, profile: DEMO_PROFILE, tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
      odoo: { sandboxVersion: odooVersion },
      relay: { microBatchWindowMs: 5_000, scheduledEveryMinutes: 1, invoicing: true, referenceRefreshMs: 60_000 },
      mqtt: { broker: 'embedded', listen: { host: '127.0.0.1', port: options.mqttPort }, publishIntervalMs: 5_000 },
      status: { listen: { host: '127.0.0.1', port: options.statusPort } },
    },
    process.cwd(),
  );
  if (!config) throw new GatewayError('GW_CONFIG_INVALID', `demo configuration is invalid:\n${formatIssues(issues)}`);
  // The store is marked the demo's; one a gateway used is refused, naming --data-dir (relay/odoo-target.ts).
  const gateway = new Gateway({ config, demo: { dataDir: options.dataDir } });
  let simulation: Simulation | undefined;
  let timer: NodeJS.Timeout | undefined;
  return runUntilSignal(
    gateway,
    ctx,
    async (addr) => {
      const analyzer = addr.analyzers[DEMO_ANALYZER_ID];
      ctx.out(
        [
          '',
          'lab-gateway demo is running',
          `  status page      ${addr.status.url}`,
          `  HL7/MLLP (LIS)   ${addr.hl7[DEMO_LIS_ID]?.host}:${addr.hl7[DEMO_LIS_ID]?.port}`,
          `  analyzer (ASTM)  ${DEMO_ANALYZER_ID} (${DEMO_PROFILE}) on ${analyzer?.host}:${analyzer?.port}`,
          `  MQTT             ${addr.mqtt.url}  (try: mosquitto_sub -v -t 'lab-gateway/#')`,
          `  sandbox Odoo     ${addr.odoo.url}  (records on the status page, or: npx lab-gateway sandbox list${options.dataDir === './var' ? '' : ' --config <a file with gateway.dataDir: ' + options.dataDir + '>'})`,
          `  data             ${addr.dataDir}`,
          '',
          `A simulated LIS orders ${DEMO_TESTS.join(', ')} every ${options.intervalSeconds}s; the simulated analyzer runs them and the LIS validates the results.`,
          'Press Ctrl+C to stop.',
          '',
        ].join('\n'),
      );
      if (gateway.sandbox) {
        const created = commissionDemoReagents(gateway.sandbox.emulator);
        if (created.length) ctx.err(`demo: added the ${DEMO_PROFILE} reagents to the sandbox: ${created.join(', ')}`);
        await gateway.relay?.refreshReference().catch(() => undefined);
      }
      simulation = new Simulation({ hl7Port: addr.hl7[DEMO_LIS_ID]?.port ?? options.hl7Port, analyzerPort: analyzer?.port ?? 0, intervalSeconds: options.intervalSeconds, log: (m) => ctx.err(m) });
      simulation.start();
      if (options.durationSeconds > 0) timer = setTimeout(() => process.kill(process.pid, 'SIGTERM'), options.durationSeconds * 1000);
    },
    async () => {
      if (timer) clearTimeout(timer);
      await simulation?.stop();
    },
  );
}

/**
 * Commissioning, as a site would do it in its Odoo: the demo analyzer's reagents (from its
 * profile's consumption table) exist in the sandbox as lot-tracked products with stock in the lab
 * location and a reorder point, so consumption postings and a draft RFQ appear as the demo runs.
 * Returns the product codes it created (none on a second start).
 */
export function commissionDemoReagents(emulator: Sandbox['emulator']): string[] {
  const profile = loadProfile(DEMO_PROFILE, defaultProfilesDir());
  const codes = [...new Set(profile.consumption.map((row) => row.productCode))];
  const lab = emulator.records('stock.location', [['complete_name', '=', 'WH/Stock/Lab']])[0];
  const vendor = emulator.records('res.partner', [['ref', '=', 'VEND-DIAG']])[0];
  const uoms = new Map(emulator.records('uom.uom').map((u) => [String(u.name), u.id as number]));
  const created: string[] = [];
  if (!lab) return created;
  const version = emulator.version;
  const expiry = (days: number): string => new Date(Date.now() + days * 86_400_000).toISOString().replace('T', ' ').slice(0, 19);
  for (const code of codes) {
    if (emulator.count('product.product', [['default_code', '=', code]]) > 0) continue;
    const row = profile.consumption.find((r) => r.productCode === code);
    const uom = uoms.get(row?.uom === 'mL' ? 'mL' : 'Units') ?? 1;
    const tracked = row?.uom !== 'mL';
    const productId = emulator.call('product.product', 'create', [
      {
        name: `cobas c 111 ${code.replace('ROC-C111-', '').toLowerCase()} ${tracked ? 'reagent' : 'solution'}`,
        default_code: code,
        ...(version >= 18 ? { type: 'consu', is_storable: true } : { type: 'product' }),
        tracking: tracked ? 'lot' : 'none',
        use_expiration_date: tracked,
        uom_id: uom,
        ...(version <= 18 ? { uom_po_id: uom } : {}),
        sale_ok: false,
      },
    ]) as number;
    const product = emulator.records('product.product', [['id', '=', productId]])[0];
    if (vendor && product) emulator.call('product.supplierinfo', 'create', [{ partner_id: vendor.id, product_tmpl_id: Array.isArray(product.product_tmpl_id) ? product.product_tmpl_id[0] : product.product_tmpl_id, price: 95, min_qty: 1, delay: 5 }]);
    // Glucose starts below its reorder point, so the first stock check drafts an RFQ.
    const quantity = code.endsWith('GLU') ? 140 : tracked ? 400 : 2000;
    if (tracked) {
      const lotName = `${code.slice(-4)}${new Date().getFullYear() % 100}A01`;
      const lot = emulator.call('stock.lot', 'create', [{ name: lotName, product_id: productId, company_id: 1, expiration_date: expiry(150) }]) as number;
      emulator.call('stock.quant', 'create', [{ product_id: productId, location_id: lab.id, lot_id: lot, quantity }]);
    } else {
      emulator.call('stock.quant', 'create', [{ product_id: productId, location_id: lab.id, quantity }]);
    }
    if (code.endsWith('GLU')) {
      emulator.call('stock.warehouse.orderpoint', 'create', [{ product_id: productId, location_id: lab.id, product_min_qty: 150, product_max_qty: 400, trigger: 'manual' }]);
    }
    created.push(code);
  }
  return created;
}

interface SimulationOptions {
  hl7Port: number;
  analyzerPort: number;
  intervalSeconds: number;
  log: (line: string) => void;
}

/** The simulated LIS and analyzer. */
export class Simulation {
  readonly #o: SimulationOptions;
  #lis: MllpClient | undefined;
  #analyzerSocket: net.Socket | undefined;
  #session: AstmLinkSession | undefined;
  #timers = new Set<NodeJS.Timeout>();
  /** Sends on their way (an order, a run, a validation): stop() lets them finish. */
  readonly #inFlight = new Set<Promise<void>>();
  #n = 0;
  #stopped = false;
  readonly #analyzerCodes: Map<string, string>;
  readonly sent = { orders: 0, runs: 0, qcRuns: 0, validations: 0 };

  constructor(options: SimulationOptions) {
    this.#o = options;
    // Canonical code → the analyzer's own code, from the profile's test map.
    const profile = loadProfile(DEMO_PROFILE, defaultProfilesDir());
    this.#analyzerCodes = new Map(Object.entries(profile.tests).map(([analyzerCode, t]) => [t.code, analyzerCode]));
  }

  start(): void {
    this.#every(this.#o.intervalSeconds * 1000, () => this.#newOrder());
    this.#every(this.#o.intervalSeconds * 5000, () => this.#qcRun());
    this.#later(500, () => this.#newOrder());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    // An analyzer or a LIS does not hang up in the middle of a message: let those on their way end.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise<void>((r) => (bound = setTimeout(r, 5_000)))]);
    clearTimeout(bound);
    this.#session?.close('stopped');
    this.#analyzerSocket?.destroy();
    await this.#lis?.close().catch(() => undefined);
  }

  #every(ms: number, fn: () => Promise<void>): void {
    const t = setInterval(() => this.#track(fn), ms);
    this.#timers.add(t);
  }

  #later(ms: number, fn: () => Promise<void>): void {
    if (this.#stopped) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#track(fn);
    }, ms);
    this.#timers.add(t);
  }

  #track(fn: () => Promise<void>): void {
    const p = fn().catch((err: unknown) => this.#report(err));
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  #report(err: unknown): void {
    if (!this.#stopped) this.#o.log(`demo: ${describeError(err)}`);
  }

  async #lisClient(): Promise<MllpClient> {
    if (!this.#lis) this.#lis = await MllpClient.connect({ host: '127.0.0.1', port: this.#o.hl7Port });
    return this.#lis;
  }

  async #sendHl7(segments: string[]): Promise<void> {
    const client = await this.#lisClient().catch((err: unknown) => {
      this.#lis = undefined;
      throw err;
    });
    try {
      await client.send(Buffer.from(segments.join('\r') + '\r', 'utf8'));
    } catch (err) {
      this.#lis = undefined;
      throw err;
    }
  }

  #analyzer(): AstmLinkSession {
    if (this.#session && this.#analyzerSocket && !this.#analyzerSocket.destroyed) return this.#session;
    const socket = net.connect({ host: '127.0.0.1', port: this.#o.analyzerPort });
    const session = createLinkSession({
      link: resolveLinkOptions({ etbAfterEveryRecord: true }),
      scheduler: realScheduler,
      write: (bytes) => socket.write(bytes),
      onMessage: async () => 'ack',
      onPartial: () => undefined,
    });
    socket.on('data', (d: Buffer) => session.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => session.close('closed'));
    this.#analyzerSocket = socket;
    this.#session = session;
    return session;
  }

  async #newOrder(): Promise<void> {
    if (this.#stopped) return;
    const n = ++this.#n;
    const accession = `DEMO${String(Date.now()).slice(-7)}${String(n).padStart(3, '0')}`;
    const client = CLIENTS[n % CLIENTS.length]!;
    const tests = DEMO_TESTS.slice(0, 1 + (n % DEMO_TESTS.length));
    const now = hl7Time();
    const segments = [
      `MSH|^~\\&|DEMO-LIS|DEMO-LAB|LAB-GATEWAY|DEMO-LAB|${now}||ORM^O01^ORM_O01|ORM${accession}|P|2.5.1|||AL|NE||UNICODE UTF-8`,
      `PID|1||MRN${1000 + n}^^^DEMO-LAB^MR||***^***`,
      ...tests.flatMap((code, i) => [
        `ORC|NW|${accession}||${accession}|SC||||${now}||||||||||||${client}^^^^^^^^^${client}`,
        `OBR|${i + 1}|${accession}||${code}^${code}^L|||${now}||||||||${client}`,
      ]),
    ];
    await this.#sendHl7(segments);
    this.sent.orders++;
    this.#later(2_000, () => this.#run(accession, tests));
  }

  async #run(accession: string, tests: readonly string[]): Promise<void> {
    if (this.#stopped) return;
    const t = astmTime();
    const records = [
      `H|\\^&|||c111^4.2^DEMO|||||||P|1|${t}`,
      `P|1||${accession}`,
      `O|1|${accession}||${tests.map((c) => `^^^${this.#analyzerCodes.get(c) ?? c}`).join('\\')}|R||${t}||||N||||||||||||||F`,
      ...tests.map((c, i) => `R|${i + 1}|^^^${this.#analyzerCodes.get(c) ?? c}/|${(Math.random() * 100 + 20).toFixed(1)}|${c === 'ALT' ? 'U/L' : 'mmol/L'}||N||F||||${t}`),
      'L|1|N',
    ];
    await this.#analyzer().send(records);
    this.sent.runs++;
    this.#later(2_000, () => this.#validate(accession, tests));
  }

  async #qcRun(): Promise<void> {
    if (this.#stopped) return;
    const t = astmTime();
    const code = this.#analyzerCodes.get('GLU') ?? 'GLU';
    await this.#analyzer().send([
      `H|\\^&|||c111^4.2^DEMO|||||||P|1|${t}`,
      'P|1',
      `O|1|QC-${t}|QC-${t}|^^^${code}|R||${t}||||Q||||||||||||||Q`,
      `R|1|^^^${code}/|5.4|mmol/L||N||F||||${t}`,
      'L|1|N',
    ]);
    this.sent.qcRuns++;
  }

  async #validate(accession: string, tests: readonly string[]): Promise<void> {
    if (this.#stopped) return;
    const now = hl7Time();
    await this.#sendHl7([
      `MSH|^~\\&|DEMO-LIS|DEMO-LAB|LAB-GATEWAY|DEMO-LAB|${now}||ORU^R01^ORU_R01|ORU${accession}|P|2.5.1|||AL|NE||UNICODE UTF-8`,
      `PID|1||MRN${accession}^^^DEMO-LAB^MR`,
      ...tests.flatMap((code, i) => [
        `OBR|${i + 1}|${accession}||${code}^${code}^L|||${now}|||||||||||||||${now}|||F`,
        `OBX|1|NM|${code}^${code}^L||${(Math.random() * 100 + 20).toFixed(1)}|${code === 'ALT' ? 'U/L' : 'mmol/L'}|||||F|||${now}`,
      ]),
    ]);
    this.sent.validations++;
  }
}
