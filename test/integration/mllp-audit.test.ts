/**
 * Audit of the MLLP listener and HL7 acknowledgements (gateway/src/ingress/mllp, gateway/src/hl7).
 * Every test here fails on the code as audited; each names the promise it holds the code to, the
 * cause and a suggested fix. Real parts only: a LevelDB EventStore in a temp dir, the MllpEndpoint
 * on a real TCP port, raw sockets or the project's MllpClient as the sender.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { silentLogger, type Logger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { GatewayStore } from '../../gateway/src/store/types.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';

const oruFinal = (id: string, acc: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|RE|${acc}\rOBR|1|${acc}|S-${id}|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`,
    'latin1',
  );
const oruPreliminary = (id: string, acc: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|RE|${acc}\rOBR|1|${acc}||GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||P\r`,
    'latin1',
  );
const ormNew = (id: string, acc: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORM^O01^ORM_O01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|NW|${acc}|||||||||||||||||||CLINIC-A\rOBR|1|${acc}||GLU^Glucose\r`,
    'latin1',
  );
/** A UTF-8 message (MSH-18 UNICODE UTF-8) from a facility with a non-ASCII name. */
const adtUtf8 = (id: string, extra = ''): Buffer =>
  Buffer.from(`MSH|^~\\&|LIS|Labor Köln|GW|LAB|20240101120000||ADT^A01|${id}|P|2.5||||||UNICODE UTF-8\rPID|1||M-${id}\r${extra}`, 'utf8');

let h: GatewayHarness | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  await h?.stop();
  h = undefined;
});

/** Write `bytes`, half-close (FIN, as socat or `nc -N` do at the end of their input), read until the server closes. */
function sendThenHalfClose(port: number, bytes: Buffer, tlsOptions?: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const opened = (): void => {
      s.write(bytes);
      s.end();
    };
    // A TLS socket is half-open when the TCP socket under it is.
    const s = tlsOptions
      ? tls.connect({ socket: net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }), ...tlsOptions }, opened)
      : net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, opened);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks)));
    // Safety net only (the server closes at once either way); no assertion depends on it.
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

describe('MLLP audit: every frame is answered', () => {
  /**
   * What the user sees: IT staff commissioning the LIS link push a test message with
   * `socat - TCP:gateway:2575 < msg.mllp` (or `nc -N`), which half-closes the connection when its
   * input ends and then waits for the reply. The gateway stores the message and creates its
   * events, but the sender never gets the AA: the tool prints nothing, the message looks lost
   * (and a resend is then silently answered as a duplicate).
   * Promise broken: DESIGN.md §1.3 (positive ACK after the durable commit), hl7/README.md
   * "Nothing vanishes. Every frame is answered."
   * Cause: mllp-endpoint.ts:104 (and :89 for TLS) create the server with the default
   * allowHalfOpen: false, so Node ends the socket's writable side as soon as the client's FIN
   * arrives; the ACK, ready only after the fsync, is then dropped by the `socket.writable` check
   * in mllp-connection.ts:169 (no 'end' handling anywhere in mllp-connection.ts).
   * Fix: create both servers with `allowHalfOpen: true`, and in MllpConnection on 'end' stop
   * reading, wait for drained() and then socket.end() (as stop() already does).
   */
  it('a sender that half-closes after its message still gets the AA for it', async () => {
    h = await GatewayHarness.start();
    const reply = await sendThenHalfClose(h.port, wrapFrame(oruFinal('HC-1', 'ACC-HC1')));
    // The message was committed, with its event...
    expect(await h.rawOf('HC-1')).toBeDefined();
    expect((await h.store.eventsByCorrelation('ACC-HC1')).map((e) => e.event.type)).toEqual(['result.validated']);
    // ...so the sender is owed its AA.
    const ack = framesOf(reply)[0];
    expect(field(ack, 'MSA', 1), 'MSA-1 of the reply to a half-closing sender').toBe('AA');
    expect(field(ack, 'MSA', 2)).toBe('HC-1');
  });

  // Follow-ups of the fix (half-open sockets): the gateway closes such a connection itself once
  // everything is answered (no socket left open, no connection left counted), over TLS as well,
  // and the idle timeout still closes connections without losing a reply.

  it('a half-closed connection is answered in full, then closed and no longer counted', async () => {
    h = await GatewayHarness.start();
    const ids = ['HC-2', 'HC-3', 'HC-4'];
    const reply = await sendThenHalfClose(h.port, Buffer.concat(ids.map((id) => wrapFrame(oruFinal(id, `ACC-${id}`)))));
    expect(framesOf(reply).map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)])).toEqual(ids.map((id) => ['AA', id]));
    await expect.poll(() => h!.endpoint.connections).toBe(0);
    expect(h.stateEvents.at(-1)?.state).toBe('listening');
  });

  it('a TLS sender that half-closes after its message still gets the AA for it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mllp-audit-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    h = await GatewayHarness.start({ tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), requireClientCert: false } });
    const reply = await sendThenHalfClose(h.port, wrapFrame(oruFinal('HC-TLS', 'ACC-HCT')), { rejectUnauthorized: false });
    const ack = framesOf(reply)[0];
    expect(field(ack, 'MSA', 1)).toBe('AA');
    expect(field(ack, 'MSA', 2)).toBe('HC-TLS');
    await expect.poll(() => h!.endpoint.connections).toBe(0);
  });

  // Half-open is for the connections the gateway serves, which end themselves once answered: a
  // socket that half-closes before its TLS handshake completed has nothing to wait for, and left
  // half-open it would hold stop() until the handshake timeout (two minutes).
  it('a client that half-closes before the TLS handshake is closed at once, and stop() is not held', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mllp-audit-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=localhost'], { cwd: dir, stdio: 'pipe' });
    // stop() held by a connection shows as its deadline being reached (a warning, then the
    // sockets destroyed) or as stop() never returning; no wall-clock bound needed.
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (msg) => void warnings.push(msg), child: () => log };
    const store = await EventStore.open({ dataDir: path.join(dir, 'data'), pruneIntervalMs: 0 });
    cleanups.push(() => store.close());
    const states: string[] = [];
    const telemetry = new Telemetry();
    telemetry.on('endpoint.state', (e) => states.push(e.state));
    const endpoint = new MllpEndpoint({ config: endpointConfig({ tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), requireClientCert: false } }), store, telemetry, log });
    await endpoint.start();
    cleanups.push(() => endpoint.stop(2_000));
    const port = endpoint.address()!.port;
    const closedByServer = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => s.end());
      s.on('error', () => undefined);
      s.on('close', () => resolve(true));
      setTimeout(() => {
        resolve(false);
        s.destroy();
      }, 3_000).unref();
    });
    expect(closedByServer).toBe(true);
    expect(endpoint.connections).toBe(0);
    await endpoint.stop(2_000);
    expect(warnings.filter((w) => w.startsWith('stop deadline reached')), 'stop() waited for the half-closed socket until its deadline').toEqual([]);
    expect(states.at(-1)).toBe('stopped');
  });

  /**
   * The suspected idle-timeout race. A frame that arrives while the idle close waits for an owed
   * reply is read and answered before the close (drained() waits for it too: the next test, which
   * passes before the fix as well, holds that). But a frame that arrives after the gateway's FIN
   * (the sender wrote it before that FIN reached it) was read and committed, its ACK dropped: the
   * socket could no longer write. The message was stored and the sender never told; its resend was
   * then answered as a duplicate. Promise broken: hl7/README.md "Every frame is answered", and
   * "bytes arriving after the stop began are not read". Fix: reading stops when the FIN is sent;
   * the frame is not read, and the sender sends it again on a new connection.
   */
  it('a frame arriving after the idle close is neither stored nor left unanswered', async () => {
    h = await GatewayHarness.start({ idleTimeoutMs: 100 });
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: h!.port, allowHalfOpen: true });
      s.on('data', (c: Buffer) => got.push(c));
      s.on('error', reject);
      // The gateway's FIN arrives (idle close) just as the sender writes a message.
      s.on('end', () => {
        s.write(wrapFrame(oruFinal('IR-1', 'ACC-IR1')));
        s.end();
      });
      s.on('close', () => resolve());
      setTimeout(() => s.destroy(), 10_000).unref();
    });
    // Once the gateway's side is closed, a commit it started for the frame is queued: flush it.
    await expect.poll(() => h!.endpoint.connections).toBe(0);
    await h.store.flush();
    expect(framesOf(Buffer.concat(got)), 'replies after the idle close').toEqual([]);
    expect(await h.rawOf('IR-1'), 'a message stored without its ACK ever sent').toBeUndefined();
    expect(await h.store.eventsByCorrelation('ACC-IR1')).toEqual([]);
  });

  it('a frame arriving while the idle close waits for an owed reply is answered before the close', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mllp-audit-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0 });
    cleanups.push(() => store.close());
    // The first commit is held past the idle timeout.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let commits = 0;
    const slow = new Proxy(store, {
      get(target, prop) {
        if (prop === 'commit') {
          return async (...args: Parameters<GatewayStore['commit']>) => {
            if (commits++ === 0) await held;
            return target.commit(...args);
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const telemetry = new Telemetry();
    const closing: string[] = [];
    const log: Logger = { ...silentLogger, info: (msg) => void closing.push(msg), child: () => log };
    const endpoint = new MllpEndpoint({ config: endpointConfig({ idleTimeoutMs: 100 }), store: slow, telemetry, log });
    await endpoint.start();
    cleanups.push(() => endpoint.stop(2_000));
    const c = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const first = c.send(oruFinal('IW-1', 'ACC-IW1'));
    await expect.poll(() => closing.includes('closing idle connection'), { timeout: 5_000 }).toBe(true);
    const second = c.send(oruFinal('IW-2', 'ACC-IW2'));
    await expect.poll(() => commits, { timeout: 5_000 }).toBe(2);
    release();
    const replies = await Promise.all([first, second]);
    expect(replies.map((r) => field(framesOf(wrapFrame(r))[0], 'MSA', 2))).toEqual(['IW-1', 'IW-2']);
    await expect.poll(() => endpoint.connections).toBe(0);
  });
});

describe('MLLP audit: order of pipelined messages', () => {
  /**
   * What the user sees: a LIS pipelines a batch of new orders and, right behind it on the same
   * connection, the final result of the last order. The result is queued before the order it
   * belongs to: the relay marks a sale-order line delivered before the sale order exists in Odoo
   * (the post fails or is retried/dead-lettered; billing readiness is lost or delayed).
   * Promise broken: DESIGN.md §2 "Order within a partition: events of one order/specimen/lot
   * reach Odoo in the order they happened"; hl7/README.md "Order" (frames of one connection are
   * pipelined, replies in order) and "Batches: every message is committed on its own, in order".
   * Cause: mllp-connection.ts:87/145 start every frame's intake at once, relying on the store
   * taking commits in call order; but hl7-intake.ts:223-224 commits a batch's members one after the
   * other with an `await` between them, so a frame that arrives behind the batch reaches
   * store.commit() (and gets its event ids / queue position) before the batch's second member.
   * Fix: let a connection start the next frame's intake only once the previous frame has issued
   * all its commits (e.g. chain `handle()` calls per connection on a "commits issued" promise the
   * intake resolves), or have processBatch issue all members' commits synchronously (start each
   * commit without awaiting the previous one, then await them all in order).
   */
  it('a result pipelined behind a batch of orders is queued after its order', async () => {
    h = await GatewayHarness.start();
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const batch = Buffer.concat([
      Buffer.from('BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B-1\r'),
      ormNew('PB-O1', 'ACC-PB1'),
      ormNew('PB-O2', 'ACC-PB2'),
      Buffer.from('BTS|2\r'),
    ]);
    // One write: the batch and then the result of its second order, pipelined.
    const replies = c.expect(2);
    c.writeRaw(Buffer.concat([wrapFrame(batch), wrapFrame(oruFinal('PB-R2', 'ACC-PB2'))]));
    const [batchReply, resultReply] = await replies;
    expect(framesOf(wrapFrame(batchReply!))[0]?.filter((s) => s[0] === 'MSA').map((s) => s[1])).toEqual(['AA', 'AA']);
    expect(field(framesOf(wrapFrame(resultReply!))[0], 'MSA', 1)).toBe('AA');
    // What the relay will post for this order, in the order it will post it.
    const leases = await h.store.lease({ limit: 10, maxPerPartition: 10, sameTypeOnly: false });
    const order = leases.find((l) => l.partitionKey === 'order:ACC-PB2');
    expect(order?.events.map((e) => e.event.type)).toEqual(['order.created', 'result.validated']);
  });

  // Follow-up of the fix (the members' commits issued together): the members stay independent.
  it('a refused batch member and a member repeating an earlier one leave the others as they were', async () => {
    h = await GatewayHarness.start();
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const refused = Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000|||PB-X|P|2.5\rPID|1||MRN-X\r');
    const batch = Buffer.concat([
      Buffer.from('BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B-2\r'),
      ormNew('PB-O3', 'ACC-PB3'),
      refused,
      ormNew('PB-O3', 'ACC-PB3'),
      ormNew('PB-O4', 'ACC-PB4'),
      Buffer.from('BTS|4\r'),
    ]);
    const replies = c.expect(2);
    c.writeRaw(Buffer.concat([wrapFrame(batch), wrapFrame(oruFinal('PB-R4', 'ACC-PB4'))]));
    const [batchReply, resultReply] = await replies;
    const acks = framesOf(wrapFrame(batchReply!))[0]!.filter((s) => s[0] === 'MSA').map((s) => [s[1], s[2]]);
    expect(acks).toEqual([['AA', 'PB-O3'], ['AR', 'PB-X'], ['AA', 'PB-O3'], ['AA', 'PB-O4']]);
    expect(field(framesOf(wrapFrame(resultReply!))[0], 'MSA', 1)).toBe('AA');
    expect(h.intakeEvents.map((e) => e.outcome)).toEqual(['accepted', 'rejected', 'duplicate', 'accepted', 'accepted']);
    expect(await h.rawOf('PB-X', 'rejected')).toBeDefined();
    const leases = await h.store.lease({ limit: 10, maxPerPartition: 10, sameTypeOnly: false });
    expect(leases.find((l) => l.partitionKey === 'order:ACC-PB3')?.events.map((e) => e.event.type)).toEqual(['order.created']);
    expect(leases.find((l) => l.partitionKey === 'order:ACC-PB4')?.events.map((e) => e.event.type)).toEqual(['order.created', 'result.validated']);
  });

  /**
   * What the user sees: with the store as the gateway really opens it (deriver: invoice
   * eligibility, gateway.ts:132), a LIS pipelining a new order and then a preliminary result for
   * it gets the result's chatter note queued before the sale order: the relay posts a note to an
   * order that does not exist yet.
   * Promise broken: DESIGN.md §2 "Order within a partition"; hl7/README.md "Order" (pipelined
   * frames of one connection); store/README.md "key order is arrival order".
   * Cause: the intake (mllp-connection.ts:145, hl7-intake.ts:351) relies on store.commit() taking
   * commits in call order, but EventStore.commit (event-store.ts:865-871) sends a commit with
   * billing events (order.created) through #withKeys + an awaited derivation, i.e. at least one
   * LevelDB read later, while a commit without billing events (test.completed) runs at once and
   * gets the earlier event id and queue position in the same partition.
   * Fix: serialise commits per partition key, not only per derivation key (take the drafts'
   * partition keys into #withKeys, or assign ids/queue positions at call time), or have the MLLP
   * connection issue the next frame's commit only once the previous one has been issued.
   */
  it('a preliminary result pipelined behind its new order is queued after the order (real store deriver)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mllp-audit-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, deriver: invoiceEligibility });
    cleanups.push(() => store.close());
    const endpoint = new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log: silentLogger });
    await endpoint.start();
    cleanups.push(() => endpoint.stop(2_000));
    const c = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const replies = c.expect(2);
    c.writeRaw(Buffer.concat([wrapFrame(ormNew('DV-O1', 'ACC-DV1')), wrapFrame(oruPreliminary('DV-R1', 'ACC-DV1'))]));
    const got = await replies;
    expect(got.map((r) => field(framesOf(wrapFrame(r))[0], 'MSA', 2))).toEqual(['DV-O1', 'DV-R1']);
    const leases = await store.lease({ limit: 10, maxPerPartition: 10, sameTypeOnly: false });
    const order = leases.find((l) => l.partitionKey === 'order:ACC-DV1');
    expect(order?.events.map((e) => e.event.type)).toEqual(['order.created', 'test.completed']);
  });
});

describe('MLLP audit: charsets (MSH-18 UNICODE UTF-8)', () => {
  /**
   * What the user sees: a UTF-8 batch from "Labor Köln" is answered with a batch whose BHS reads
   * "Labor KÃ¶ln" (the MSH of each ACK inside is right): the reply is internally inconsistent and
   * a LIS matching the batch header's facility sees a different name.
   * Promise broken: issue "charsets from MSH-18 (ASCII, 8859/1, UNICODE UTF-8)"; hl7/README.md
   * "The ACK is encoded in the message's charset".
   * Cause: hl7-intake.ts:143 (envelopeField) reads the BHS/FHS fields as Latin-1 text, and
   * hl7-intake.ts:301 encodes the whole reply in the members' charset (UTF-8): every non-ASCII
   * byte copied from the envelope is encoded twice.
   * Fix: read the envelope fields with the charset the reply is encoded in (decodeText with the
   * batch's charset), or build the reply as Latin-1 text of the raw bytes and encode it Latin-1.
   */
  it('the batch reply copies a UTF-8 BHS facility name without double-encoding it', async () => {
    h = await GatewayHarness.start();
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const batch = Buffer.concat([Buffer.from('BHS|^~\\&|LIS|Labor Köln|GW|LAB|20240101120000||||B-UTF\r', 'utf8'), adtUtf8('BU-1'), adtUtf8('BU-2'), Buffer.from('BTS|2\r')]);
    const reply = (await c.send(batch)).toString('utf8');
    const segments = reply.split('\r');
    const msh = segments.find((s) => s.startsWith('MSH'))!.split('|');
    const bhs = segments.find((s) => s.startsWith('BHS'))!.split('|');
    expect(msh[5], 'MSH-6 of the ACK inside the batch').toBe('Labor Köln');
    expect(bhs[5], 'BHS-6 of the batch reply (the received BHS-4)').toBe('Labor Köln');
  });

  /**
   * What the user sees: a UTF-8 message over maxMessageBytes is answered AR and its head kept
   * "for the operator", but it is stored labelled Latin-1: the message browser
   * (GET /api/messages/:id decodes raw by the stored encoding, status/http-server.ts:339) shows
   * "Labor KÃ¶ln", "MÃ¼ller" instead of the text the analyzer/LIS sent.
   * Promise broken: DESIGN.md §2 "Bad input … is kept, raw, for an operator"; hl7/README.md
   * "The store records the charset actually used (encoding)"; the MSH-18 charsets.
   * Cause: hl7-intake.ts:195 (handleOversize) hard-codes 'latin1' as the stored charset (and
   * :194/:199 for the reply) instead of choosing it from the head's MSH-18 like readInbound does.
   * Fix: charsetFromMsh18(header.charset, defaultCharset) + chooseCharset(head) for the stored
   * encoding and the reply, as in #processMessage.
   */
  it('an oversize UTF-8 message is kept with the charset its MSH-18 declares', async () => {
    h = await GatewayHarness.start({ maxMessageBytes: 2_048 });
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const big = adtUtf8('BIG-UTF', `NTE|1||Müller ${'x'.repeat(4_000)}\r`);
    const ack = framesOf(wrapFrame(await c.send(big)))[0];
    expect(field(ack, 'MSA', 1)).toBe('AR');
    expect(field(ack, 'MSA', 2)).toBe('BIG-UTF');
    const [stored] = await h.store.listMessages({ controlId: 'BIG-UTF', endpoint: 'lis' });
    expect(stored?.status).toBe('rejected');
    expect(stored?.encoding, 'charset recorded for the kept head').toBe('utf8');
  });

  // Follow-up of the fix: the head is cut at a byte count, possibly inside a character; that must
  // not hide that its bytes are UTF-8 (an MSH-18 left empty is corrected by the bytes).
  it('an oversize UTF-8 message without MSH-18, cut inside a character, is kept as UTF-8', async () => {
    const big = Buffer.from(`MSH|^~\\&|LIS|Labor Köln|GW|LAB|20240101120000||ADT^A01|BIG-CUT|P|2.5\rPID|1||M-1\rNTE|1||Müller ${'x'.repeat(4_000)}\r`, 'utf8');
    const cut = big.indexOf(Buffer.from('ü', 'utf8')) + 1;
    h = await GatewayHarness.start({ maxMessageBytes: cut });
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    cleanups.push(() => c.close());
    const reply = await c.send(big);
    const ack = framesOf(wrapFrame(reply))[0];
    expect(field(ack, 'MSA', 1)).toBe('AR');
    expect(field(ack, 'MSA', 2)).toBe('BIG-CUT');
    expect(reply.toString('utf8')).toContain('|Labor Köln|');
    const [stored] = await h.store.listMessages({ controlId: 'BIG-CUT', endpoint: 'lis' });
    expect(stored?.encoding).toBe('utf8');
    expect(stored?.sender).toBe('LIS^Labor Köln');
  });
});
