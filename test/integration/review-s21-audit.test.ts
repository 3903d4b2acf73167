/**
 * Review of session 21's changes, from the lab's side (gateway/src/ingress/mllp/README.md "HL7
 * without MLLP framing").
 *
 * A LIS set to send plain HL7 (no MLLP framing) gets no answer, times out and resends its stuck
 * message on a new connection, as the README's case goes. Senders refresh MSH-7 (the time the
 * message was built) on a resend (hl7/msh.ts), and the framed path's dedup key leaves MSH-7 out
 * for that reason. The key of HL7 kept without framing hashed the bytes, MSH-7 included: a LIS
 * resending every few seconds with a refreshed MSH-7 left one more copy in the rejected list per
 * resend, each counted as one more rejected message, not "one copy, not thousands".
 *
 * A whole gateway in this process (real LevelDB in a temp dir, real TCP, the status API and
 * /metrics over HTTP). No timed assertion: the LIS waits for the gateway to close, the test for
 * the counts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { oru } from '../fixtures/hl7/link-rig.ts';
import { series, waitFor } from '../fixtures/status/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A LIS that sends `text` without framing and waits until the gateway closes the connection. */
async function sendPlain(port: number, text: string): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  socket.on('end', () => socket.end());
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(Buffer.from(text, 'latin1'));
  await closed;
}

/** The message built again for a resend: the same message with MSH-7 refreshed. */
const rebuilt = (message: string, msh7: string): string => message.replace('|20260301120000|', `|${msh7}|`);

describe('HL7 without MLLP framing resent with a refreshed MSH-7', () => {
  it('is kept once and counted as a duplicate on every surface; another message is kept; the same message framed is taken', async () => {
    const { gateway, stop } = await startTestGateway('review-s21-unframed', {});
    cleanups.push(stop);
    const base = gateway.statusServer!.url().replace(/\/$/, '');
    const port = gateway.addresses().hl7.lis!.port;
    const intakeAgreed = async (received: number) =>
      waitFor(async () => {
        const api = (await (await fetch(`${base}/api/status`)).json()) as { intake: Record<string, number> };
        const text = await (await fetch(`${base}/metrics`)).text();
        const m = (outcome: string): number => series(text, 'lab_gateway_intake_messages_total', { endpoint: 'lis', outcome }) ?? 0;
        const metrics = { received, accepted: m('accepted'), rejected: m('rejected'), duplicates: m('duplicate') };
        return api.intake.received === received && JSON.stringify(metrics) === JSON.stringify(api.intake) ? api.intake : undefined;
      }, `the status and /metrics agreeing on ${received} messages`, 15_000);
    const list = async () =>
      ((await (await fetch(`${base}/api/messages?endpoint=lis`)).json()) as { messages: Array<{ controlId?: string; status: string; duplicates: number }> }).messages
        .map((m) => [m.controlId, m.status, m.duplicates])
        .reverse();

    const first = oru('STUCK-1');
    await sendPlain(port, first);
    await sendPlain(port, rebuilt(first, '20260301120030'));
    await sendPlain(port, rebuilt(first, '20260301120100'));
    expect(await intakeAgreed(3), 'two resends of the message kept: duplicates, not rejected').toEqual({ received: 3, accepted: 0, rejected: 1, duplicates: 2 });
    await expect.poll(list, { timeout: 10_000 }).toEqual([['STUCK-1', 'rejected', 2]]);

    // The LIS skips to its next message: a new message, kept.
    await sendPlain(port, oru('STUCK-2'));
    expect(await intakeAgreed(4)).toEqual({ received: 4, accepted: 0, rejected: 2, duplicates: 2 });

    // IT sets the LIS to MLLP framing and it sends the first message again, framed: taken, not a
    // duplicate of the one kept unframed (their keys never meet).
    const lis = await MllpClient.connect({ host: '127.0.0.1', port });
    cleanups.push(() => lis.close().catch(() => undefined));
    expect((await lis.send(Buffer.from(first, 'latin1'))).toString('latin1')).toContain('MSA|AA|STUCK-1');
    expect(await intakeAgreed(5)).toEqual({ received: 5, accepted: 1, rejected: 2, duplicates: 2 });
    await expect.poll(list, { timeout: 10_000 }).toEqual([
      ['STUCK-1', 'rejected', 2],
      ['STUCK-2', 'rejected', 0],
      ['STUCK-1', 'accepted', 0],
    ]);
  });
});
