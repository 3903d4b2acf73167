/**
 * LIS training and debugging traffic on the gateway's LIS link, as the lab's IT and finance staff
 * see it: a real gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo
 * emulator over HTTP — a production Odoo as far as the gateway knows (`odoo.url` set) — or to its
 * own sandbox (no `odoo.url`), the LIS as a real MLLP client. The first test failed before the fix its comment
 * names; the second pins the sandbox side of the rule.
 */
import { describe, expect, it } from 'vitest';
import { startTestGateway } from '../fixtures/gateway.ts';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';

const { closers, lab } = useLisLab();

/** MSA-1, ERR-2 location and ERR-3 code of an ACK (v2.5 ERR: `ERR||<location>|<code>^<text>^HL70357|E…`). */
function errOf(ack: string): { msa: string; location: string; code: string } {
  const msa = ack.split('\r').find((s) => s.startsWith('MSA|'))?.split('|')[1] ?? '';
  const err = ack.split('\r').find((s) => s.startsWith('ERR|'))?.split('|') ?? [];
  return { msa, location: err[2] ?? '', code: (err[3] ?? '').split('^')[0] ?? '' };
}

describe('LIS training traffic (MSH-11 T / D)', () => {
  /**
   * What finance saw: during a LIS training session the trainer's practice order TRAIN-1 (MSH-11
   * T, HL7 table 0103 "training") and its practice result reached the production Odoo: a draft
   * sale order for the real clinic, its line delivered and a draft invoice "lab-gateway TRAIN-1" —
   * a fictitious patient billed. A debugging message (MSH-11 D) from the LIS's interface engine
   * did the same.
   * Promise broken: DESIGN.md §2 (bad input is answered with a clear reason and kept) and HL7
   * v2.5 §2.9.2.1 / table 0357 (a processing id the receiver does not take is rejected, ERR 202
   * "Unsupported processing id"); the gateway posts to a production Odoo, where training and
   * debugging traffic has no place (reference/lis-odoo-workflow-article.txt: environment
   * isolation between testing and production).
   * Cause: nothing read MSH-11 but the QC mark Q (hl7/normalize-lis.ts): T and D were production.
   * Fix: on a gateway whose Odoo is not the sandbox, an HL7 link refuses T and D: AR with ERR 202
   * at MSH^1^11, the message kept raw as rejected with the reason, no event (hl7/processing-id.ts).
   */
  it('a training order and result (MSH-11 T) and a debugging message (MSH-11 D) reach no production Odoo: AR 202, kept with the reason', async () => {
    const l = await lab('lis-training');
    const ack = await l.send('lis', orm('TRN-1', 'TRAIN-1', ['GLU'], { processing: 'T' }));
    expect(errOf(ack)).toEqual({ msa: 'AR', location: 'MSH^1^11', code: '202' });
    // The ACK echoes the processing id (§2.9: MSH-11 copied), so the LIS files it as training.
    expect(ack.split('\r')[0]!.split('|')[10]).toBe('T');
    expect(errOf(await l.send('lis', oru('TRN-2', 'TRAIN-1', 'GLU', { processing: 'T' })))).toEqual({ msa: 'AR', location: 'MSH^1^11', code: '202' });
    expect(errOf(await l.send('lis', orm('DBG-1', 'DEBUG-1', ['TSH'], { processing: 'D^T' })))).toEqual({ msa: 'AR', location: 'MSH^1^11', code: '202' });
    // Production traffic on the same link goes on as ever.
    expect(await l.send('lis', orm('PRD-1', 'REAL-1', ['GLU']))).toContain('MSA|AA|PRD-1');
    await l.settled();

    expect(saleOrders(l.emu, 'TRAIN-1')).toEqual([]);
    expect(saleOrders(l.emu, 'DEBUG-1')).toEqual([]);
    expect(invoices(l.emu, 'TRAIN-1')).toEqual([]);
    expect(saleLines(l.emu, 'REAL-1').map((x) => x.code)).toEqual(['GLU']);
    const events = await l.all();
    expect(events.filter((e) => ['TRN-1', 'TRN-2', 'DBG-1'].includes(e.event.source.controlId ?? '')).map((e) => e.event.type)).toEqual([]);

    // Kept, raw, for IT: found by its control id, rejected with a reason that says why.
    expect(await l.search('TRN-1')).toEqual([['lis', 'TRN-1']]);
    const [stored] = await l.gateway.store!.listMessages({ controlId: 'TRN-1' });
    expect(stored?.status).toBe('rejected');
    expect(stored?.rejectReason).toMatch(/processing id T \(training\)/);
    const raw = await l.gateway.store!.getMessage(stored!.id);
    expect(raw?.raw.toString('latin1')).toContain('|TRN-1|T|2.5.1');
  });

  /**
   * The other side of the same rule: a site commissioning on the sandbox (no `odoo.url`, DESIGN.md
   * §5) connects its LIS's training system on purpose. Its T messages are taken as usual there —
   * nothing reaches a real Odoo — and IT finds them in the message browser as `processingId:T`.
   */
  it('on the sandbox a training order (MSH-11 T) is taken as usual and found as processingId:T', async () => {
    const { gateway, stop } = await startTestGateway('lis-training-sandbox', {});
    closers.push(stop);
    const client = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7['lis']!.port });
    closers.push(() => client.close());
    const ack = (await client.send(Buffer.from(orm('TRN-9', 'TRAIN-9', ['GLU'], { processing: 'T' }), 'latin1'))).toString('latin1');
    expect(ack).toContain('MSA|AA|TRN-9');
    const events = await gateway.store!.listEvents({ limit: 100 });
    expect(events.map((e) => [e.event.type, e.event.correlationId])).toEqual([['order.created', 'TRAIN-9']]);
    const found = await gateway.store!.listMessages({ q: 'processingId:T' });
    expect(found.map((m) => m.controlId)).toEqual(['TRN-9']);
  });
});
