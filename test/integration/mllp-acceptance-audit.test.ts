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
import { afterEach, describe, expect, it, vi } from 'vitest';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await h?.stop();
  h = undefined;
});

/**
 * Resolves with the connection's error code, or 'connected'. A host that drops the packets (a
 * firewall) resolves with 'no answer' after 20 s instead of hanging the test.
 */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('no answer');
    }, 20_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? String(e));
    });
  });
}

/**
 * This machine's addresses as they exist here: a CI box may have no LAN address, or no IPv6 at
 * all (then no ::1 either).
 */
function otherAddresses(): { lan: string[]; loopback6: boolean } {
  const all = Object.values(networkInterfaces()).flatMap((a) => a ?? []);
  return {
    lan: all.filter((a) => !a.internal && a.family === 'IPv4').map((a) => a.address),
    loopback6: all.some((a) => a.family === 'IPv6' && a.address === '::1'),
  };
}

describe('the HL7 listener binds only its configured host', () => {
  it('bound to 127.0.0.1: reachable there, refused on 127.0.0.2, ::1 and the LAN addresses', async () => {
    h = await GatewayHarness.start({ listen: { host: '127.0.0.1', port: 0 } });
    const { lan, loopback6 } = otherAddresses();
    expect(await tryConnect('127.0.0.1', h.port)).toBe('connected');
    // Linux routes all of 127.0.0.0/8 to lo: 127.0.0.2 is there on every box.
    expect(await tryConnect('127.0.0.2', h.port)).toBe('ECONNREFUSED');
    for (const address of lan) expect(await tryConnect(address, h.port), address).toBe('ECONNREFUSED');
    if (loopback6) expect(await tryConnect('::1', h.port)).toBe('ECONNREFUSED');
    // No IPv6 on this machine: ::1 cannot be reached at all (EADDRNOTAVAIL, ENETUNREACH…).
    else expect(await tryConnect('::1', h.port)).not.toBe('connected');
  });

  it('the check itself: listeners bound to 0.0.0.0 and :: are reached on those addresses (so the refusals above mean something)', async () => {
    const { lan, loopback6 } = otherAddresses();
    h = await GatewayHarness.start({ listen: { host: '0.0.0.0', port: 0 } });
    for (const address of ['127.0.0.2', ...lan]) expect(await tryConnect(address, h.port), address).toBe('connected');
    if (loopback6) {
      const v6 = await h.addEndpoint({ id: 'lis6', listen: { host: '::', port: 0 } });
      expect(await tryConnect('::1', v6.address()!.port)).toBe('connected');
    }
  });
});

const oru = (id: string): Buffer =>
  Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU||5.4|mmol/L|||||F\r`, 'latin1');

describe('two pipelined frames over TCP, split at every byte offset', () => {
  it('every split: both answered AA in order, both stored byte-exact, no byte counted as noise', async () => {
    h = await GatewayHarness.start();
    let ignored = 0;
    h.telemetry.on('endpoint.ignored-bytes', (e) => (ignored += e.count));
    // The gateway's side of the connection (the listener runs in this process), to know when it
    // has read the first part: a pause after it would not (on a loaded machine the gateway may read
    // both parts as one chunk, and the split would not be tested at all).
    const accepted: net.Socket[] = [];
    const emit = net.Server.prototype.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;
    const tap = vi.spyOn(net.Server.prototype, 'emit').mockImplementation(function (this: net.Server, event: string | symbol, ...args: unknown[]) {
      if (event === 'connection') accepted.push(args[0] as net.Socket);
      return emit.call(this, event, ...args);
    });
    const socket = net.connect({ host: '127.0.0.1', port: h.port });
    socket.setNoDelay(true);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let got = Buffer.alloc(0);
    let wake: (() => void) | undefined;
    const woken = (): Promise<void> => new Promise<void>((r) => (wake = r));
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      wake?.();
    });
    socket.on('close', () => wake?.());
    while (accepted.length === 0) await new Promise((r) => setImmediate(r));
    tap.mockRestore();
    expect(accepted).toHaveLength(1);
    const server = accepted[0]!;
    let read = 0;
    server.on('data', (d: Buffer) => {
      read += d.length;
      wake?.();
    });
    let written = 0;
    const frames = (): string[][][] => framesOf(got);
    const length = Buffer.concat([wrapFrame(oru('S0000A')), wrapFrame(oru('S0000B'))]).length;
    const problems: string[] = [];
    for (let offset = 1; offset < length; offset++) {
      const tag = String(offset).padStart(4, '0');
      const a = oru(`S${tag}A`);
      const b = oru(`S${tag}B`);
      const wire = Buffer.concat([wrapFrame(a), wrapFrame(b)]);
      const before = frames().length;
      // Two writes, the second once the gateway has read the first: two chunks for its decoder.
      socket.write(wire.subarray(0, offset));
      written += offset;
      while (read < written && !socket.destroyed) await woken();
      socket.write(wire.subarray(offset));
      written += wire.length - offset;
      while (frames().length < before + 2 && !socket.destroyed) await woken();
      expect(socket.destroyed, `offset ${offset}: the gateway closed the connection`).toBe(false);
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
