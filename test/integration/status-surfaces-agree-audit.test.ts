import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import mqtt from 'mqtt';
import { startTestGateway } from '../fixtures/gateway.ts';
import { glucoseOru } from '../fixtures/hl7/messages.ts';
import { makeDeadLetter, series, waitFor } from '../fixtures/status/harness.ts';

/**
 * The three surfaces IT reads the same gateway through — `GET /api/status` (the page, the CLI),
 * the retained MQTT `status` topic (the trays, dashboards) and `GET /metrics` (Prometheus) — tell
 * the same counts: a whole gateway in this process (real LevelDB, the LIS link over real MLLP,
 * the embedded broker read by a real MQTT client, HTTP). status/README.md: "Every surface reads
 * that one model".
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Send MLLP frames on one connection and wait for as many ACK frames. */
async function sendMllp(port: number, messages: string[]): Promise<string[]> {
  const socket = net.connect(port, '127.0.0.1');
  const acks: string[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\x1c\r')) >= 0) {
        acks.push(buf.slice(buf.indexOf('\x0b') + 1, end));
        buf = buf.slice(end + 2);
      }
      if (acks.length === messages.length) resolve();
    });
    socket.on('connect', () => {
      for (const m of messages) socket.write(`\x0b${m}\x1c\r`);
    });
  });
  socket.destroy();
  return acks;
}

interface Counts {
  intake: { received: number; accepted: number; rejected: number; duplicates: number };
  queue: { pending: number; deadLettered: number };
  health: string;
  codes: string[];
}
const countsOf = (s: { intake: Counts['intake']; queue: Counts['queue'] & Record<string, unknown>; health: string; healthReasons: Array<{ code: string }> }): Counts => ({
  intake: s.intake,
  queue: { pending: s.queue.pending, deadLettered: s.queue.deadLettered },
  health: s.health,
  codes: s.healthReasons.map((r) => r.code).sort(),
});

describe('/api/status, the MQTT status and /metrics agree', () => {
  it('on intake outcomes, the queue, the health and its reasons', async () => {
    const { gateway, stop } = await startTestGateway('surfaces-agree', {});
    cleanups.push(stop);
    const base = gateway.statusServer!.url().replace(/\/$/, '');
    const lisPort = gateway.addresses().hl7.lis!.port;
    const acks = await sendMllp(lisPort, [glucoseOru('AGREE-1'), glucoseOru('AGREE-2'), glucoseOru('AGREE-1'), 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01||P|2.5\rOBX|1|NM|GLU\r']);
    expect(acks).toHaveLength(4);
    await makeDeadLetter(gateway.store!, 'AGREE-DEAD');

    const reader = await mqtt.connectAsync(gateway.addresses().mqtt.url, { reconnectPeriod: 0 });
    cleanups.push(() => reader.endAsync());
    let retained: Counts | undefined;
    reader.on('message', (_t, payload) => (retained = countsOf(JSON.parse(payload.toString()))));
    await reader.subscribeAsync('lab-gateway/surfaces-agree/status');

    // Once all three have settled on the same figures (each polls or publishes on its own beat).
    const agreed = await waitFor(async () => {
      const api = countsOf(await (await fetch(`${base}/api/status`)).json());
      const text = await (await fetch(`${base}/metrics`)).text();
      const intake = (outcome: string): number => series(text, 'lab_gateway_intake_messages_total', { endpoint: 'lis', outcome }) ?? 0;
      const metrics = {
        // The dead letter was stored without the LIS link (makeDeadLetter): /api/status counts the store's intake, /metrics the link's.
        intake: { accepted: intake('accepted'), rejected: intake('rejected'), duplicates: intake('duplicate') },
        queue: { pending: series(text, 'lab_gateway_queue_events', { state: 'pending' }), deadLettered: series(text, 'lab_gateway_queue_events', { state: 'dead' }) },
        health: ['ok', 'degraded', 'down'][series(text, 'lab_gateway_health') ?? -1],
        codes: text.split('\n').flatMap((l) => (l.startsWith('lab_gateway_health_reason{') ? [/code="([^"]+)"/.exec(l)![1]!] : [])).sort(),
      };
      // DEAD_LETTERS comes once the model has read the oldest dead letter for its words (a store
      // read after the count changed), BLOCKED_PARTITIONS at once: all three surfaces may agree on
      // the moment between, which is not yet the state the test compares.
      const same =
        api.queue.deadLettered === 1 &&
        api.codes.includes('DEAD_LETTERS') &&
        JSON.stringify(retained) === JSON.stringify(api) &&
        JSON.stringify(metrics.queue) === JSON.stringify(api.queue) &&
        metrics.health === api.health &&
        JSON.stringify(metrics.codes) === JSON.stringify(api.codes) &&
        metrics.intake.accepted === api.intake.accepted - 1 &&
        metrics.intake.rejected === api.intake.rejected &&
        metrics.intake.duplicates === api.intake.duplicates;
      return same ? { api, metrics } : undefined;
    }, 'the three surfaces telling the same counts', 15_000);
    expect(agreed.api.intake).toEqual({ received: 5, accepted: 3, rejected: 1, duplicates: 1 });
    expect(agreed.api.queue.deadLettered).toBe(1);
    expect(agreed.api.codes).toContain('DEAD_LETTERS');
  });
});
