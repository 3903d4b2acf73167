import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { billed, billingRig, deadReasons, openLines, orm, oru, type BillingRig } from '../fixtures/relay/billing-rig.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

/**
 * Two LIS links that number their accessions alike (no hl7[].accessionPrefix, README.md "Two LIS
 * systems"): the hospital's LIS orders GLU under C-1 for Northside Family Clinic, the outreach LIS
 * orders TSH under C-1 for Harbour Medical Centre. The order rule refuses the outreach's order (a
 * dead letter; the sale order stays Northside's), but billing walked both links' orders as one:
 * TSH, never on Northside's sale order, held it open, and GLU, validated and delivered, was never
 * invoiced, with no dead letter saying so (the operator, as the outreach order's dead letter asks,
 * enters that order by hand and discards it). Real HL7 through the LIS normalizer on two links, the
 * invoice derivation in a LevelDB store, the relay and the Odoo emulator over HTTP.
 */

async function receiveOn(rig: BillingRig, endpoint: string, text: string): Promise<void> {
  const raw = Buffer.from(text, 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error('unreadable HL7');
  const drafts = normalizeLis({ message: r.message, endpoint, receivedAt: new Date().toISOString(), notes: [] });
  const { ack: _ack, ...message } = inboundMessage(r.message.header.controlId, { endpoint, dedupKey: `${endpoint}|LIS^LAB|${r.message.header.controlId}` });
  await rig.store.commit(message, drafts);
  rig.relay.notify();
}

/** Every event of the accession delivered, discarded or dead (rig.settle counts a discarded one as waiting). */
async function settled(rig: BillingRig, accession: string): Promise<void> {
  await waitFor(async () => (await rig.events(accession)).every((e) => ['delivered', 'discarded', 'dead'].includes(e.state)) && rig.store.stats().inFlight === 0, 20_000, 20);
  await rig.store.flush();
}

const outreach = (text: string): string => text.replace(/CLINIC-A/g, 'CLINIC-B');

describe('two LIS links numbering alike: the first client\'s order is billed', () => {
  it('the other link\'s refused order does not hold it open', async () => {
    const rig = await billingRig();
    await receiveOn(rig, 'lis', orm('C-1', ['GLU']));
    await rig.settle('C-1');
    await receiveOn(rig, 'outreach', outreach(orm('C-1', ['TSH'])));
    await rig.settle('C-1');
    const [refused, ...others] = (await rig.events('C-1')).filter((e) => e.state === 'dead');
    expect(others).toEqual([]);
    expect(refused!.deadReason).toMatch(/^order C-1 from outreach for Harbour Medical Centre \(CLINIC-B\) not added: sale order S00001 .* enter this order by hand and discard this event$/);

    await receiveOn(rig, 'lis', oru('C-1', 'GLU'));
    // The operator does as the dead letter asks.
    await rig.store.discard(refused!.event.id, 'operator', 'outreach order entered by hand');
    await settled(rig, 'C-1');

    expect(deadReasons(await rig.events('C-1'))).toEqual([]);
    expect(openLines(rig.emu, 'C-1')).toEqual(['GLU']);
    expect(billed(rig.emu, 'C-1'), 'Northside\'s GLU invoiced').toEqual(['GLU']);

    // The outreach's result of its own TSH: a dead letter (not Northside's), nothing billed twice.
    await receiveOn(rig, 'outreach', outreach(oru('C-1', 'TSH')));
    await settled(rig, 'C-1');
    const dead = deadReasons(await rig.events('C-1'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/^result\.validated: result for test TSH of accession C-1 from outreach not applied/);
    expect(billed(rig.emu, 'C-1')).toEqual(['GLU']);
  });
});
