/**
 * What the operator reads when a LIS result came before its order and is sent again (same MSH-10)
 * after the order came, naming it only by its filler number (hl7/order-numbers.ts): a real gateway
 * (MLLP listener, LevelDB in a temp dir) with its log captured, the LIS a real MLLP client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { Logger } from '../../gateway/src/log.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;
const order = (id: string, placer: string, filler: string): string =>
  [MSH('ORM^O01^ORM_O01', id), 'PID|1||MRN-77^^^LAB^MR', `ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|1|${placer}|${filler}|GLU^GLU test`].join('\r');
const result = (id: string, placer: string, filler: string): string =>
  [
    MSH('ORU^R01^ORU_R01', id),
    'PID|1||MRN-77^^^LAB^MR',
    `ORC|RE|${placer}|${filler}`,
    `OBR|1|${placer}|${filler}|GLU^GLU test|||20260301100000|||||||||||||||20260301110000|||F`,
    'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F',
  ].join('\r');

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

describe('a result sent again after its order came', () => {
  /**
   * The resend is the duplicate of the result stored under LF-9201 (its events are not written
   * again): it stays under LF-9201. Before, the log said "attached to order 70201" for it: the
   * operator looking for why the result waits read that it had been attached. (Since the order
   * came, the stored result has its copy on 70201, made by the order's commit:
   * test/integration/review-s23-filler-before-order.test.ts.)
   */
  it('the log never says a duplicate was attached', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-fillerb-resend-'));
    const warnings: string[] = [];
    const log: Logger = {
      debug: () => {},
      info: () => {},
      warn: (msg, fields) => void warnings.push(`${msg} ${JSON.stringify(fields ?? {})}`),
      error: () => {},
      child: () => log,
    };
    const gateway = new Gateway({ config: testGatewayConfig('fillerb-resend', dir, {}), log });
    await gateway.start();
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    closers.push(async () => {
      await lis.close().catch(() => undefined);
      await gateway.stop(5_000);
      await rm(dir, { recursive: true, force: true });
    });
    const send = async (text: string): Promise<string> => (await lis.send(Buffer.from(text, 'latin1'))).toString('latin1');
    // The link has sent an order carrying a filler number before (it is looked up).
    expect(await send(order('O-0', '70200', 'LF-9200'))).toContain('MSA|AA|O-0');
    expect(await send(result('R-1', '', 'LF-9201'))).toContain('MSA|AA|R-1');
    expect(await send(order('O-1', '70201', 'LF-9201'))).toContain('MSA|AA|O-1');
    warnings.length = 0;
    expect(await send(result('R-1', '', 'LF-9201'))).toContain('MSA|AA|R-1');
    const validated = (await gateway.store!.listEvents({ limit: 100 })).filter((e) => e.event.type === 'result.validated');
    // The stored result, and its copy the order's commit made (key `<its key>|attached`); the
    // resend added nothing.
    expect(validated.map((e) => [e.event.correlationId, e.event.idempotencyKey.endsWith('|attached')])).toEqual([
      ['LF-9201', false],
      ['70201', true],
    ]);
    expect(warnings.filter((w) => w.startsWith('result attached by its order number'))).toEqual([]);
    expect(warnings.some((w) => w.includes('LF-9201') && w.includes('70201') && w.includes('duplicate'))).toBe(true);
  });
});
