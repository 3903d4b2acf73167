import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Hl7Intake } from '../../gateway/src/ingress/mllp/hl7-intake.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { MllpConnection } from '../../gateway/src/ingress/mllp/mllp-connection.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { CommitResult, DraftEvent, InboundMessage } from '../../gateway/src/store/types.ts';
import { endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';
import { MemoryIntakeStore } from '../fixtures/hl7/memory-store.ts';

/** A store whose commits finish in REVERSE order of arrival (released all at once). */
class ReversingStore extends MemoryIntakeStore {
  readonly #held: Array<() => void> = [];
  releaseAfter = 0;

  override async commit(message: InboundMessage, events: DraftEvent[]): Promise<CommitResult> {
    await new Promise<void>((resolve) => {
      this.#held.push(resolve);
      if (this.#held.length === this.releaseAfter) for (const r of this.#held.splice(0).reverse()) r();
    });
    return super.commit(message, events);
  }
}

const msg = (id: string) => Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|2024||ADT^A01|${id}|P|2.5\rPID|1||M\r`);

let server: net.Server | undefined;
const sockets = new Set<net.Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

describe('MllpConnection', () => {
  it('writes replies in frame order even when the commits finish in reverse order', async () => {
    const store = new ReversingStore();
    store.releaseAfter = 20;
    const intake = new Hl7Intake({ config: endpointConfig(), store: store.asStore(), log: silentLogger });
    const answered: string[] = [];
    server = net.createServer((socket) => {
      sockets.add(socket);
      new MllpConnection({
        socket,
        intake,
        maxFrameBytes: 1 << 20,
        idleTimeoutMs: 0,
        log: silentLogger,
        onAnswered: (r) => answered.push(r.results[0]?.controlId ?? '?'),
        onIgnoredBytes: () => {},
        onClose: () => {},
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = await MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 5_000 });
    const ids = Array.from({ length: 20 }, (_, i) => `O${i}`);
    // All 20 frames in one write: they are decoded together and committed concurrently.
    const replies = Promise.all(ids.map(() => client.expect(1)));
    client.writeRaw(Buffer.concat(ids.map((id) => wrapFrame(msg(id)))));
    const frames = (await replies).map((f) => framesOf(wrapFrame(f[0] as Buffer))[0]);
    expect(frames.map((f) => field(f, 'MSA', 2))).toEqual(ids);
    expect(answered).toEqual(ids);
    // The store really finished them out of order (the last frame first).
    expect(store.messages[0]?.message.controlId).not.toBe('O0');
    expect(store.messages.map((m) => m.message.controlId)).not.toEqual(ids);
    await client.close();
  });

  it('drained() resolves once every frame received so far is answered, and a failing onAnswered stops no reply', async () => {
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    class GatedStore extends MemoryIntakeStore {
      override async commit(message: InboundMessage, events: DraftEvent[]): Promise<CommitResult> {
        await gate;
        return super.commit(message, events);
      }
    }
    const intake = new Hl7Intake({ config: endpointConfig(), store: new GatedStore().asStore(), log: silentLogger });
    let connection: MllpConnection | undefined;
    const answered: string[] = [];
    const accepted = new Promise<void>((resolve) => {
      server = net.createServer((socket) => {
        sockets.add(socket);
        connection = new MllpConnection({
          socket,
          intake,
          maxFrameBytes: 1 << 20,
          idleTimeoutMs: 0,
          log: silentLogger,
          onAnswered: (r) => {
            answered.push(r.results[0]?.controlId ?? '?');
            throw new Error('bookkeeping failed');
          },
          onIgnoredBytes: () => {},
          onClose: () => {},
        });
        resolve();
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server!.address() as net.AddressInfo).port;
    const client = await MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 5_000 });
    await accepted;
    const conn = connection as MllpConnection;
    // Nothing received yet: nothing to wait for.
    await conn.drained();
    const ids = ['D0', 'D1', 'D2', 'D3', 'D4'];
    const replies = Promise.all(ids.map(() => client.expect(1)));
    client.writeRaw(Buffer.concat(ids.map((id) => wrapFrame(msg(id)))));
    while (conn.inFlight < ids.length) await new Promise((r) => setTimeout(r, 1));
    let drained = false;
    const draining = conn.drained().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    expect(answered).toEqual([]);
    open();
    await draining;
    expect(conn.inFlight).toBe(0);
    expect(answered).toEqual(ids);
    const frames = (await replies).map((f) => framesOf(wrapFrame(f[0] as Buffer))[0]);
    expect(frames.map((f) => field(f, 'MSA', 2))).toEqual(ids);
    await client.close();
  });
});
