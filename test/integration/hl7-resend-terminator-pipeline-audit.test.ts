/**
 * The look-up of a message's earlier keys (a message without its final CR: hl7-intake.ts
 * #orderedCommit) under load: a LIS pipelining such messages on several connections of one
 * endpoint, a commit failing in the middle, the gateway stopped meanwhile. Every message answered
 * AA is stored once with its event, the replies of each connection come in the order of its
 * frames, and a look-up that fails answers a negative ACK (never an AA under keys that may be the
 * wrong ones). Real parts: a LevelDB EventStore, the MllpEndpoint on port 0, raw sockets.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import type { CommitResult, InboundMessage } from '../../gateway/src/store/types.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { glucoseOru } from '../fixtures/hl7/messages.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** A final glucose result for accession ACC-<id>, without its final CR: one result.validated event. */
const oruNoCr = (id: string): string => glucoseOru(id).slice(0, -1);

/** Every frame written at once on one connection; the MSA segments of the replies, once `count` came or the socket closed. */
function pipeline(port: number, frames: string[], onFirstReply?: () => void): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let first = true;
    const msas = (): string[] => text.split(/[\r\x1c\x0b]/).filter((l) => l.startsWith('MSA|'));
    socket.on('error', reject);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (first) {
        first = false;
        onFirstReply?.();
      }
      if (msas().length >= frames.length) socket.end();
    });
    socket.on('close', () => resolve(msas()));
    socket.write(Buffer.concat(frames.map((f) => wrapFrame(f, 'latin1'))));
  });
}

/** The accepted stored messages per control id, and the result.validated events per accession. */
async function stored(gw: GatewayHarness): Promise<{ messages: Map<string, number>; events: Map<string, number> }> {
  const messages = new Map<string, number>();
  for (const m of await gw.store.listMessages({ endpoint: 'lis', limit: 10_000 })) {
    if (m.status === 'accepted' && m.controlId) messages.set(m.controlId, (messages.get(m.controlId) ?? 0) + 1);
  }
  const events = new Map<string, number>();
  for (const e of await gw.store.listEvents({ limit: 10_000 })) events.set(e.event.correlationId, (events.get(e.event.correlationId) ?? 0) + 1);
  return { messages, events };
}

describe('HL7 messages without their final CR, pipelined on several connections', () => {
  it('a commit failing in the middle: AE for it, every AA stored once, each connection answered in order; a resend of all is a duplicate', async () => {
    h = await GatewayHarness.start({}, { earlierReleaseKeys: true });
    const gw = h;
    const commit = gw.store.commit.bind(gw.store);
    gw.store.commit = (m: InboundMessage, e: DraftEvent[]): Promise<CommitResult> =>
      m.controlId === 'C1-17' ? Promise.reject(new Error('disk full')) : commit(m, e);
    // Three connections, 30 messages each; C0 and C2 share ten messages (the engine resending on another link).
    const batches = [0, 1, 2].map((c) => Array.from({ length: 30 }, (_, i) => (c === 2 && i < 10 ? `C0-${i}` : `C${c}-${i}`)));
    const replies = await Promise.all(batches.map((ids) => pipeline(gw.port, ids.map(oruNoCr))));
    for (const [c, ids] of batches.entries()) {
      expect(replies[c]?.map((l) => l.split('|')[2])).toEqual(ids);
      for (const [i, line] of (replies[c] ?? []).entries()) expect(line.split('|')[1]).toBe(ids[i] === 'C1-17' ? 'AE' : 'AA');
    }
    const first = await stored(gw);
    const acked = [...new Set(batches.flat())].filter((id) => id !== 'C1-17');
    for (const id of acked) {
      expect(first.messages.get(id), id).toBe(1);
      expect(first.events.get(`ACC-${id}`), id).toBe(1);
    }
    expect(first.messages.has('C1-17')).toBe(false);
    expect(first.events.has('ACC-C1-17')).toBe(false);

    // The store well again, the LIS resends everything (now with the final CR): only C1-17 is new.
    gw.store.commit = commit;
    const before = gw.store.intake();
    const again = await pipeline(gw.port, [...new Set(batches.flat())].map((id) => `${oruNoCr(id)}\r`));
    expect(again.every((l) => l.startsWith('MSA|AA|'))).toBe(true);
    const after = gw.store.intake();
    expect(after.duplicates - before.duplicates).toBe(acked.length);
    expect(after.accepted - before.accepted).toBe(1);
    const second = await stored(gw);
    for (const id of [...acked, 'C1-17']) expect(second.events.get(`ACC-${id}`), id).toBe(1);
  }, 60_000);

  it('stopped while frames are pipelined: every AA sent is stored once, in the order of the frames', async () => {
    h = await GatewayHarness.start({}, { earlierReleaseKeys: true });
    const gw = h;
    const ids = Array.from({ length: 200 }, (_, i) => `S-${i}`);
    let stopping: Promise<void> | undefined;
    const replies = await pipeline(gw.port, ids.map(oruNoCr), () => {
      stopping = gw.endpoint.stop(10_000);
    });
    await stopping;
    // The replies that came are the first frames', in order, each AA.
    expect(replies.map((l) => l.split('|')[2])).toEqual(ids.slice(0, replies.length));
    expect(replies.every((l) => l.startsWith('MSA|AA|'))).toBe(true);
    const { messages, events } = await stored(gw);
    for (const l of replies) {
      const id = l.split('|')[2] as string;
      expect(messages.get(id), id).toBe(1);
      expect(events.get(`ACC-${id}`), id).toBe(1);
    }
    for (const n of messages.values()) expect(n).toBe(1);
  }, 60_000);

  it('the look-up of the earlier keys fails: a negative ACK and nothing stored, not an AA under keys that may be the wrong ones', async () => {
    h = await GatewayHarness.start({}, { earlierReleaseKeys: true });
    const gw = h;
    const used = gw.store.idempotencyKeyUsed.bind(gw.store);
    let fail = true;
    gw.store.idempotencyKeyUsed = (key: string): Promise<boolean> => (fail ? Promise.reject(new Error('read failed')) : used(key));
    const [first] = await pipeline(gw.port, [oruNoCr('L-1')]);
    expect(first?.startsWith('MSA|AE|L-1')).toBe(true);
    expect((await stored(gw)).messages.has('L-1')).toBe(false);
    fail = false;
    const [second] = await pipeline(gw.port, [oruNoCr('L-1')]);
    expect(second?.startsWith('MSA|AA|L-1')).toBe(true);
    expect((await stored(gw)).events.get('ACC-L-1')).toBe(1);
  }, 30_000);

  it('a store no earlier release wrote: a message in the usual form is looked up under nothing, so no look-up can fail or hold its commit back; one without its final CR only under the key its own form had', async () => {
    h = await GatewayHarness.start();
    const gw = h;
    expect(gw.store.mayHoldEarlierReleaseKeys()).toBe(false);
    const used = gw.store.idempotencyKeyUsed.bind(gw.store);
    let asked = 0;
    let fail = true;
    gw.store.idempotencyKeyUsed = (key: string): Promise<boolean> => {
      asked++;
      return fail ? Promise.reject(new Error('read failed')) : used(key);
    };
    const replies = await pipeline(gw.port, [glucoseOru('F-1'), glucoseOru('F-2')]);
    expect(replies.map((l) => l.split('|').slice(0, 3).join('|'))).toEqual(['MSA|AA|F-1', 'MSA|AA|F-2']);
    expect(asked).toBe(0);
    // Without its final CR (a sender from files): the one key the releases before gave that form,
    // as before the upgrade window (msh.ts messageFingerprints); not the forms a file gives it.
    fail = false;
    const [noCr] = await pipeline(gw.port, [oruNoCr('F-3')]);
    expect(noCr?.startsWith('MSA|AA|F-3')).toBe(true);
    expect(asked).toBe(1);
    // A resend in the usual form is still the message it was (the fingerprint leaves the ends out).
    const [again] = await pipeline(gw.port, [glucoseOru('F-3')]);
    expect(again?.startsWith('MSA|AA|F-3')).toBe(true);
    expect(asked).toBe(1);
    const { messages, events } = await stored(gw);
    expect(messages.get('F-3')).toBe(1);
    expect(events.get('ACC-F-3')).toBe(1);
  }, 30_000);
});
