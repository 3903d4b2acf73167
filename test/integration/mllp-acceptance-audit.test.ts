/**
 * Issue 2 ("MLLP listener") promises whose tests stopped short of the real socket:
 *  - "bind to the configured host only": mllp-endpoint.test.ts read back the address the listener
 *    reports; here a connection to the same port on another address of this machine is refused
 *    (127.0.0.2 is loopback too and reaches a listener bound to 0.0.0.0, as does ::1 one bound to
 *    ::, and the machine's own LAN address where it has one);
 *  - "one message split across many chunks (at every byte offset, in tests)": mllp-decoder.test.ts
 *    splits in memory; here two pipelined frames go over real TCP in two writes, split at every
 *    byte offset, and each must be answered AA in order and stored byte-exact.
 */
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** Resolves with the connection's error code, or 'connected'. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
  });
}

describe('the HL7 listener binds only its configured host', () => {
  it('bound to 127.0.0.1: reachable there, refused on 127.0.0.2, ::1 and the LAN address', async () => {
    h = await GatewayHarness.start({ listen: { host: '127.0.0.1', port: 0 } });
    expect(await tryConnect('127.0.0.1', h.port)).toBe('connected');
    expect(await tryConnect('127.0.0.2', h.port)).toBe('ECONNREFUSED');
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
      .map((a) => a!.address);
    for (const address of others) expect(await tryConnect(address, h.port), address).toBe('ECONNREFUSED');
    const v6 = await tryConnect('::1', h.port);
    // ::1 is refused, or not configured at all on this machine (no IPv6): never connected.
    expect(v6).not.toBe('connected');
  });

  it('the check itself: a listener bound to 0.0.0.0 is reached on 127.0.0.2 (so the refusal above means something)', async () => {
    h = await GatewayHarness.start({ listen: { host: '0.0.0.0', port: 0 } });
    expect(await tryConnect('127.0.0.2', h.port)).toBe('connected');
  });
});

const oru = (id: string): Buffer =>
  Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU||5.4|mmol/L|||||F\r`, 'latin1');

describe('two pipelined frames over TCP, split at every byte offset', () => {
  it('every split: both answered AA in order, both stored byte-exact, no byte counted as noise', async () => {
    h = await GatewayHarness.start();
    let ignored = 0;
    h.telemetry.on('endpoint.ignored-bytes', (e) => (ignored += e.count));
    const socket = net.connect({ host: '127.0.0.1', port: h.port });
    socket.setNoDelay(true);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let got = Buffer.alloc(0);
    let wake: (() => void) | undefined;
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      wake?.();
    });
    const frames = (): string[][][] => framesOf(got);
    const length = Buffer.concat([wrapFrame(oru('S0000A')), wrapFrame(oru('S0000B'))]).length;
    const problems: string[] = [];
    for (let offset = 1; offset < length; offset++) {
      const tag = String(offset).padStart(4, '0');
      const a = oru(`S${tag}A`);
      const b = oru(`S${tag}B`);
      const wire = Buffer.concat([wrapFrame(a), wrapFrame(b)]);
      const before = frames().length;
      // Two writes with a pause between them: two TCP segments, read by the gateway as two chunks.
      socket.write(wire.subarray(0, offset));
      await new Promise((r) => setTimeout(r, 2));
      socket.write(wire.subarray(offset));
      while (frames().length < before + 2) await new Promise<void>((r) => (wake = r));
      const replies = frames().slice(before);
      const ids = replies.map((f) => `${field(f, 'MSA', 1)} ${field(f, 'MSA', 2)}`);
      if (ids.join(',') !== `AA S${tag}A,AA S${tag}B`) problems.push(`offset ${offset}: ${ids.join(',')}`);
      for (const m of [a, b]) {
        const id = m.toString('latin1').split('|')[9]!;
        if (!(await h.rawOf(id))?.equals(m)) problems.push(`offset ${offset}: ${id} not stored byte-exact`);
      }
    }
    socket.destroy();
    expect(problems).toEqual([]);
    expect(h.store.intake().accepted).toBe(2 * (length - 1));
    expect(h.store.intake().duplicates).toBe(0);
    expect(h.intakeEvents.every((e) => e.outcome === 'accepted')).toBe(true);
    expect(ignored, 'bytes counted as outside frames').toBe(0);
  }, 60_000);
});
