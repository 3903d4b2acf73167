import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import path from 'node:path';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { makeConfig, openStore, requestJson, tempDir, waitFor } from '../fixtures/status/harness.ts';

/** The cap status/README.md documents for open /api/stream connections. */
const MAX_STREAMS = 64;

interface OpenStream {
  status: number;
  retryAfter: string | undefined;
  firstChunk: string;
  close: () => void;
}

/** GET /api/stream over a socket of its own; resolves with the answer's status and first bytes. */
function openStream(base: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}/api/stream`, { agent: false }, (res) => {
      res.setEncoding('utf8');
      res.once('data', (chunk: string) => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], firstChunk: chunk, close: () => req.destroy() });
      });
    });
    req.on('error', reject);
  });
}

describe('/api/stream and a program that opens streams without end', () => {
  const tmp = tempDir('status-stream-cap-');
  let store: EventStore;
  let server: StatusServer;
  let base: string;
  const streams: OpenStream[] = [];

  beforeAll(async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-streams' });
    store = await openStore(config.gateway.dataDir);
    server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    base = server.url();
  });

  afterAll(async () => {
    for (const s of streams) s.close();
    await server?.stop();
    await store?.close();
    tmp.cleanup();
  });

  // What IT saw: a dashboard script with a reconnect bug (it opened a new /api/stream on every
  // tick and never closed the old one) held thousands of connections on the gateway by the end of
  // the day: a socket, a file descriptor and a status frame per push for each, until the process
  // ran out of descriptors and the LIS's next MLLP connection was refused.
  // Promise broken: the gateway's memory and descriptors stay bounded whatever its observers do
  // (status/README.md: a stream that stops reading keeps no backlog); nothing bounded the count.
  it(`answers stream ${MAX_STREAMS + 1} with 503 and Retry-After, and the status keeps being served`, async () => {
    for (let i = 0; i < MAX_STREAMS; i++) {
      const s = await openStream(base);
      streams.push(s);
      expect(s.status).toBe(200);
    }
    const refused = await openStream(base);
    streams.push(refused);
    expect(refused.status, refused.firstChunk).toBe(503);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(JSON.parse(refused.firstChunk).error).toContain(`${MAX_STREAMS}`);

    // The page and the tray read /api/status and the page's files: unaffected.
    const status = await requestJson(`${base}/api/status`);
    expect(status.status).toBe(200);
    expect(status.json.gatewayId).toBe('lab-streams');
    expect((await fetch(`${base}/`)).status).toBe(200);

    // A stream closed frees its place.
    streams.shift()!.close();
    const again = await waitFor(async () => {
      const s = await openStream(base);
      streams.push(s);
      return s.status === 200 ? s : undefined;
    }, 'a stream accepted once one closed');
    expect(again.firstChunk).toContain('"gatewayId":"lab-streams"');
  });
});
