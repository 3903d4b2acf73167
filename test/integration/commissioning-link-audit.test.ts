/**
 * Commissioning an analyzer's line, played the way IT staff do it: the real CLI (`lab-gateway
 * start|check|status`, as separate processes from the sources) and the real gateway; analyzers are
 * socat pty pairs or real TCP peers. What the IT person reads is what is asserted: the message
 * browser, `lab-gateway status`, GET /api/status and the log at its default level.
 */
import { symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { refusedPort } from '../fixtures/ports.ts';
import { getJson, startGatewayProcess, until, type GatewayProcess, type GatewayReady, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { openSerialSim } from '../fixtures/astm-link/sim-wires.ts';

const rig = useLineRig('lgw-commissioning-link-');
const { file, running, cleanups, ptys } = rig;
const listeners = TEST_LISTENERS;

interface StatusBody {
  health: string;
  healthReasons: Array<{ code: string; message: string; endpoint?: string }>;
  endpoints: Array<{ id: string; state: string }>;
  endpointDetail: Array<{ id: string; state: string; detail: string | null; link?: { framesRefused: number; ignoredBytes: number; lastRefusal: string | null } }>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A gateway with one E1381 analyzer (generic-astm) on a pty pair, the analyzer's end open, the link up. */
async function serialAnalyzer(site: string): Promise<{ gw: GatewayProcess; ready: GatewayReady; base: string; sim: AnalyzerSim }> {
  const pty = await startPtyPair(rig.dir, [`${site}-an`, `${site}-gw`]);
  ptys.push(pty);
  const cfg = await file([`gateway: { id: ${site}, dataDir: ${path.join(rig.dir, `${site}-data`)} }`, listeners, `analyzers: [ { id: chem-1, profile: generic-astm, serial: { path: ${pty.b} } } ]`, ''].join('\n'));
  const gw = startGatewayProcess(cfg);
  running.push(gw);
  const ready = await gw.ready;
  expect(ready, gw.err()).toBeDefined();
  const { sim } = await openSerialSim(pty.a, cleanups);
  const base = ready!.status.url.replace(/\/$/, '');
  await until('the analyzer line open', async () => ((await getJson<StatusBody>(`${base}/api/status`)).endpoints.find((e) => e.id === 'chem-1')?.state === 'connected' ? true : undefined));
  return { gw, ready: ready!, base, sim };
}

/**
 * The analyzer sends 8-bit text (a patient name with an umlaut); a line set to 7 data bits
 * delivers it with the 8th bit lost, so its checksum (computed by the analyzer on the byte it sent)
 * no longer matches. The gateway NAKs; the analyzer sends it 7 times, then gives up (EOT).
 */
async function sendFrameWithLostEighthBit(sim: AnalyzerSim): Promise<number[]> {
  const header = buildFrame(1, Buffer.from('H|\\^&|||chem^1|||||host||P|1\r', 'latin1'), true);
  const sent = buildFrame(2, Buffer.from('P|1||PID-1||M\xfcller^Hans\r', 'latin1'), true);
  const garbled = Buffer.from(sent.map((b) => b & 0x7f));
  sim.write([0x05]);
  expect(await sim.nextByte()).toBe(0x06);
  sim.write(header);
  expect(await sim.nextByte()).toBe(0x06);
  const replies: number[] = [];
  for (let i = 0; i < 7; i++) {
    sim.write(garbled);
    replies.push(await sim.nextByte());
  }
  sim.write([0x04]);
  return replies;
}

describe('an analyzer on a serial line whose frames arrive corrupted (baud, parity or data bits set wrong)', () => {
  /**
   * User sees: frames garbled on the line (a wrong data-bits/parity/baud setting) are NAKed until
   * the analyzer gives up; the message browser kept the bytes with the reason "incomplete message
   * (eot-before-end)" and the log (default level) said only "incomplete message kept as rejected
   * raw bytes". Nothing the IT person read said the frames failed their checksum — the one clue
   * that points at the serial settings.
   * Promise: DESIGN.md §2 "Bad input … is answered (AE/AR/NAK) with a clear reason and kept, raw,
   * for an operator".
   * Cause (was): e1381-session.ts `#refused(reason)` only counted and emitted a `frame-refused` link
   * event, logged at debug; `#partial` handed only the PartialReason to onPartial.
   */
  it('the message kept for the operator says why it was refused: the frames failed their checksum', async () => {
    const { gw, base, sim } = await serialAnalyzer('site-3');
    const replies = await sendFrameWithLostEighthBit(sim);
    expect(replies.every((b) => b === 0x15), 'every corrupted frame is NAKed').toBe(true);

    const kept = await until('the incomplete message kept for the operator', async () => {
      const r = await getJson<{ messages: Array<{ status: string; rejectReason?: string }> }>(`${base}/api/messages?endpoint=chem-1`);
      return r.messages.find((m) => m.status === 'rejected');
    });
    // What the IT person reads: the message browser's reason, the log at its default level.
    expect({ reason: kept.rejectReason, logNamesChecksum: /checksum/i.test(gw.err()) }).toEqual({
      reason: expect.stringMatching(/7 frames refused: checksum mismatch.*serial settings/i),
      logNamesChecksum: true,
    });
  }, 60_000);

  /** A chatty line refusing frame after frame must not write one warning per frame. */
  it('the refusals are logged as a warning once, not once per frame', async () => {
    const { gw, sim } = await serialAnalyzer('site-3b');
    await sendFrameWithLostEighthBit(sim);
    await until('the incomplete message logged', () => (gw.err().includes('incomplete message') ? true : undefined));
    const warnings = gw
      .err()
      .split('\n')
      .filter((l) => l.includes('"level":"warn"') && /checksum/i.test(l));
    // One for the refusals (rate-limited per line), one for the message kept with its reason.
    expect(warnings.length, warnings.join('\n')).toBeGreaterThanOrEqual(1);
    expect(warnings.length, warnings.join('\n')).toBeLessThan(7);
  }, 60_000);

  /**
   * User sees (was): the status said OK, the analyzer "connected", while every frame of it was
   * refused; the refusals were counted only in /metrics' totals, without the reason.
   */
  it('the status counts the refused frames on the analyzer and says why while most frames are refused', async () => {
    const { base, sim } = await serialAnalyzer('site-3c');
    await sendFrameWithLostEighthBit(sim);
    const st = await until('the refusals on the status', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      return (s.endpointDetail.find((e) => e.id === 'chem-1')?.link?.framesRefused ?? 0) >= 7 ? s : undefined;
    }, 10_000).catch(() => getJson<StatusBody>(`${base}/api/status`));
    const ep = st.endpointDetail.find((e) => e.id === 'chem-1');
    expect(ep?.link).toMatchObject({ framesRefused: 7, lastRefusal: 'checksum mismatch' });
    expect(st.health).toBe('degraded');
    expect(st.healthReasons.find((r) => r.endpoint === 'chem-1')?.message).toMatch(/7 of 8 frames refused.*checksum mismatch.*serial settings/);
    const cli = await runCli(cliSource, ['status', '--url', base]);
    expect(cli.out).toMatch(/chem-1.*frames refused/);
  }, 60_000);

  /**
   * A wrong parity or baud rate turns the analyzer's ENQ into other bytes: the gateway never sees a
   * session start and ignores everything as bytes outside frames. The status said OK, "connected".
   */
  it('an analyzer whose bytes are all ignored outside frames shows on the status with the count', async () => {
    const { base, sim } = await serialAnalyzer('site-3d');
    // What 8N1 text read at the wrong baud rate looks like: no ENQ, no STX, just bytes.
    sim.write(Buffer.alloc(600, 0x7f));
    const st = await until('the ignored bytes on the status', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      return (s.endpointDetail.find((e) => e.id === 'chem-1')?.link?.ignoredBytes ?? 0) >= 600 ? s : undefined;
    }, 10_000).catch(() => getJson<StatusBody>(`${base}/api/status`));
    expect(st.endpointDetail.find((e) => e.id === 'chem-1')?.link?.ignoredBytes).toBe(600);
    expect(st.healthReasons.find((r) => r.endpoint === 'chem-1')?.message).toMatch(/600 bytes ignored outside frames.*serial settings/);
  }, 60_000);
});

describe('an analyzer whose serial port cannot be opened', () => {
  /**
   * User sees (was): an analyzer configured with a serial path that does not exist (adapter not
   * plugged in, /dev/ttyUSB1 instead of /dev/ttyUSB0): a second after start `lab-gateway status`
   * said "OK" and "xp-1: connecting", forever, without the path or the error.
   * Promise: README `status` (health degraded with ENDPOINT_DOWN for an endpoint in error).
   * Cause (was): serial-transport.ts set 'connecting' at every reopen, and 'error' again only when
   * the error text differed from the last one; status-model.ts does not count 'connecting' as bad.
   */
  /** `lab-gateway status` of a gateway started on `cfg`, 5 s after it was ready (its links have retried). */
  async function statusAfterRetries(cfg: string): Promise<{ out: string }> {
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    await sleep(5_000);
    return runCli(cliSource, ['status', '--url', ready!.status.url.replace(/\/$/, '')]);
  }

  it('lab-gateway status keeps saying why, after the gateway has tried to open it again', async () => {
    const missing = path.join(rig.dir, 'ttyUSB-not-plugged');
    const cfg = await file([`gateway: { id: site-4, dataDir: ${path.join(rig.dir, 'site-data-4')} }`, listeners, `analyzers: [ { id: xp-1, profile: sysmex-xp, serial: { path: ${missing} } } ]`, ''].join('\n'));
    // Start-up reports it; the reopen attempts (0.5 s, 1 s, 2 s, ±20 %) fail the same way.
    const later = await statusAfterRetries(cfg);
    expect(later.out, later.out).toContain(missing);
    expect(later.out.split('\n')[0]).not.toMatch(/: OK$/);
    expect(later.out).toMatch(/xp-1: error/);
  }, 60_000);

  /**
   * The same for an analyzer the gateway connects to (tcp.connect) that refuses the connection:
   * the state went connecting ↔ disconnected with the detail "connect failed", naming neither the
   * address nor the error.
   */
  it('an analyzer on tcp.connect that refuses the connection: status names the address and the error', async () => {
    const closed = await refusedPort();
    const cfg = await file([`gateway: { id: site-4t, dataDir: ${path.join(rig.dir, 'site-data-4t')} }`, listeners, `analyzers: [ { id: xn-9, profile: generic-astm, tcp: { connect: { host: 127.0.0.1, port: ${closed} } } } ]`, ''].join('\n'));
    const later = await statusAfterRetries(cfg);
    expect(later.out.split('\n')[0]).not.toMatch(/: OK$/);
    expect(later.out).toContain(`127.0.0.1:${closed}`);
    expect(later.out).toMatch(/ECONNREFUSED|refused/);
  }, 60_000);
});

describe('lab-gateway check on a site with two analyzers', () => {
  /**
   * User sees (was): a second analyzer copied from the first with the same `serial.path`: `check`
   * said "0 error(s)", `start` was ready, and one analyzer never opened its port ("Cannot lock port").
   * Promise: DESIGN.md §5 `check` "validate config and profiles, print every issue, exit 1 on any
   * error"; README "two listeners … may not take the same port".
   * Cause (was): config/validate.ts cross-checked ids and listener ports only.
   */
  it('two analyzers on the same serial port: check names the second one\'s serial.path, as it names two listeners on one TCP port', async () => {
    const cfg = await file(
      [
        `gateway: { id: site-5, dataDir: ${path.join(rig.dir, 'site-data-5')} }`,
        listeners,
        'analyzers:',
        '  - { id: xp-1, profile: sysmex-xp, serial: { path: /dev/ttyUSB0 } }',
        '  - { id: xp-2, profile: sysmex-xp, serial: { path: /dev/ttyUSB0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect({ code: r.code, out: r.out }).toEqual({ code: 1, out: expect.stringMatching(/error\s+analyzers\[1\]\.serial\.path: .*(xp-1|analyzers\[0\])/) });
  }, 30_000);

  /** A /dev/serial/by-id link and the /dev/ttyUSBn it points to are one port. */
  it('a by-id link to the port another analyzer names is the same port, for check and for start', async () => {
    const port = path.join(rig.dir, 'ttyUSB7');
    await writeFile(port, '');
    const byId = path.join(rig.dir, 'usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0');
    await symlink(port, byId);
    const cfg = await file(
      [
        `gateway: { id: site-5b, dataDir: ${path.join(rig.dir, 'site-data-5b')} }`,
        listeners,
        'analyzers:',
        `  - { id: xp-1, profile: sysmex-xp, serial: { path: ${port} } }`,
        `  - { id: xp-2, profile: sysmex-xp, serial: { path: ${byId} } }`,
        '',
      ].join('\n'),
    );
    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.code, checked.out).toBe(1);
    expect(checked.out).toMatch(/error\s+analyzers\[1\]\.serial\.path: .*usb-FTDI.*ttyUSB7.*analyzers\[0\] \(xp-1\)/);
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    expect(await gw.ready, 'start refuses what check refuses').toBeUndefined();
    expect((await gw.exited).code).not.toBe(0);
    expect(gw.err()).toContain('analyzers[1].serial.path');
  }, 30_000);
});
