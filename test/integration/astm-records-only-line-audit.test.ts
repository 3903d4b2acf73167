/**
 * Commissioning an analyzer that speaks E1394 records with no link protocol (records-only,
 * `lowLevel: none`) on a serial line set to the wrong baud rate: the real gateway process, the
 * analyzer on a socat pty pair. What the IT person reads is what is asserted: the message browser,
 * GET /api/status.
 */
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { getJson, startGatewayProcess, until, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { openSerialSim } from '../fixtures/astm-link/sim-wires.ts';

const rig = useLineRig('lgw-records-only-line-');
const { file, running, cleanups, ptys } = rig;

interface StatusBody {
  healthReasons: Array<{ code: string; message: string; endpoint?: string }>;
  endpoints: Array<{ id: string; state: string }>;
}

/**
 * What a records-only analyzer's results look like on a line read at the wrong baud rate: the
 * bits of each character land in other characters, so no H record begins a message, no CR
 * separates records, and bytes no ASTM text holds (NUL, 0x80 and up) arrive.
 */
function wrongBaudBytes(): Buffer {
  // Three results, as the analyzer sends its run.
  const sent = Buffer.from('H|\\^&|||BS-240|||||||P|1\rP|1||PID-1\rO|1|S-1||^^^GLU\rR|1|^^^GLU|5.4|mmol/L\rL|1|N\r'.repeat(3), 'latin1');
  const out: number[] = [];
  for (const b of sent) out.push(0x80 | (b >> 1), (b << 3) & 0xf8);
  return Buffer.from(out);
}

describe('a records-only analyzer on a serial line at the wrong baud rate', () => {
  /**
   * User sees: the IT person commissioning a Mindray BS analyzer (records, no ENQ/ACK) set the
   * gateway's port to 9600 while the analyzer sends at 19200. The message browser kept the bytes
   * as "incomplete message (receiver-timeout)" and the status said OK: nothing pointed at the baud
   * rate, while the same fault on an E1381 line names the serial settings (reason and LINE_ERRORS).
   * Promise: DESIGN.md §2 "Bad input … is answered with a clear reason and kept, raw, for an
   * operator"; ingress/astm README "Line trouble".
   */
  it('the bytes kept and the status both say to check the serial settings', async () => {
    const pty = await startPtyPair(rig.dir, ['ro-an', 'ro-gw']);
    ptys.push(pty);
    const cfg = await file(
      [
        `gateway: { id: site-ro, dataDir: ${path.join(rig.dir, 'site-ro-data')} }`,
        TEST_LISTENERS,
        `analyzers: [ { id: bs-1, profile: generic-astm, serial: { path: ${pty.b} }, overrides: { lowLevel: records-only, frameTimeoutMs: 1500 } } ]`,
        '',
      ].join('\n'),
    );
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const base = ready!.status.url.replace(/\/$/, '');
    await until('the analyzer line open', async () => ((await getJson<StatusBody>(`${base}/api/status`)).endpoints.find((e) => e.id === 'bs-1')?.state === 'connected' ? true : undefined));
    const { port } = await openSerialSim(pty.a, cleanups);
    const garbage = wrongBaudBytes();
    port.write(garbage);

    const kept = await until('the bytes kept for the operator', async () => {
      const r = await getJson<{ messages: Array<{ status: string; rejectReason?: string; bytes?: number }> }>(`${base}/api/messages?endpoint=bs-1`);
      return r.messages.find((m) => m.status === 'rejected');
    });
    expect(kept.rejectReason).toMatch(/serial settings \(baud/);
    const st = await until('the line trouble on the status', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      return s.healthReasons.some((r) => r.endpoint === 'bs-1' && r.code === 'LINE_ERRORS') ? s : undefined;
    }, 10_000).catch(() => getJson<StatusBody>(`${base}/api/status`));
    expect(st.healthReasons.find((r) => r.endpoint === 'bs-1' && r.code === 'LINE_ERRORS')?.message).toMatch(/serial settings \(baud/);
  }, 60_000);
});

describe('misread bytes on a records-only link while the store refuses', () => {
  const tmp = useTempStore('lgw-records-only-misread-', { pruneIntervalMs: 0, minFreeBytes: 0, healthCheckIntervalMs: 50 });

  /**
   * This mode has no NAK, so a message the store refuses is committed again every second until it
   * is taken. Misread bytes (wrong baud rate) that happen to end like a message were counted as
   * line trouble at every attempt: the status' ignored bytes grew each second of a store outage.
   */
  it('counts the misread bytes once, however often they are committed again', async () => {
    const store = await tmp.open();
    const telemetry = new Telemetry();
    const link: Array<TelemetryEvents['endpoint.link']> = [];
    telemetry.on('endpoint.link', (e) => link.push(e));
    const ep = new AstmEndpoint({
      analyzer: { id: 'ro-misread', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      profile: { name: 'test', quirks: { lowLevel: 'records-only' } },
      store,
      telemetry,
      log: silentLogger,
      normalize: (text) => (text.startsWith('H') ? { events: [], messageType: 'ASTM', searchTerms: [] } : { events: [], messageType: 'ASTM', searchTerms: [], reject: 'no H record' }),
    });
    cleanups.push(() => ep.stop(2_000));
    await ep.start();
    const socket = net.connect({ host: '127.0.0.1', port: ep.address()!.port });
    await new Promise<void>((r) => socket.once('connect', () => r()));
    cleanups.push(() => void socket.destroy());

    store.simulateWriteFailure(new Error('transient I/O error'));
    // Misread bytes that end in what reads as an L record.
    const misread = Buffer.from('\xa4\x40\xae\x70\x8d\rL|1|N\r', 'latin1');
    socket.write(misread);
    await until('committed again at least twice', () => (store.intake().rejected >= 2 ? true : undefined), 10_000);
    store.simulateWriteFailure(undefined);
    await until('kept', async () => ((await store.listMessages({ endpoint: 'ro-misread', limit: 10 })).length > 0 ? true : undefined), 10_000);
    expect(link.at(-1)?.ignoredBytes).toBe(misread.length);
  }, 30_000);
});
