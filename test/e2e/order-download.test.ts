/**
 * Order download: an analyzer configured with `pushOrders` receives each LIS order it can run as
 * an ASTM order message, in its own E1381 session, as soon as the order is stored.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { createLinkSession } from '../../gateway/src/ingress/astm/create-link-session.ts';
import { resolveLinkOptions } from '../../gateway/src/ingress/astm/link-options.ts';
import { realScheduler } from '../../gateway/src/ingress/astm/scheduler.ts';

let gateway: Gateway;
let stop: () => Promise<void>;
let analyzerSocket: net.Socket;
const received: string[] = [];
let lis: MllpClient;

beforeAll(async () => {
  ({ gateway, stop } = await startTestGateway('download', {
    analyzers: [{ id: 'centaur-1', profile: 'siemens-advia-centaur-xp', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true }],
  }));
  const addr = gateway.addresses();
  // The simulated analyzer: connects to its listener and answers as an E1381 receiver.
  analyzerSocket = net.connect({ host: '127.0.0.1', port: addr.analyzers['centaur-1']!.port! });
  const session = createLinkSession({
    link: resolveLinkOptions({}),
    scheduler: realScheduler,
    write: (bytes) => analyzerSocket.write(bytes),
    onMessage: async (text) => {
      received.push(text);
      return 'ack';
    },
    onPartial: () => undefined,
  });
  analyzerSocket.on('data', (d: Buffer) => session.push(d));
  await new Promise((r) => analyzerSocket.once('connect', r));
  // The gateway has the analyzer's connection before the first order is sent.
  const connections = (): number => gateway.statusModel?.toApiStatus().endpoints.find((e) => e.id === 'centaur-1')?.connections ?? 0;
  for (const until = Date.now() + 20_000; connections() < 1; ) {
    if (Date.now() > until) throw new Error('the analyzer connection was not registered within 20 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  lis = await MllpClient.connect({ host: '127.0.0.1', port: addr.hl7.lis!.port });
});

afterAll(async () => {
  analyzerSocket?.destroy();
  await lis?.close().catch(() => undefined);
  await stop?.();
});

const orm = (controlId: string, accession: string, test: string): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|${controlId}|P|2.5`,
      'PID|1||MRN-7^^^LAB^MR',
      `ORC|NW|${accession}||${accession}|SC||||20261125101500||||||||||||CLINIC-A`,
      `OBR|1|${accession}||${test}^${test}^L`,
      '',
    ].join('\r'),
  );

describe('order download to an analyzer', () => {
  it('an LIS order for a test the analyzer runs is pushed as an ASTM order with the analyzer\'s code', async () => {
    const ack = (await lis.send(orm('DL-1', 'ACC-DL-1', 'TSH'))).toString('latin1');
    expect(ack).toContain('MSA|AA|DL-1');
    await expect.poll(() => received.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    const text = received[0]!;
    expect(text).toMatch(/^H\|/);
    expect(text).toMatch(/\rO\|1\|ACC-DL-1\|/);
    expect(text).toContain('TSH3UL');
    expect(text).toMatch(/\rL\|1/);
  });

  it('an order for tests the analyzer does not run is not pushed', async () => {
    const before = received.length;
    await lis.send(orm('DL-2', 'ACC-DL-2', 'HBA1C'));
    await lis.send(orm('DL-3', 'ACC-DL-3', 'FT4'));
    await expect.poll(() => received.length, { timeout: 20_000 }).toBe(before + 1);
    expect(received.at(-1)).toContain('ACC-DL-3');
    expect(received.join('\n')).not.toContain('ACC-DL-2');
  });
});
