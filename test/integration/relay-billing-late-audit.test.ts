import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { billingRig, invoices, orm, oru, productCode, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * Billing when the LIS's messages come late: real HL7 through the LIS normalizer, the gateway's
 * invoice-eligibility derivation in a LevelDB store, the relay, and the Odoo emulator over HTTP,
 * as finance staff see Odoo. The promise (DESIGN.md §2–3, relay/README.md "Billing: each test
 * exactly once, never a cancelled one"): a cancelled test is never billed, a done test is never
 * left unbilled, however late a message comes.
 */

/** Every customer-invoice line billed for the accession (invoices not cancelled). */
function billed(emu: OdooEmulator, accession: string): string[] {
  const ids = invoices(emu, accession).filter((m) => m['state'] !== 'cancel').map((m) => m.id);
  return emu
    .records('account.move.line', [['move_id', 'in', ids]], { fields: ['product_id', 'display_type'] })
    .filter((l) => !l['display_type'] || l['display_type'] === 'product')
    .map((l) => productCode(emu, l['product_id']))
    .sort();
}

const openLines = (emu: OdooEmulator, accession: string): string[] => saleLines(emu, accession).filter((l) => l.qty > 0).map((l) => l.code).sort();
const deadReasons = (evs: StoredEvent[]): string[] => evs.filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.deadReason ?? e.lastError ?? ''}`);

describe('a cancellation that comes long before its order', () => {
  /**
   * What the lab saw: the LIS's order interface was down for an hour while its cancellation
   * interface was not; TSH's cancellation of C-1000 came, was retried until relay.maxAttempts
   * (about 25 minutes with the default back-off) and was dead-lettered. The order came after:
   * held behind the dead cancellation in the order's partition, it never reached Odoo, nor did its
   * results or its invoice, until an operator found and discarded the dead letter; GLU, done and
   * validated, was not billed meanwhile.
   * Promise broken: relay/README.md "A cancellation before its order ... waits for that order"
   * (before, "the cancellation was retried until dead-lettered, holding its order back"), and a
   * done test is never left unbilled.
   */
  it('is not dead-lettered, and the order that comes after its retries bills the other tests', async () => {
    // Two attempts stand for the budget the real back-off spends in about 25 minutes.
    const rig = await billingRig({ maxAttempts: 2 });
    await rig.receive(orm('C-1000', ['TSH'], 'CA'));
    await rig.settle('C-1000');
    expect(deadReasons(await rig.events('C-1000')), 'the cancellation waits for its order').toEqual([]);

    await rig.receive(orm('C-1000', ['GLU', 'TSH']));
    await rig.receive(oru('C-1000', 'GLU'));
    await rig.settle('C-1000');

    expect(deadReasons(await rig.events('C-1000'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-1000')).toHaveLength(1);
    expect(openLines(rig.emu, 'C-1000'), 'TSH is not on the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'C-1000')).toEqual(['GLU']);
  });

  /** The same with the whole order cancelled (an ORC CA alone) long before it came: never billed. */
  it('a whole-order cancellation long before its order is not dead-lettered, and nothing is billed', async () => {
    const rig = await billingRig({ maxAttempts: 2 });
    await rig.receive(orm('C-1100', [], 'CA'));
    await rig.settle('C-1100');
    expect(deadReasons(await rig.events('C-1100'))).toEqual([]);

    await rig.receive(orm('C-1100', ['GLU', 'TSH']));
    await rig.receive(oru('C-1100', 'GLU'));
    await rig.receive(oru('C-1100', 'TSH'));
    await rig.settle('C-1100');

    expect(deadReasons(await rig.events('C-1100'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-1100').map((o) => o['state']).filter((s) => s !== 'cancel'), 'no live quotation').toEqual([]);
    expect(billed(rig.emu, 'C-1100')).toEqual([]);
  });
});
