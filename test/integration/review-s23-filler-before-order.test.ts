/**
 * A LIS result that comes before its order and names it only by the order's other number
 * (hl7/order-numbers.ts): the result carries the filler number LF-9301, the order 70301 carrying
 * LF-9301 comes later. As finance sees it in Odoo: a real gateway (MLLP listener, LevelDB in a temp
 * dir, the relay) posting to the Odoo emulator over HTTP, the LIS a real MLLP client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { fillerOrder, fillerResult, pipelined, useLisLab } from '../fixtures/lis-rig.ts';
import { billed, invoices, saleLines } from '../fixtures/relay/billing-rig.ts';
import { startLabDay } from '../fixtures/relay/lab-day.ts';

const { lab, closers } = useLisLab();

/** A GLU order under `placer` and `filler`, for patient `mrn`. */
const order = (id: string, placer: string, filler: string, mrn = 'MRN-77'): string => fillerOrder(id, placer, filler, { mrn });
/** Its result, naming the order by `placer` (may be empty) and `filler`, for patient `mrn`. */
const result = fillerResult;

type Lab = Awaited<ReturnType<typeof lab>>;
const lines = (l: Lab, accession: string): Array<[string, number, number]> => saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]);

/** The link has sent an order carrying a filler number before (its results are looked up). */
async function marked(id: string): Promise<Lab> {
  const l = await lab(id);
  expect(await l.send('lis', order('O-0', '70300', 'LF-9300'))).toContain('MSA|AA|O-0');
  return l;
}

describe('a result that came before its order, naming it by its filler number', () => {
  /**
   * What finance saw: the result (only LF-9301) came first and was stored under LF-9301; the order
   * 70301 carrying LF-9301 came after it. Nothing attached the result to it: it waited under
   * LF-9301 for an order of that number and was dead-lettered after a day, the GLU line of 70301
   * never delivered nor invoiced.
   */
  it('is billed on the order once the order comes', async () => {
    const l = await marked('review-s23-filler-before-order');
    expect(await l.send('lis', result('R-1', '', 'LF-9301'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', order('O-1', '70301', 'LF-9301'))).toContain('MSA|AA|O-1');
    await l.settled();
    expect(lines(l, '70301')).toEqual([['GLU', 1, 1]]);
    expect(billed(l.emu, '70301')).toEqual(['GLU']);
    const all = await l.all();
    expect(all.filter((e) => e.state === 'dead')).toEqual([]);
    // The stored result keeps its body (accession LF-9301), finished without a write; its copy on
    // the order is delivered there.
    const validated = all.filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.state]).sort()).toEqual([
      ['70301', 'delivered'],
      ['LF-9301', 'delivered'],
    ]);
    // A resend of the result (same MSH-10) is the duplicate it is, and the order sent again under
    // another control id attaches nothing again: billed once.
    expect(await l.send('lis', result('R-1', '', 'LF-9301'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', order('O-1b', '70301', 'LF-9301'))).toContain('MSA|AA|O-1b');
    await l.settled();
    expect((await l.all()).filter((e) => e.event.type === 'result.validated')).toHaveLength(2);
    expect(invoices(l.emu, '70301')).toHaveLength(1);
    expect(billed(l.emu, '70301')).toEqual(['GLU']);
  });

  /** The other way round: the result carried both numbers (accession 70302), the order only the filler number. */
  it('a result carrying both numbers is billed on the order that comes under its filler number', async () => {
    const l = await marked('review-s23-filler-before-order-placer');
    expect(await l.send('lis', result('R-2', '70302', 'LF-9302'))).toContain('MSA|AA|R-2');
    expect(await l.send('lis', order('O-2', '', 'LF-9302'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(lines(l, 'LF-9302')).toEqual([['GLU', 1, 1]]);
    expect(billed(l.emu, 'LF-9302')).toEqual(['GLU']);
    expect((await l.all()).filter((e) => e.state === 'dead')).toEqual([]);
  });

  /** On a prefixed LIS link: attached to that link's order only, never to the other link's carrying the number. */
  it('on a prefixed link: attached to the order of that link', async () => {
    const l = await startLabDay(
      'review-s23-filler-before-order-two-lis',
      closers,
      {
        hl7: [
          { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
          { id: 'out', listen: { host: '127.0.0.1', port: 0 }, accessionPrefix: 'OUT' },
        ],
      },
      { relay: { syncModes: { 'invoice.eligible': 'realtime' } } },
    );
    expect(await l.send('out', order('O-0', '80300', 'LF-9300'))).toContain('MSA|AA|O-0');
    expect(await l.send('out', result('R-6', '', 'LF-9306'))).toContain('MSA|AA|R-6');
    // The other link's order carrying the number comes first: not its result.
    expect(await l.send('lis', order('O-6', '70306', 'LF-9306'))).toContain('MSA|AA|O-6');
    expect(await l.send('out', order('O-7', '80306', 'LF-9306'))).toContain('MSA|AA|O-7');
    await l.settled();
    expect(lines(l, 'OUT-80306')).toEqual([['GLU', 1, 1]]);
    expect(lines(l, '70306')).toEqual([['GLU', 1, 0]]);
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.event.partitionKey]).sort()).toEqual([
      ['OUT-80306', 'order:OUT-80306'],
      ['OUT-LF-9306', 'order:OUT-LF-9306'],
    ]);
  });

  /** Never on another patient's order: the result stays waiting under its own number. */
  it('is not attached to the order of another patient that comes later', async () => {
    const l = await marked('review-s23-filler-before-order-patient');
    expect(await l.send('lis', result('R-3', '', 'LF-9303', 'MRN-88'))).toContain('MSA|AA|R-3');
    expect(await l.send('lis', order('O-3', '70303', 'LF-9303', 'MRN-77'))).toContain('MSA|AA|O-3');
    const all = await l.all();
    const validated = all.filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['LF-9303']);
    expect(validated[0]?.state).not.toBe('delivered');
  });
});

describe('a result that came before its order: pipelined, and across a restart', () => {
  /**
   * The order right behind the result on one connection: its look-up reads the store once the
   * result is in it. Before, the result's look-up waited for the order's commit, queued behind that
   * look-up: neither was answered, nor anything the link sent after them.
   */
  it('an order pipelined behind the result attaches it', async () => {
    const l = await marked('review-s23-filler-before-order-pipelined');
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [result('R-4', '', 'LF-9304'), order('O-4', '70304', 'LF-9304')]);
    expect(acks).toContain('MSA|AA|R-4');
    expect(acks).toContain('MSA|AA|O-4');
    await l.settled();
    expect(lines(l, '70304')).toEqual([['GLU', 1, 1]]);
    expect(billed(l.emu, '70304')).toEqual(['GLU']);
  });

  /** The link's waiting results are kept in the store: an order after a restart attaches the result stored before it. */
  it('the order that comes after a restart attaches the result', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-filler-before-restart-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const run = async (texts: string[]): Promise<string[]> => {
      const gateway = new Gateway({ config: testGatewayConfig('filler-before-restart', dir, {}), log: silentLogger });
      await gateway.start();
      const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
      try {
        const acks: string[] = [];
        for (const t of texts) acks.push((await lis.send(Buffer.from(t, 'latin1'))).toString('latin1'));
        const validated = (await gateway.store!.listEvents({ limit: 100 })).filter((e) => e.event.type === 'result.validated');
        acks.push(JSON.stringify(validated.map((e) => [e.event.correlationId, e.event.idempotencyKey.endsWith('|attached')])));
        return acks;
      } finally {
        await lis.close().catch(() => undefined);
        await gateway.stop(5_000);
      }
    };
    const first = await run([order('O-0', '70300', 'LF-9300'), result('R-5', '', 'LF-9305')]);
    expect(first.at(-1)).toBe(JSON.stringify([['LF-9305', false]]));
    const second = await run([order('O-5', '70305', 'LF-9305')]);
    expect(second[0]).toContain('MSA|AA|O-5');
    expect(second.at(-1)).toBe(
      JSON.stringify([
        ['LF-9305', false],
        ['70305', true],
      ]),
    );
  });
});
