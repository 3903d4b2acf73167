/**
 * A message the store cannot keep while its sender asked for no acknowledgement (enhanced mode,
 * MSH-15 NE and MSH-16 NE): before, nothing was kept and nothing was sent, the connection stayed
 * open, and the sender took the message as delivered: a silent loss. Now the connection is closed
 * once the replies owed before it are written, so the sender's interface sees the link drop and
 * sends again once reconnected; frames received before the failure keep their answers.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../gateway/src/errors.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

const oru = (id: string, msh15: string, msh16: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5|||${msh15}|${msh16}\rPID|1||MRN-${id}\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}|S-${id}|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`,
    'latin1',
  );

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** A raw connection: what it received, and when the gateway closed it. */
function open(port: number): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((r) => {
      socket.once('end', () => r());
      socket.once('close', () => r());
    });
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed }));
    socket.once('error', reject);
  });
}

describe('enhanced mode, no acknowledgement asked, the store down', () => {
  it('closes the connection instead of dropping the message in silence; a message before it keeps its answer', async () => {
    h = await GatewayHarness.start({ ack: 'enhanced' });
    const c = await open(h.port);
    // First an AL/AL message while the store is healthy: answered CA + AA.
    c.socket.write(wrapFrame(oru('N1', 'AL', 'AL')));
    while (framesOf(c.received()).length < 2) await new Promise((r) => setTimeout(r, 10));
    const first = framesOf(c.received());
    expect(first.map((f) => field(f, 'MSA', 1))).toEqual(['CA', 'AA']);
    h.store.simulateWriteFailure(new GatewayError('GW_STORE_UNAVAILABLE', 'disk went away'));
    c.socket.write(wrapFrame(oru('N2', 'NE', 'NE')));
    // The gateway ends the connection: the sender sees the link drop.
    const ended = await Promise.race([c.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 10_000))]);
    expect(ended).toBe('closed');
    expect(framesOf(c.received())).toHaveLength(2);
    expect(await h.rawOf('N2')).toBeUndefined();
    expect(h.store.intake().rejected).toBeGreaterThanOrEqual(1);
    c.socket.destroy();
    // Once the store is back, the sender's resend is kept.
    h.store.simulateWriteFailure(undefined);
    const deadline = Date.now() + 5_000;
    while (h.store.health !== 'ok' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const again = await open(h.port);
    again.socket.write(wrapFrame(oru('N2', 'NE', 'NE')));
    while ((await h.rawOf('N2')) === undefined && Date.now() < deadline + 5_000) await new Promise((r) => setTimeout(r, 20));
    expect(await h.rawOf('N2')).toBeDefined();
    again.socket.destroy();
  });

  it('ER/ER (answer on error only) still gets its CE and AE, and the connection stays open', async () => {
    h = await GatewayHarness.start({ ack: 'enhanced' });
    const c = await open(h.port);
    h.store.simulateWriteFailure(new GatewayError('GW_STORE_UNAVAILABLE', 'disk went away'));
    c.socket.write(wrapFrame(oru('E1', 'ER', 'ER')));
    while (framesOf(c.received()).length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(framesOf(c.received()).map((f) => field(f, 'MSA', 1))).toEqual(['CE', 'AE']);
    expect(c.socket.readyState).toBe('open');
    c.socket.destroy();
  });
});
