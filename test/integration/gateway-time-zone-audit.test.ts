/**
 * `gateway.timeZone`: the lab's zone, for the times analyzers and the LIS write without an offset
 * (ASTM E1394 YYYYMMDDHHMMSS never has one; many LIS leave it off HL7 DTM). The real CLI,
 * `lab-gateway start`, as its own process whose TZ is UTC (a container, a box left at UTC) with
 * the lab in New York; an analyzer over TCP (generic-astm) and the LIS over MLLP; what was stored
 * read back through the status API (README.md "The lab's time zone").
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { useConfigDir } from '../fixtures/cli.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { getJson, startGatewayProcess, until, type GatewayProcess } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-time-zone-');

interface Listed {
  events: Array<{ event: { type: string; occurredAt: string; correlationId?: string; data: Record<string, unknown> } }>;
}

let running: GatewayProcess | undefined;
let socket: net.Socket | undefined;
afterEach(async () => {
  socket?.destroy();
  socket = undefined;
  await running?.stop();
  running = undefined;
});

/** A site: the LIS link, one ASTM analyzer listening on TCP, relay off (events stay pending); `gatewayExtra` inside `gateway:`. */
async function site(id: string, gatewayExtra: string, statusExtra = ''): Promise<string> {
  return configFile(
    [
      `gateway: { id: ${id}, dataDir: ${path.join(dir, id)}${gatewayExtra} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      'analyzers: [ { id: chem-1, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]',
      'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
      `status: { listen: { host: 127.0.0.1, port: 0 }${statusExtra} }`,
      'relay: { enabled: false }',
      '',
    ].join('\n'),
  );
}

async function start(config: string, env: NodeJS.ProcessEnv) {
  running = startGatewayProcess(config, env);
  const ready = await running.ready;
  expect(ready, running.err()).toBeDefined();
  return ready!;
}

async function analyzer(port: number): Promise<AnalyzerSim> {
  const s = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  const sim = new AnalyzerSim((b) => s.write(b));
  s.on('data', (b: Buffer) => sim.feed(b));
  socket = s;
  return sim;
}

/** The pending events of `type` for `accession` once there are `n`. */
async function stored(statusUrl: string, type: string, accession: string, n = 1): Promise<Listed['events']> {
  return until(`${n} ${type} of ${accession}`, async () => {
    const { events } = await getJson<Listed>(`${statusUrl}api/events?state=pending&type=${type}&limit=100`);
    const mine = events.filter((e) => e.event.correlationId === accession);
    return mine.length >= n ? mine : undefined;
  });
}

/** A result as the analyzer writes it: its clock reads 09:28:10 on 14 January (local lab time, no zone). */
const ASTM_RESULT = [
  'H|\\^&|TZ-0001||ChemAnalyzer^2.1^SN1234|||||LIS||P|LIS2-A2|20260114093000',
  'P|1||MRN-5521',
  'O|1|ACC-TZ-1||^^^GLU|R|20260114080000|||||N||||Serum',
  'R|1|^^^GLU|5.4|mmol/L|3.9^6.1|N||F||op1|20260114092500|20260114092810|CA-01',
  'L|1|N',
];

/** An ORU as a LIS that writes no offset: the sample observed and the result validated at 11:55 on 14 January (lab time). */
const oru = (accession: string): Buffer =>
  Buffer.from(
    [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260114120500||ORU^R01^ORU_R01|TZ-ORU-1|P|2.5',
      'PID|1||MRN-1',
      `ORC|RE|${accession}`,
      `OBR|1|${accession}||GLU^Glucose|||20260114115500||||||||||||||20260114115500||||F`,
      'OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F|||20260114115500',
      '',
    ].join('\r'),
    'latin1',
  );

/** An order the LIS timed in UTC (ORC-9 with +0000): 15:00 UTC, 10:00 in New York in January. */
const ormUtc = (accession: string): Buffer =>
  Buffer.from(
    [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260114150000+0000||ORM^O01^ORM_O01|TZ-ORM-1|P|2.5',
      'PID|1||MRN-2^^^LAB^MR',
      `ORC|NW|${accession}||${accession}|SC||||20260114150000+0000||||||||||||CLINIC-A`,
      `OBR|1|${accession}||GLU^GLU^L|||20260114150000+0000`,
      '',
    ].join('\r'),
    'latin1',
  );

describe('gateway.timeZone: times without an offset read in the lab\'s zone, not the process\'s', () => {
  /**
   * User sees (was): the appliance's container runs at UTC, the lab in New York. The analyzer ran
   * glucose at 09:28:10 lab time; the gateway stored 09:28:10Z, and Odoo's chatter showed the run
   * five hours early (04:28 in New York). There was no way to say the lab's zone but to set TZ on
   * the service. Now `gateway.timeZone: America/New_York` is applied at start: 14:28:10Z.
   */
  it('an ASTM result time (no zone) is stored as the New York instant, in a process whose TZ is UTC', async () => {
    const ready = await start(await site('tz-astm', ', timeZone: America/New_York'), { TZ: 'UTC' });
    const sim = await analyzer(ready.analyzers['chem-1']!.port);
    expect((await sim.sendMessage(ASTM_RESULT)).replies).toBe('<ACK>'.repeat(ASTM_RESULT.length + 1));
    const [completed] = await stored(ready.status.url, 'test.completed', 'ACC-TZ-1');
    expect(completed!.event.occurredAt).toBe('2026-01-14T14:28:10.000Z');
    // The start-up log says which zone the gateway reads such times in, and from where.
    expect(running!.err()).toMatch(/"timeZone":"America\/New_York".*"timeZoneFrom":"gateway\.timeZone"/);
  }, 60_000);

  it('an HL7 ORU time without offset is stored as the New York instant', async () => {
    const ready = await start(await site('tz-hl7', ', timeZone: America/New_York'), { TZ: 'UTC' });
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: ready.hl7.lis!.port });
    try {
      expect((await lis.send(oru('ACC-TZ-2'))).toString('latin1')).toContain('MSA|AA|');
    } finally {
      await lis.close().catch(() => undefined);
    }
    const [validated] = await stored(ready.status.url, 'result.validated', 'ACC-TZ-2');
    expect(validated!.event.occurredAt).toBe('2026-01-14T16:55:00.000Z');
  }, 60_000);

  /**
   * The other way: a time the gateway writes to an analyzer (the order's time, O.7, in a host
   * query's answer) is the analyzer's local clock. The LIS timed the order 15:00 UTC; the analyzer
   * in New York must read 10:00, not 15:00.
   */
  it('a host query answer writes the order\'s time in New York time', async () => {
    const ready = await start(await site('tz-query', ', timeZone: America/New_York'), { TZ: 'UTC' });
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: ready.hl7.lis!.port });
    try {
      expect((await lis.send(ormUtc('ACC-TZ-3'))).toString('latin1')).toContain('MSA|AA|');
    } finally {
      await lis.close().catch(() => undefined);
    }
    await stored(ready.status.url, 'order.created', 'ACC-TZ-3');
    const sim = await analyzer(ready.analyzers['chem-1']!.port);
    const query = ['H|\\^&|TZ-0003||ChemAnalyzer^2.1^SN1234|||||LIS||P|LIS2-A2|20260114100100', 'Q|1|^ACC-TZ-3||ALL||||||||O', 'L|1|N'];
    expect((await sim.sendMessage(query)).replies).toBe('<ACK>'.repeat(query.length + 1));
    const answer = await sim.receiveSession(15_000);
    const order = answer.split('\r').find((r) => r.startsWith('O|'));
    expect(order, answer).toBeDefined();
    expect(order!.split('|')[6]).toBe('20260114100000');
  }, 60_000);

  /**
   * The times the status quotes in its reasons ("paused … since 08:14 (UTC-05:00)") are the lab's
   * clock too: before, a technician in New York read the gateway's UTC there.
   */
  it('a status reason quotes its time in the configured zone, with its offset', async () => {
    const token = path.join(dir, 'admin.token');
    await writeFile(token, 'tz-admin-token-0123456789\n');
    const ready = await start(await site('tz-status', ', timeZone: America/New_York', `, adminTokenFile: ${token}`), { TZ: 'UTC' });
    const paused = await fetch(`${ready.status.url}api/relay/pause`, {
      method: 'POST',
      headers: { Authorization: 'Bearer tz-admin-token-0123456789', 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'stock count' }),
    });
    expect(paused.status).toBe(200);
    const status = await getJson<{ relayPause: { since: string }; healthReasons: Array<{ code: string; message: string }> }>(`${ready.status.url}api/status`);
    const since = new Date(status.relayPause.since);
    const clock = new Intl.DateTimeFormat('en-GB', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(since);
    // New York's offset at that instant as Intl writes it (GMT-05:00 in winter, GMT-04:00 in summer).
    const offset = new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', timeZoneName: 'longOffset' }).formatToParts(since).find((p) => p.type === 'timeZoneName')!.value.replace('GMT', 'UTC');
    expect(offset).toMatch(/^UTC-0[45]:00$/);
    const message = status.healthReasons.find((r) => r.code === 'RELAY_PAUSED')?.message;
    expect(message).toContain(` since ${clock} (${offset})`);
  }, 60_000);

  /** Nothing set: the process's own zone, as before (a box set up right changes nothing). */
  it('without gateway.timeZone the process\'s TZ is used, as before', async () => {
    const ready = await start(await site('tz-none', ''), { TZ: 'America/New_York' });
    const sim = await analyzer(ready.analyzers['chem-1']!.port);
    expect((await sim.sendMessage(ASTM_RESULT.map((r) => r.replace('ACC-TZ-1', 'ACC-TZ-4')))).replies).toBe('<ACK>'.repeat(ASTM_RESULT.length + 1));
    const [completed] = await stored(ready.status.url, 'test.completed', 'ACC-TZ-4');
    expect(completed!.event.occurredAt).toBe('2026-01-14T14:28:10.000Z');
    expect(running!.err()).toMatch(/"timeZone":"America\/New_York".*"timeZoneFrom":"TZ"/);
  }, 60_000);

  /**
   * TZ is the process's: a gateway run inside another program (the tests: a vitest worker runs
   * many) sets it at start and puts it back at stop, so what runs after it reads times as before.
   */
  it('a gateway in this process applies the zone at start and puts TZ back at stop', async () => {
    const before = process.env.TZ;
    const data = await mkdtemp(path.join(tmpdir(), 'lgw-tz-inproc-'));
    try {
      const gateway = new Gateway({ config: testGatewayConfig('tz-inproc', data, { gateway: { id: 'tz-inproc', dataDir: data, timeZone: 'Asia/Tokyo' } }), log: silentLogger });
      await gateway.start();
      try {
        expect(process.env.TZ).toBe('Asia/Tokyo');
        expect(new Date(2026, 0, 14, 9, 0, 0).toISOString()).toBe('2026-01-14T00:00:00.000Z');
      } finally {
        await gateway.stop(5_000);
      }
      expect(process.env.TZ).toBe(before);
      expect(Intl.DateTimeFormat().resolvedOptions().timeZone).not.toBe('Asia/Tokyo');
    } finally {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
      await rm(data, { recursive: true, force: true });
    }
  }, 60_000);
});
