import { afterEach, describe, expect, it } from 'vitest';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { E1381_PAUSE_BYTES } from '../../gateway/src/ingress/astm/e1381-session.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { acceptWithHeader, connectAnalyzer, holdLevelWrites, resultStream, until } from '../fixtures/astm-link/wait.ts';

/**
 * An E1381 analyzer that does not wait for the replies (or a serial-to-LAN converter that buffers
 * its whole output) streams message after message while the store is slow. The bytes behind the
 * message being committed waited in the session, without bound; now, past E1381_PAUSE_BYTES, the
 * connection stops being read (TCP's window holds the analyzer) and is read again once the store
 * has taken them (ingress/astm/README.md "The bytes waiting behind a commit are bounded").
 * Real parts: the AstmEndpoint on a TCP listener, a real LevelDB store whose writes are held
 * (interceptLevelWrites), the analyzer on a socket.
 */
const tmp = useTempStore('lgw-astm-backlog-', { pruneIntervalMs: 0, minFreeBytes: 0, healthCheckIntervalMs: 50, messageLogMinBatch: 1000 });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('E1381 link: an analyzer streaming while the store is slow', () => {
  it('stops reading the connection once a megabyte waits behind a commit, and keeps every message once when the store is back', async () => {
    const store = await tmp.open();
    const ep = new AstmEndpoint<string>({
      analyzer: { id: 'stream', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      profile: { name: 'test', quirks: {} },
      store,
      telemetry: new Telemetry(),
      log: silentLogger,
      normalize: acceptWithHeader,
    });
    cleanups.push(() => ep.stop(2_000));
    await ep.start();
    const hold = holdLevelWrites(store);
    const socket = await connectAnalyzer(ep.address()?.port as number);
    socket.resume(); // the gateway's answers are read and not waited for
    cleanups.push(() => void socket.destroy());
    // 3 MiB of results (about 10 KB each), one session, frame numbers going on: three times the threshold.
    const count = 300;
    socket.write(resultStream(count));
    await until(() => hold.held() === 1 && ep.linkStats().bytesIn > E1381_PAUSE_BYTES); // the first message commits, the rest waits
    await new Promise((r) => setTimeout(r, 300)); // time enough to read all 3 MiB over loopback, were it read on
    expect(ep.linkStats().bytesIn).toBeLessThan(1.5 * E1381_PAUSE_BYTES);
    hold.release();
    await until(async () => (await store.listMessages({ endpoint: 'stream', limit: count + 10 })).length >= count, 30_000);
    const list = await store.listMessages({ endpoint: 'stream', limit: count + 10 });
    const ids = (await Promise.all(list.map((m) => store.getMessage(m.id)))).map((m) => m?.raw.toString('latin1').match(/SID-\d+/)?.[0]);
    expect(new Set(ids).size).toBe(count); // each once
    expect(ids).toHaveLength(count);
    expect(list.every((m) => m.status === 'accepted')).toBe(true);
    expect(ep.linkStats().overflowBytes).toBe(0);
  });

  /**
   * The wire the link paused is the gateway's doing, not the analyzer's silence. On a TCP link, a
   * link timer that runs out (here the reply delay, the store being slower) starts the silent-peer
   * rule: the connection is dropped once the analyzer has answered nothing for silentPeerMs since
   * the gateway's first unanswered byte. While reading was paused nothing of the analyzer's could
   * be read: before, a store slower than the reply delay for a minute had the connection of a
   * streaming analyzer dropped ("no answer from the analyzer for 60 s (switched off …)"), and what
   * waited in its socket (read by the kernel, acknowledged to the analyzer) lost with it.
   */
  it('a paused connection is not taken for a silent analyzer, and nothing it sent is lost', async () => {
    const store = await tmp.open();
    const replyDelayMs = 200;
    const silentPeerMs = 800;
    let closedDetail: string | undefined;
    const ep = new AstmEndpoint<string>({
      analyzer: { id: 'stream', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      profile: { name: 'test', quirks: { timers: { receiverReplyDelayMs: replyDelayMs, silentPeerMs } } },
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
    socket.once('close', () => (closedDetail ??= 'closed'));
    socket.resume();
    cleanups.push(() => void socket.destroy());
    const count = 300;
    const stream = resultStream(count);
    socket.write(stream);
    await until(() => hold.held() >= 1 && ep.linkStats().bytesIn > E1381_PAUSE_BYTES);
    // The store stays slower than the reply delay well past silentPeerMs (commits NAKed one by one).
    await new Promise((r) => setTimeout(r, replyDelayMs * 4 + silentPeerMs * 3));
    expect(closedDetail).toBeUndefined();
    hold.release();
    // Every result is in the store once read: in a message taken, or in the raw bytes of one kept
    // as refused (the NAKs put the analyzer, which does not wait for them, out of step).
    await until(() => ep.linkStats().bytesIn === stream.length, 30_000);
    await until(async () => {
      const list = await store.listMessages({ endpoint: 'stream', limit: 10_000 });
      const raws = await Promise.all(list.map(async (m) => (await store.getMessage(m.id))?.raw.toString('latin1') ?? ''));
      const all = raws.join('\n');
      return Array.from({ length: count }, (_, i) => `SID-${i + 1}|`).every((sid) => all.includes(sid));
    }, 30_000);
    // (Once the analyzer has sent all it had, a commit slower than these short timers may close
    // the idle connection by the usual rule: not asserted here.)
    expect(ep.linkStats().overflowBytes).toBe(0);
  }, 60_000);
});
