/**
 * A LIS result pipelined right behind its order on the same MLLP connection, naming the order only
 * by its filler number (hl7/order-numbers.ts): a real gateway (MLLP listener, LevelDB in a temp
 * dir, the relay) posting to the Odoo emulator, the LIS a raw TCP client writing both frames at once.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

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
const frame = (text: string): Buffer => Buffer.concat([Buffer.from([0x0b]), Buffer.from(text + '\r', 'latin1'), Buffer.from([0x1c, 0x0d])]);

/** Writes every frame in one write on a new connection; the ACKs once all have come. */
async function pipelined(port: number, texts: string[]): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  let got = '';
  const acks = new Promise<void>((resolve) =>
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if ((got.match(/\x1c/g) ?? []).length >= texts.length) resolve();
    }),
  );
  socket.write(Buffer.concat(texts.map(frame)));
  await acks;
  socket.destroy();
  return got;
}

describe('a result pipelined behind its order, naming it by its filler number', () => {
  /**
   * The order's commit reads the store before it is queued (its derivations), so the result's
   * look-up, issued after it, read the store before the order was in it: the result kept the
   * accession LF-9101, waited for an order of that number that never came, and the GLU line was
   * never delivered nor invoiced.
   */
  it('is billed on the order it follows', async () => {
    const l = await lab('review-s22-fillerb-pipelined');
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [order('O-1', '70101', 'LF-9101'), result('R-1', '', 'LF-9101')]);
    expect(acks).toContain('MSA|AA|O-1');
    expect(acks).toContain('MSA|AA|R-1');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.event.partitionKey])).toEqual([['70101', 'order:70101']]);
    await l.settled();
    expect(saleLines(l.emu, '70101').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 1]]);
    expect(invoices(l.emu, '70101')).toHaveLength(1);
  });

  /** A link already marked (an earlier order carried a filler number): the same. */
  it('is billed on the order it follows on a link that has sent such orders before', async () => {
    const l = await lab('review-s22-fillerb-pipelined-marked');
    expect(await l.send('lis', order('O-0', '70100', 'LF-9100'))).toContain('MSA|AA|O-0');
    await l.settled();
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [order('O-2', '70102', 'LF-9102'), result('R-2', '', 'LF-9102')]);
    expect(acks).toContain('MSA|AA|R-2');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['70102']);
    await l.settled();
    expect(saleLines(l.emu, '70102').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 1]]);
  });
});
