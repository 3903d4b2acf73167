/**
 * Benchmark server process (forked by bench/intake.ts): either the durable gateway intake
 * (EventStore with fsync'd group commit + MllpEndpoint) or the peer, @medplum/hl7's Hl7Server
 * acknowledging from memory (no durability). Reports `{ ready, port }` over IPC; exits on 'stop'.
 *
 *   intake-server <durable|peer> <dataDir>
 */
import { Hl7Server, type Hl7MessageEvent } from '@medplum/hl7';
import { MllpEndpoint } from '../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../gateway/src/log.ts';
import { EventStore } from '../gateway/src/store/event-store.ts';
import { Telemetry } from '../gateway/src/telemetry.ts';

const [mode, dataDir] = process.argv.slice(2);
const send = (m: unknown, then?: () => void): void => {
  process.send?.(m, undefined, {}, () => then?.());
};

if (mode === 'durable') {
  const store = await EventStore.open({ dataDir: dataDir as string, pruneIntervalMs: 0, minFreeBytes: 0 });
  const endpoint = new MllpEndpoint({
    config: {
      id: 'lis',
      listen: { host: '127.0.0.1', port: 0 },
      ack: 'original',
      maxMessageBytes: 16 * 1024 * 1024,
      idleTimeoutMs: 0,
      maxConnections: 256,
      unknownMessageTypes: 'accept',
      defaultCharset: 'ascii',
    },
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
  });
  await endpoint.start();
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'stop') {
      void (async () => {
        const intake = store.intake();
        await endpoint.stop(5_000);
        const commit = { ...store.commitStats };
        await store.close();
        send({ stopped: true, intake, commit, cpu: process.cpuUsage(), messages: intake.received }, () => process.exit(0));
      })();
    }
  });
  send({ ready: true, port: endpoint.address()?.port });
} else {
  let messages = 0;
  const server = new Hl7Server((connection) => {
    connection.addEventListener('message', (event: Hl7MessageEvent) => {
      messages++;
      connection.send(event.message.buildAck());
    });
  });
  await server.start(0);
  const addr = server.server?.address();
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'stop') {
      void server.stop({ forceDrainTimeoutMs: 500 }).finally(() => {
        send({ stopped: true, cpu: process.cpuUsage(), messages }, () => process.exit(0));
      });
    }
  });
  send({ ready: true, port: typeof addr === 'object' && addr ? addr.port : 0 });
}
