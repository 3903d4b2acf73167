/**
 * A LIS that does not notice the gateway's FIN. Simple LIS interfaces read their socket only while
 * they wait for an ACK: when the gateway closes the connection (idle timeout, stop), the LIS's
 * side stays open until it next sends. Real parts: a LevelDB EventStore in a temp dir, the
 * MllpEndpoint on a real TCP port, a raw socket that keeps its side open (allowHalfOpen) as the LIS.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { silentLogger, type Logger } from '../../gateway/src/log.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';

const adt = (id: string): Buffer => Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ADT^A01|${id}|P|2.5\rPID|1||M-${id}\r`, 'latin1');

let h: GatewayHarness | undefined;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  await h?.stop();
  h = undefined;
});

/** A LIS connection that reads what comes but never closes its own side by itself. */
function lisSocket(port: number): Promise<{ socket: net.Socket; got: Buffer[]; events: string[] }> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const events: string[] = [];
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve({ socket, got, events }));
    socket.on('data', (c: Buffer) => got.push(c));
    socket.on('end', () => events.push('fin'));
    socket.on('error', (err: NodeJS.ErrnoException) => events.push(`error ${err.code ?? err.message}`));
    socket.on('close', () => events.push('close'));
    socket.once('error', reject);
    cleanups.push(() => void socket.destroy());
  });
}

describe('MLLP: a LIS that keeps its side open after the gateway closes', () => {
  /**
   * What the user saw: after a quiet half hour the gateway closed the idle LIS link, but the status
   * went on reading "connected, 1 connection" for as long as the LIS stayed quiet, and the closed
   * connection held a slot of maxConnections: a LIS that reconnects without a word (new connection
   * per burst) filled the limit with connections the gateway had already closed, and was refused.
   * Promise broken: issue 2 "idle timeout", "connection limit"; hl7/README.md "Half-close and idle".
   * Cause: mllp-connection.ts ended the socket (FIN) and then waited for the peer's own close for
   * as long as it took.
   */
  it('the idle-closed connection is let go while the LIS keeps its side open', async () => {
    h = await GatewayHarness.start({ idleTimeoutMs: 100 });
    const lis = await lisSocket(h.port);
    lis.socket.write(wrapFrame(adt('PC-1')));
    await expect.poll(() => framesOf(Buffer.concat(lis.got)).length, { timeout: 10_000 }).toBe(1);
    expect(field(framesOf(Buffer.concat(lis.got))[0], 'MSA', 2)).toBe('PC-1');
    // The idle close: the LIS's stack receives the FIN; the LIS itself does nothing about it.
    await expect.poll(() => lis.events.includes('fin'), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => h!.endpoint.connections, { timeout: 15_000, message: 'the closed connection still counts' }).toBe(0);
    expect(h.stateEvents.at(-1)?.state).toBe('listening');
    expect(lis.events.includes('close'), 'the LIS side is still open').toBe(false);
    // A message it writes into the closed connection is not taken without an answer.
    lis.socket.write(wrapFrame(adt('PC-2')));
    await h.store.flush();
    expect(await h.rawOf('PC-2'), 'stored but never answered').toBeUndefined();
    expect(framesOf(Buffer.concat(lis.got)).length).toBe(1);
  });

  /**
   * What the user saw: `systemctl stop lab-gateway` (SIGTERM) while the LIS was connected took the
   * whole stop deadline, logged "stop deadline reached; closing remaining connections", and left
   * the relay and the store no time of their own (the gateway's 15 s is shared, ingress first).
   * Promise broken: issue 2 "SIGTERM stops gracefully"; STYLE.md practice 6 (stop graceful, with a
   * deadline that is a bound, not the usual duration).
   */
  it('stop() answers, closes and is done without waiting for the LIS to close its side', async () => {
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (msg) => void warnings.push(msg), child: () => log };
    h = await GatewayHarness.start();
    const endpoint = new MllpEndpoint({ config: endpointConfig({ id: 'lis2' }), store: h.store, telemetry: new Telemetry(), log });
    await endpoint.start();
    const lis = await lisSocket(endpoint.address()!.port);
    lis.socket.write(wrapFrame(adt('PS-1')));
    await expect.poll(() => framesOf(Buffer.concat(lis.got)).length, { timeout: 10_000 }).toBe(1);
    await endpoint.stop(30_000);
    expect(warnings.filter((w) => w.startsWith('stop deadline reached')), 'stop() waited for the LIS until its deadline').toEqual([]);
    expect(endpoint.status).toBe('stopped');
    expect(lis.events[0]).toBe('fin');
    expect(field(framesOf(Buffer.concat(lis.got))[0], 'MSA', 2)).toBe('PS-1');
  });
});
