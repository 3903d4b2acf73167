import { afterEach, describe, expect, it } from 'vitest';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { acceptWithHeader, connectAnalyzer, holdLevelWrites, until } from '../fixtures/astm-link/wait.ts';

/**
 * An analyzer whose firmware ignores NAK, after a message the store did not take in time (its
 * commit slower than the reply delay: end frame NAKed, not kept), goes on with its next message,
 * frame numbers going on. Before, the frame that came round to the number the link waited for was
 * taken into the refused message: patient A's header and order with patient B's results, stored as
 * one accepted message (ingress/astm/README.md "A message the store did not take is never joined
 * to the next one"). Real parts: the AstmEndpoint on a TCP listener, a real LevelDB store whose
 * writes are held (interceptLevelWrites), the analyzer on a socket reading every reply.
 */
const tmp = useTempStore('lgw-astm-deaf-', { pruneIntervalMs: 0, minFreeBytes: 0, healthCheckIntervalMs: 50, messageLogMinBatch: 1000 });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('E1381 link: an analyzer that ignores the NAK of a message the store did not take in time', () => {
  it('never stores one patient’s order with the next one’s results; every byte is kept', async () => {
    const store = await tmp.open();
    const ep = new AstmEndpoint<string>({
      analyzer: { id: 'deaf', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      profile: { name: 'test', quirks: { timers: { receiverReplyDelayMs: 300 } } },
      store,
      telemetry: new Telemetry(),
      log: silentLogger,
      normalize: acceptWithHeader,
    });
    cleanups.push(() => ep.stop(2_000));
    await ep.start();
    const hold = holdLevelWrites(store);
    cleanups.push(() => hold.release());
    const socket = await connectAnalyzer(ep.address()?.port as number);
    cleanups.push(() => void socket.destroy());
    const replies: number[] = [];
    socket.on('data', (b: Buffer) => replies.push(...b));
    const put = async (bytes: Buffer): Promise<number> => {
      const before = replies.length;
      socket.write(bytes);
      await until(() => replies.length > before);
      return replies[before] as number;
    };
    const f = (fn: number, r: string): Buffer => buildFrame(fn % 8, Buffer.from(`${r}\r`, 'latin1'), true);
    const A = ['H|\\^&|||an^1', 'P|1|PAT-A', 'O|1|SID-A||^^^GLU|R', 'L|1|N'];
    const B = ['H|\\^&|||an^1', 'P|1|PAT-B', 'O|1|SID-B||^^^K|R', ...Array.from({ length: 8 }, (_, i) => `R|${i + 1}|^^^K|4.${i}|mmol/L||N||F`), 'L|1|N'];
    expect(await put(Buffer.from([0x05]))).toBe(0x06);
    for (const [i, r] of A.slice(0, -1).entries()) expect(await put(f(i + 1, r))).toBe(0x06);
    expect(await put(f(A.length, A.at(-1) as string))).toBe(0x15); // the store is slower than the reply delay
    // It does not send the end frame again: its next message, numbered on (FN 5 …).
    const got: number[] = [];
    for (const [i, r] of B.entries()) got.push(await put(f(A.length + 1 + i, r)));
    socket.write(Buffer.from([0x04]));
    hold.release();
    const raws = async (): Promise<Array<{ status: string; raw: string }>> => {
      const list = await store.listMessages({ endpoint: 'deaf', limit: 100 });
      return Promise.all(list.map(async (m) => ({ status: m.status, raw: (await store.getMessage(m.id))?.raw.toString('latin1') ?? '' })));
    };
    // Every byte is kept: A (its late commit), and B's frames.
    await until(async () => {
      const all = (await raws()).map((m) => m.raw).join('');
      return all.includes('SID-A') && all.includes('PAT-B') && all.includes('R|8|');
    });
    await new Promise((r) => setTimeout(r, 300)); // any commit still under way lands
    const stored = await raws();
    for (const m of stored.filter((s) => s.status === 'accepted')) {
      expect(m.raw.includes('SID-A') && m.raw.includes('^^^K|4.') ? m.raw : 'one patient').toBe('one patient');
    }
    expect(stored.filter((m) => m.status === 'accepted' && m.raw.includes('SID-A'))).toHaveLength(1); // A, once
    expect(got.length).toBe(B.length);
  });
});
