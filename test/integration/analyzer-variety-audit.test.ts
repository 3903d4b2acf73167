/**
 * Analyzer variety day audit. A real gateway (LevelDB in a temp dir, the ASTM and MLLP listeners
 * on loopback TCP, the relay) posting to the Odoo emulator over HTTP ('lab-demo' seed, plus the
 * analyzers' own reagent products created the way a site's Odoo holds them), the LIS as a real
 * MLLP client and each analyzer simulated on its real wire: E1381 frames over TCP
 * (test/fixtures/astm-link/analyzer-sim.ts) or HL7 over MLLP (Mindray).
 *
 * Each model family plays a realistic day as its shipped profile (firmware-profiles/) describes
 * it, and what a lab would see in Odoo (exact consumption quantities, one chatter note per fact)
 * and in the message browser is compared with DESIGN.md §3, gateway/src/astm/README.md and
 * firmware-profiles/README.md.
 */
import { startLabDay, type LabDay } from '../fixtures/relay/lab-day.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { orm } from '../fixtures/order-download.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';


const listen = { host: '127.0.0.1', port: 0 };

// ------------------------------------------------------------------------------------------ rig

type Lab = LabDay;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/**
 * The site's Odoo products for an analyzer's consumption table (untracked consumables, in the
 * unit their profile rows use), created by the admin as a site does before commissioning.
 */
function createProducts(emu: OdooEmulator, products: Array<[code: string, uom: 'Units' | 'L' | 'mL']>): void {
  const uomId = (name: string): number => emu.records('uom.uom', [['name', '=', name]])[0]!.id as number;
  for (const [code, uom] of products) {
    emu.call('product.product', 'create', [{ name: code, default_code: code, type: 'consu', detailed_type: 'consu', sale_ok: false, uom_id: uomId(uom), uom_po_id: uomId(uom) }]);
  }
}

function lab(id: string, sections: Record<string, unknown>, products: Array<[string, 'Units' | 'L' | 'mL']> = []): Promise<Lab> {
  return startLabDay(id, closers, sections, { relay: { invoicing: false }, prepare: (emu) => createProducts(emu, products) });
}

/** The quantity of `code` moved out of the lab by the gateway's consumption pickings, in the product's unit. */
function consumed(emu: OdooEmulator, code: string): number {
  const product = emu.records('product.product', [['default_code', '=', code]])[0]!.id as number;
  const pickings = emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']]).map((p) => p.id as number);
  return emu
    .records('stock.move', [['picking_id', 'in', pickings], ['product_id', '=', product]])
    .reduce((q, m) => q + Number(m['product_uom_qty']), 0);
}

/** Send one ASTM message (records without CR) over E1381, one record per frame; every reply must be ACK. */
async function sendAstm(sim: AnalyzerSim, records: string[]): Promise<void> {
  const { replies } = await sim.sendMessage(records);
  expect(replies).toBe('<ACK>'.repeat(records.length + 1));
}

// ---------------------------------------------------------------------------------------- tests

describe('Siemens ADVIA Centaur XP: a test the profile does not map yet', () => {
  /**
   * What the lab sees: the Centaur runs TSH (mapped) and FT3 — an assay the lab added on the
   * analyzer before the profile maps it (`unmappedTests: report`: "the event still goes on … the
   * operator finds the message to fix the mapping"). The Centaur reports every assay as several
   * R records, one per result aspect of the same measurement (`^^^FT3^^^1^RLU`, `^^^FT3^^^1^DOSE`;
   * the mapped ones carry `RLU`/`COFF` marked `ignore`). Odoo books 3 cuvettes and 1.8 mL of
   * acid/base for the two tests the analyzer ran (2 cuvettes, 1.2 mL): the unmapped FT3 is counted
   * once per aspect, and its RLU raw value also becomes a "test FT3^RLU completed" chatter line.
   * Promise broken: DESIGN.md §3 `consumable.used` "each analyzer run × profile consumption table"
   * (the `per: test`, `test: "*"` rows: one cuvette per test), firmware-profiles/README.md
   * `consumption` "`per: test` rows … apply once per matching distinct test"; the aspects of one
   * Centaur test are one measurement (protocols.md §4 "several R records (RLU/COFF/DOSE) per test").
   * Cause: gateway/src/astm/normalize.ts:321-333 — an unmapped code keeps its qualifier components
   * (`analyzerTestCode` joins `qualifierComponents`, :138) as its canonical code, so each aspect is
   * a distinct "test" for `consumptionDrafts` (profiles/consumption.ts:56, `row.test === '*'`).
   * Fix: for an unmapped code, count consumption on the test without its qualifiers (the code
   * component alone: `FT3`), i.e. key the `*` rows per distinct base test, or treat an unmapped
   * aspect whose base test already drew in the run as part of it (as #sharedRunId groups the
   * parameters of one test).
   */
  it('an unmapped assay reported as RLU + DOSE draws one cuvette and one acid/base dose, like a mapped one', async () => {
    const l = await lab(
      'va-centaur',
      { analyzers: [{ id: 'centaur-1', profile: 'siemens-advia-centaur-xp', tcp: { listen } }] },
      [
        ['SIE-CENTAUR-TSH3UL-RP', 'Units'],
        ['SIE-CENTAUR-CUVETTE', 'Units'],
        // Stocked in mL: in litres Odoo keeps 2 decimals, and 1.5 mL would be carried, not posted.
        ['SIE-CENTAUR-ACID-BASE', 'mL'],
        ['SIE-CENTAUR-WASH1', 'mL'],
      ],
    );
    expect(await l.send('lis', orm('CEN-O1', '000004400200', ['TSH']))).toContain('MSA|AA|CEN-O1');
    const sim = await l.analyzer('centaur-1');
    await sendAstm(sim, [
      'H|\\^&|||UIW_LIS|||||LIS_ID||P||20260302101530',
      'P|1|200311||||||U',
      'O|1|000004400200^0014^A||^^^TSH3UL\\^^^FT3|R||||||||||Serum||||||||||F',
      'R|1|^^^TSH3UL^^^1^RLU|45002|||||F||||20260302101201|IRL21681824',
      'R|2|^^^TSH3UL^^^1^DOSE|1.82|uIU/mL||||F||||20260302101201|IRL21681824',
      'R|3|^^^FT3^^^1^RLU|38810|||||F||||20260302101412|IRL21681824',
      'R|4|^^^FT3^^^1^DOSE|3.10|pg/mL||||F||||20260302101412|IRL21681824',
      'L|1|N',
    ]);
    await l.settled();
    // Two tests ran: two cuvettes, two acid/base doses of 0.6 mL; one wash per run.
    expect(consumed(l.emu, 'SIE-CENTAUR-TSH3UL-RP')).toBe(1);
    expect(consumed(l.emu, 'SIE-CENTAUR-WASH1')).toBeCloseTo(1.5, 9);
    expect(consumed(l.emu, 'SIE-CENTAUR-CUVETTE')).toBe(2);
    expect(consumed(l.emu, 'SIE-CENTAUR-ACID-BASE')).toBeCloseTo(1.2, 9);
  });
});

describe('Mindray BS chemistry (HL7): a test number the profile does not map', () => {
  /**
   * What the lab's IT sees while commissioning a Mindray BS-200: a site-assigned test number (7)
   * the profile does not map yet arrives as an ORU^R01. The profile says `unmappedTests: report`,
   * and firmware-profiles/README.md promises for it: "the event carries the analyzer code, the
   * message is searchable as `unmapped:<code>`" (commissioning step 4: "Switch `unmappedTests` to
   * `report`"; gateway/src/astm/README.md: "the operator finds the message to fix the mapping").
   * Searching the message browser for `unmapped:7` finds nothing: the ASTM analyzers' messages get
   * that term, the HL7 analyzers' do not; the only trace is a debug-level log line.
   * Cause: gateway/src/profiles/hl7-analyzer-normalize.ts:152 puts the unmapped code in `notes`
   * only, and gateway/src/ingress/mllp/hl7-intake.ts:439/456 logs the notes at debug and builds the
   * search terms with `hl7SearchTerms` (hl7/normalize-lis.ts:623), which knows nothing of unmapped
   * codes.
   * Fix: have the HL7 analyzer normalizer report its unmapped codes (as the ASTM one does with
   * `unmapped:<code>` in `searchTerms`) and add them to the stored message's search terms (and log
   * them at warn, as the ASTM endpoint does with its warnings).
   */
  it('the ORU of an unmapped test number is found in the message browser as unmapped:<code>', async () => {
    const l = await lab('va-bs', { analyzers: [{ id: 'bs-1', profile: 'mindray-bs-series', tcp: { listen } }] });
    const oru = [
      'MSH|^~\\&|Mindray|BS-200|||20260302103000||ORU^R01|71|P|2.3.1||||0||ASCII|||',
      'PID|1|MRN-8841||12|||19830719000000|F',
      'OBR|1|260302-61|12|Mindray^BS-200|N||20260302102500||||||||serum',
      'OBX|1|NM|7|LDH|182.000000|U/L|-||||F|||20260302102930||',
    ].join('\r');
    expect(await l.send('bs-1', oru)).toContain('MSA|AA|71');
    const events = (await l.all()).filter((e) => e.event.type === 'test.completed');
    expect(events.map((e) => (e.event.data as { testCode: string }).testCode)).toEqual(['7']);
    const found = await l.gateway.store!.listMessages({ q: 'unmapped:7' });
    expect(found.map((m) => m.controlId)).toEqual(['71']);
  });
});

