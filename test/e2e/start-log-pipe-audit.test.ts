/**
 * `lab-gateway start` whose log reader goes away: its stdout and stderr are pipes (to `tee`, a log
 * shipper, a terminal closed), and the reading end closes. Every log line after that failed with
 * EPIPE; the failure was an uncaught exception, whose handler logged it (EPIPE again) and began a
 * stop, and so on without end: the process spun at full CPU and a SIGTERM never ended it (it
 * needed kill -9), breaking README "Command line": "SIGTERM/SIGINT stop gracefully".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { fileWriter, startGatewayProcess, TEST_LISTENERS } from '../fixtures/gateway-process.ts';

describe('start with its log pipes closed by the reader', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'start-log-pipe-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = fileWriter(() => dir);

  it('keeps acknowledging messages, and SIGTERM still stops it with exit 0', async () => {
    const config = await file(`gateway: { id: pipe-1, dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\n${TEST_LISTENERS}\n`);
    const gw = startGatewayProcess(config);
    try {
      const ready = await gw.ready;
      expect(ready).toBeDefined();
      // The reader goes away: the gateway's next write to either stream fails with EPIPE.
      gw.child.stdout?.destroy();
      gw.child.stderr?.destroy();
      const lis = await MllpClient.connect({ host: '127.0.0.1', port: ready!.hl7.lis!.port });
      try {
        for (const id of ['PIPE-1', 'PIPE-2']) {
          const now = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
          const ack = (await lis.send(Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|${now}||ORM^O01|${id}|P|2.5.1\rPID|1||MRN1\rORC|NW|ACC-${id}\rOBR|1|ACC-${id}||GLU^Glucose^L\r`))).toString('latin1');
          expect(ack, id).toMatch(new RegExp(`MSA\\|AA\\|${id}`));
        }
      } finally {
        await lis.close();
      }
      const health = await fetch(new URL('/healthz', ready!.status.url));
      expect(health.status).toBe(200);
      gw.child.kill('SIGTERM');
      // stop() sends SIGKILL after 20 s: a gateway that never ends shows here as signal SIGKILL.
      await gw.stop();
      expect(await gw.exited).toEqual({ code: 0, signal: null });
    } finally {
      await gw.stop();
    }
  }, 60_000);
});
