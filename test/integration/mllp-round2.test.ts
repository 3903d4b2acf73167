/**
 * MLLP intake, second round: real TCP/TLS sockets, a real LevelDB store in a temp dir.
 *
 * - a TLS handshake that never finishes does not hold the endpoint's stop(), counts against
 *   maxConnections and is cut after the handshake timeout;
 * - a sender that half-closes (FIN) right after a frame without its final CR gets that frame
 *   answered and stored; a frame cut before its end block is kept as rejected raw bytes, counted;
 * - a Mindray BS (HL7 analyzer) reading the tube's barcode reports its results on the LIS order
 *   whose specimen id that barcode is (the accession resolution of ASTM analyzers).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Hl7EndpointConfig } from '../../gateway/src/config/types.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

const adt = (id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301120000||ADT^A01^ADT_A01|${id}|P|2.5\rPID|1||MRN-${id}\r`;

/** An MllpEndpoint on a real store in a temp dir (port 0), with the telemetry it reports. */
class Endpoint {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-mllp2-'));
  readonly telemetry = new Telemetry();
  readonly intake: Array<TelemetryEvents['intake.message']> = [];
  store!: EventStore;
  endpoint!: MllpEndpoint;
  port = 0;

  static async start(config: Partial<Hl7EndpointConfig>, options: { tlsHandshakeTimeoutMs?: number } = {}): Promise<Endpoint> {
    const e = new Endpoint();
    e.telemetry.on('intake.message', (m) => e.intake.push(m));
    e.store = await EventStore.open({ dataDir: e.dir, healthCheckIntervalMs: 50, pruneIntervalMs: 0 });
    e.endpoint = new MllpEndpoint({ config: endpointConfig(config), store: e.store, telemetry: e.telemetry, log: silentLogger, ...options });
    await e.endpoint.start();
    e.port = e.endpoint.address()?.port ?? 0;
    return e;
  }

  async messages(status: 'accepted' | 'rejected'): Promise<Array<{ controlId?: string; reason?: string; raw: Buffer }>> {
    const list = (await this.store.listMessages({ endpoint: 'lis', limit: 100 })).filter((m) => m.status === status);
    return Promise.all(
      list.map(async (m) => {
        const full = await this.store.getMessage(m.id);
        return { ...(m.controlId ? { controlId: m.controlId } : {}), ...(m.rejectReason ? { reason: m.rejectReason } : {}), raw: full?.raw ?? Buffer.alloc(0) };
      }),
    );
  }

  async stop(): Promise<void> {
    await this.endpoint.stop(2_000);
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let ep: Endpoint | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await ep?.stop();
  ep = undefined;
});

/** A TCP connection that sends nothing (a port scanner, a client that speaks plain TCP to a TLS port, a stuck peer). */
async function silentSocket(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, closed };
}

/** Resolves `'in time'`, or `'late'` once `ms` passed. */
function within<T>(p: Promise<T>, ms: number): Promise<'in time' | 'late'> {
  return Promise.race([p.then(() => 'in time' as const), new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), ms).unref())]);
}

/** Write `bytes`, half-close (FIN), read until the server closes. */
function sendThenHalfClose(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => {
      s.write(bytes);
      s.end();
    });
    sockets.push(s);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

// ------------------------------------------------------------------------------------------------
// 1. TLS handshakes that never finish

describe('MLLP over TLS: unfinished handshakes', () => {
  let certs: string;
  const pem = (name: string): Buffer => readFileSync(path.join(certs, name));

  beforeAll(() => {
    certs = mkdtempSync(path.join(tmpdir(), 'lab-gw-tls2-'));
    const run = (...args: string[]): void => {
      execFileSync('openssl', args, { cwd: certs, stdio: 'pipe' });
    };
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Test Lab CA');
    writeFileSync(path.join(certs, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
  });
  afterAll(() => rmSync(certs, { recursive: true, force: true }));

  const tlsConfig = (): Partial<Hl7EndpointConfig> => ({ tls: { cert: path.join(certs, 'server.crt'), key: path.join(certs, 'server.key'), requireClientCert: false } });
  const tlsClient = (port: number): Promise<MllpClient> => MllpClient.connect({ host: '127.0.0.1', port, tls: { ca: pem('ca.crt') }, timeoutMs: 5_000 });

  /**
   * What the user saw: `systemctl stop lab-gateway` (SIGTERM) took minutes whenever something had
   * opened a TCP connection to the TLS port and sent nothing (a monitoring probe, a LIS configured
   * for plain MLLP on the TLS port): the endpoint did not know of sockets still in their TLS
   * handshake, so its stop() neither closed them nor could finish closing the listener.
   */
  it('a client that opens TCP to the TLS listener and sends nothing does not hold stop()', async () => {
    ep = await Endpoint.start(tlsConfig());
    const silent = await silentSocket(ep.port);
    // The listener still serves a real TLS client meanwhile.
    const client = await tlsClient(ep.port);
    const ack = framesOf(wrapFrame(await client.send(Buffer.from(adt('TL1')))))[0];
    expect(field(ack, 'MSA', 1)).toBe('AA');
    await client.close();

    const stopped = ep.endpoint.stop(5_000);
    expect(await within(stopped, 1_500), 'stop() waited for a TLS handshake that never finishes').toBe('in time');
    expect(await within(silent.closed, 1_000), 'the silent socket was left open').toBe('in time');
  });

  it('unfinished handshakes count against maxConnections, and are cut after the handshake timeout', async () => {
    ep = await Endpoint.start({ ...tlsConfig(), maxConnections: 1 }, { tlsHandshakeTimeoutMs: 400 });
    const silent = await silentSocket(ep.port);
    // The one connection allowed is the handshake in progress: a second client is refused.
    await expect(tlsClient(ep.port).then((c) => c.send(Buffer.from(adt('TL2'))))).rejects.toThrow();
    // The silent socket is closed once the handshake timeout passed …
    expect(await within(silent.closed, 3_000), 'a handshake that never finishes held its connection slot').toBe('in time');
    // … and the slot is free again.
    const client = await tlsClient(ep.port);
    const reply = framesOf(wrapFrame(await client.send(Buffer.from(adt('TL3')))))[0];
    expect(field(reply, 'MSA', 2)).toBe('TL3');
    await client.close();
  });
});

// ------------------------------------------------------------------------------------------------
// 2. Half-close right after a frame: FS without CR, or a frame cut before its end block

describe('MLLP: a sender that half-closes at the end of its input', () => {
  /**
   * What the user saw: a sender whose frames end in FS without the final CR (some interface
   * engines and scripts omit it) pushed a result and half-closed: no ACK came back, nothing was
   * stored and no counter moved. The decoder waited for the CR after FS to end the frame, and
   * nothing told it the input had ended.
   */
  it('a complete block without the trailing CR, then FIN: answered AA and stored', async () => {
    ep = await Endpoint.start({});
    const wire = Buffer.concat([Buffer.of(VT), Buffer.from(adt('FIN1')), Buffer.of(FS)]);
    const reply = framesOf(await sendThenHalfClose(ep.port, wire));
    expect(reply.map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)])).toEqual([['AA', 'FIN1']]);
    expect((await ep.messages('accepted')).map((m) => m.controlId)).toEqual(['FIN1']);
  });

  it('pipelined frames, the last one without its CR, then FIN: every frame answered in order', async () => {
    ep = await Endpoint.start({});
    const wire = Buffer.concat([Buffer.of(VT), Buffer.from(adt('FIN2')), Buffer.of(FS, CR, VT), Buffer.from(adt('FIN3')), Buffer.of(FS)]);
    const reply = framesOf(await sendThenHalfClose(ep.port, wire));
    expect(reply.map((f) => field(f, 'MSA', 2))).toEqual(['FIN2', 'FIN3']);
    expect((await ep.messages('accepted')).map((m) => m.controlId).sort()).toEqual(['FIN2', 'FIN3']);
  });

  /**
   * What the user saw: a frame cut before its end block (the sender's process ended mid-write, a
   * script that forgot FS) vanished without a trace when the sender closed: not stored, not
   * counted, no answer. DESIGN §2: bad input is answered if possible and always kept, raw.
   */
  it('a frame without its end block (no FS), then FIN: kept as rejected raw bytes, counted, answered AR', async () => {
    ep = await Endpoint.start({});
    const cut = adt('CUT1').slice(0, -3);
    const reply = framesOf(await sendThenHalfClose(ep.port, Buffer.concat([Buffer.of(VT), Buffer.from(cut)])));
    expect(reply.map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)])).toEqual([['AR', 'CUT1']]);
    const rejected = await ep.messages('rejected');
    expect(rejected.map((m) => m.raw.toString('latin1'))).toEqual([cut]);
    expect(rejected[0]?.reason).toMatch(/incomplete/);
    expect(ep.store.intake().rejected).toBe(1);
    expect(ep.intake.map((m) => m.outcome)).toEqual(['rejected']);
  });

  /**
   * What the user saw: a sender that gave up a frame halfway and started it over (a new VT inside
   * the open frame: an interface engine restarting a send) got its second frame answered, but
   * the first one's bytes were only counted as ignored: no trace of them for the operator.
   */
  it('a frame abandoned by a new start block is kept as rejected raw bytes, unanswered; the new frame is answered', async () => {
    ep = await Endpoint.start({});
    const cut = adt('ABN1').slice(0, 30);
    const wire = Buffer.concat([Buffer.of(VT), Buffer.from(cut), Buffer.of(VT), Buffer.from(adt('ABN2')), Buffer.of(FS, CR)]);
    const reply = framesOf(await sendThenHalfClose(ep.port, wire));
    expect(reply.map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)]), 'one reply, for the frame the sender ended').toEqual([['AA', 'ABN2']]);
    const rejected = await ep.messages('rejected');
    expect(rejected.map((m) => m.raw.toString('latin1'))).toEqual([cut]);
    expect(rejected[0]?.reason).toMatch(/incomplete message \(abandoned\)/);
    expect((await ep.messages('accepted')).map((m) => m.controlId)).toEqual(['ABN2']);
  });

  it('a block without its CR from a sender that keeps the connection open is answered when the connection goes idle', async () => {
    ep = await Endpoint.start({ idleTimeoutMs: 200 });
    const s = net.connect({ host: '127.0.0.1', port: ep.port });
    sockets.push(s);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.write(Buffer.concat([Buffer.of(VT), Buffer.from(adt('IDLE1')), Buffer.of(FS)]));
    expect(await within(closed, 3_000)).toBe('in time');
    expect(framesOf(Buffer.concat(chunks)).map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)])).toEqual([['AA', 'IDLE1']]);
  });

  it('at stop(), a block without its CR is answered; a frame still open is kept, unanswered (the sender resends it)', async () => {
    ep = await Endpoint.start({});
    const a = net.connect({ host: '127.0.0.1', port: ep.port });
    const b = net.connect({ host: '127.0.0.1', port: ep.port });
    sockets.push(a, b);
    const got: Buffer[] = [];
    a.on('data', (c: Buffer) => got.push(c));
    const bGot: Buffer[] = [];
    b.on('data', (c: Buffer) => bGot.push(c));
    const cut = adt('STOP2').slice(0, 30);
    a.write(Buffer.concat([Buffer.of(VT), Buffer.from(adt('STOP1')), Buffer.of(FS)]));
    b.write(Buffer.concat([Buffer.of(VT), Buffer.from(cut)]));
    await expect.poll(() => ep!.endpoint.connections, { timeout: 2_000 }).toBe(2);
    await new Promise((r) => setTimeout(r, 100));
    await ep.endpoint.stop(2_000);
    expect(framesOf(Buffer.concat(got)).map((f) => field(f, 'MSA', 2))).toEqual(['STOP1']);
    expect(Buffer.concat(bGot).length).toBe(0);
    expect((await ep.messages('rejected')).map((m) => [m.raw.toString('latin1'), m.reason?.includes('stopped')])).toEqual([[cut, true]]);
  });

  it('a frame cut by a connection reset is kept as rejected raw bytes too (nobody to answer)', async () => {
    ep = await Endpoint.start({});
    const cut = adt('CUT2').slice(0, 40);
    const s = net.connect({ host: '127.0.0.1', port: ep.port });
    sockets.push(s);
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.write(Buffer.concat([Buffer.of(VT), Buffer.from(cut)]));
    // Give the bytes time to arrive, then reset (RST, no FIN).
    await expect.poll(() => ep!.endpoint.connections, { timeout: 2_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    s.resetAndDestroy();
    await expect.poll(async () => (await ep!.messages('rejected')).map((m) => m.raw.toString('latin1')), { timeout: 3_000 }).toEqual([cut]);
    expect(ep.store.intake().rejected).toBe(1);
  });
});

// ------------------------------------------------------------------------------------------------
// 3. HL7 analyzers: the tube's barcode resolved to the LIS order's accession

describe('Mindray BS over HL7: a result for a tube barcode lands on its LIS order', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let bs: MllpClient;
  let lis: MllpClient;

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('mllp-round2', {
      analyzers: [{ id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
    }));
    bs = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-200']!.port! });
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port! });
  });
  afterAll(async () => {
    await bs?.close().catch(() => undefined);
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  async function eventsOf(endpoint: string): Promise<CanonicalEvent[]> {
    const store = gateway.store!;
    const messages = await store.listMessages({ endpoint, limit: 1000 });
    const stored = await Promise.all(messages.flatMap((m) => m.eventIds.map((id) => store.getEvent(id))));
    return stored.flatMap((e) => (e ? [e.event] : []));
  }

  /** A Mindray BS patient ORU^R01 (analyzer-orders-audit.test.ts): OBR-2 barcode, OBR-3 sample number. */
  const bsOru = (controlId: string, barcode: string, sampleNo: string): Buffer =>
    Buffer.from(
      [
        `MSH|^~\\&|Mindray|BS-200|||20260301110000||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
        `PID|1|854||${sampleNo}|Anon||19830719000000|F`,
        `OBR|1|${barcode}|${sampleNo}|Mindray^BS-200|N||20260301105500||||||||serum`,
        'OBX|1|NM|1|ALT|35.000000|U/L|-||||F|||20260301105900||',
        '',
      ].join('\r'),
      'latin1',
    );

  /**
   * What the user saw: the LIS orders accession ACC-R2-1 for the tube labelled BC-R2-1 (SPM-2);
   * the Mindray BS reads the label and reports "BC-R2-1: ALT 35". The result, the receipt and the
   * reagent were filed under BC-R2-1, an accession no sale order has: the order's chatter never
   * showed the result and the notes ended as dead letters. ASTM analyzers resolve the barcode
   * (astm/accessions.ts); the HL7 analyzer path did not.
   */
  it('the result, receipt and reagent of barcode BC-R2-1 carry the accession ACC-R2-1; keys stay on the barcode', async () => {
    const orm = [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301101500||ORM^O01|R2-ORM-1|P|2.5',
      'PID|1||MRN-R2^^^LAB^MR',
      ['ORC', 'NW', 'ACC-R2-1', ...Array(18).fill(''), 'CLINIC-A'].join('|'),
      'OBR|1|ACC-R2-1||ALT^Alanine aminotransferase^L',
      'SPM|1|BC-R2-1||SER^Serum',
      '',
    ].join('\r');
    // The LIS path looks up no order for its specimens (only analyzer endpoints resolve).
    const store = gateway.store!;
    const byCorrelation = vi.spyOn(store, 'eventsByCorrelation');
    const search = vi.spyOn(store, 'listMessages');
    expect((await lis.send(Buffer.from(orm, 'latin1'))).toString('latin1')).toContain('MSA|AA|R2-ORM-1');
    expect(byCorrelation.mock.calls.filter(([id]) => id === 'BC-R2-1')).toEqual([]);
    expect(search.mock.calls).toEqual([]);
    byCorrelation.mockRestore();
    search.mockRestore();
    const order = (await eventsOf('lis')).find((e) => e.type === 'order.created');
    expect(order?.type === 'order.created' ? [order.correlationId, order.data.specimenId] : []).toEqual(['ACC-R2-1', 'BC-R2-1']);

    expect((await bs.send(bsOru('81', 'BC-R2-1', '41'))).toString('latin1')).toContain('MSA|AA|81');
    const events = (await eventsOf('bs-200')).filter((e) => (e.type === 'test.completed' || e.type === 'specimen.received' || e.type === 'consumable.used') && e.data.specimenId === 'BC-R2-1');
    const result = events.find((e) => e.type === 'test.completed');
    const receipt = events.find((e) => e.type === 'specimen.received');
    const reagent = events.filter((e) => e.type === 'consumable.used');
    expect(result?.type === 'test.completed' ? [result.correlationId, result.data.accession, result.partitionKey] : [], 'the result was filed under the barcode').toEqual(['ACC-R2-1', 'ACC-R2-1', 'order:ACC-R2-1']);
    expect(receipt?.type === 'specimen.received' ? [receipt.correlationId, receipt.data.accession, receipt.partitionKey] : []).toEqual(['ACC-R2-1', 'ACC-R2-1', 'order:ACC-R2-1']);
    expect(reagent.length).toBeGreaterThan(0);
    expect(reagent.map((e) => e.correlationId)).toEqual(reagent.map(() => 'ACC-R2-1'));
    // Keys stay on the barcode: a resend yields the same keys.
    for (const e of events) expect(e.idempotencyKey).toContain('BC-R2-1');
    // The message is found under the accession too.
    expect((await gateway.store!.listMessages({ q: 'ACC-R2-1', endpoint: 'bs-200' })).length).toBe(1);
  });

  it('a tube no LIS order is known for keeps its barcode as the accession', async () => {
    expect((await bs.send(bsOru('82', 'BC-R2-UNKNOWN', '42'))).toString('latin1')).toContain('MSA|AA|82');
    const result = (await eventsOf('bs-200')).find((e) => e.type === 'test.completed' && e.data.specimenId === 'BC-R2-UNKNOWN');
    expect(result?.type === 'test.completed' ? [result.correlationId, result.data.accession, result.partitionKey] : []).toEqual(['BC-R2-UNKNOWN', 'BC-R2-UNKNOWN', 'order:BC-R2-UNKNOWN']);
  });
});
