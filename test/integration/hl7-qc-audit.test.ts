/**
 * QC day on HL7 links. A real gateway (MLLP listeners, LevelDB in a temp dir, the
 * invoice-eligibility derivation, the relay) posting to the Odoo emulator over HTTP ('lab-demo'
 * seed: clinic CLINIC-A "Northside Family Clinic", test products GLU, TSH, CBC …), the LIS and the
 * analyzers as real MLLP clients. QC and calibration runs must never bill, never make a patient
 * milestone, and must be findable as what they are.
 *
 * The three gateway tests come from the QC part of test/integration/two-lis-qc-audit.test.ts; each
 * failed before the fix its comment names. The normalizer tests at the end pin the fix's edges: a
 * patient report keeps the events and keys it had, the same report marked QC bills nothing.
 */
import { readFileSync } from 'node:fs';
import { startLabDay, type LabDay } from '../fixtures/relay/lab-day.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { hl7SearchTerms, normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { invoices, oru, orm, saleLines } from '../fixtures/relay/billing-rig.ts';


/** The BC-5380's own QC transcript: MSH-11 Q, control sample QC-L1-2601, WBC and HGB final. */
const BC_QC = readFileSync(new URL('../fixtures/astm/mindray-bc-5380/qc-result.hl7', import.meta.url), 'latin1');

// ------------------------------------------------------------------------------------------ rig

type Lab = LabDay;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A gateway with the LIS link `lis` (unless `sections` replaces `hl7`), relaying to the emulator. */
function lab(id: string, sections: Record<string, unknown> = {}): Promise<Lab> {
  return startLabDay(id, closers, sections, { relay: { syncModes: { 'invoice.eligible': 'realtime' } } });
}

const runTypeOf = (e: StoredEvent): string | undefined => (e.event.data as { runType?: string }).runType;

// ---------------------------------------------------------------------------------------- tests

describe('QC day on HL7 links', () => {
  /**
   * What finance sees: the hospital's CBC order 12345 (Northside). Before the patient's tube is
   * run, QC is run under a patient-like sample id 12345 and its result reaches the gateway on the
   * LIS link marked as QC (MSH-11 = Q, as the Mindray BC-5380 and LIS that forward QC mark it).
   * Odoo: the patient's CBC line was delivered (qty_delivered 1) and a draft invoice "lab-gateway
   * 12345" drafted for Northside — the control material billed as the patient's test.
   * Promise broken: DESIGN.md §3 (only patient results are billing readiness),
   * events/invoice-eligibility.ts ("QC and calibration runs never produce `result.validated`"),
   * hl7/README.md (the LIS normalizer reads MSH-11 Q as `runType: qc`).
   * Cause: hl7/normalize-lis.ts computed the run type but only copied it into `test.completed`:
   * final OBX still became `result.validated` with the accession, and QC `test.completed` kept the
   * accession (a note on the patient's order).
   * Fix: a non-patient run makes no `result.validated`; its results are `test.completed` with the
   * run type, without accession, in partition `specimen:<id>`.
   */
  it('a QC result (MSH-11 Q) on the LIS link with a patient-like sample id neither delivers nor invoices the patient order', async () => {
    const l = await lab('qc-on-lis');
    expect(await l.send('lis', orm('12345', ['CBC']))).toContain('MSA|AA|');
    await l.settled();
    const qc = ['MSH|^~\\&|LIS|LAB|GW|LAB|20260302070000||ORU^R01^ORU_R01|QC-1|Q|2.5.1', 'OBR|1||12345|CBC^Complete blood count|||20260302065500', 'OBX|1|NM|6690-2^WBC^LN||7.10|10*9/L|||||F'].join('\r');
    expect(await l.send('lis', qc)).toContain('MSA|AA|QC-1');
    await l.settled();
    expect(saleLines(l.emu, '12345').map((x) => [x.code, x.qty, x.delivered])).toEqual([['CBC', 1, 0]]);
    expect(invoices(l.emu, '12345')).toEqual([]);
    const events = await l.all();
    expect(events.filter((e) => e.event.type === 'result.validated' || e.event.type === 'invoice.eligible').map((e) => e.event.type)).toEqual([]);
    // The run is kept as a QC result of the sample, not as a milestone of the patient's order.
    const run = events.filter((e) => e.event.source.controlId === 'QC-1');
    expect(run.map((e) => [e.event.type, runTypeOf(e), (e.event.data as { accession?: string }).accession, e.event.partitionKey, e.state])).toEqual([
      ['test.completed', 'qc', undefined, 'specimen:12345', 'delivered'],
    ]);
    // A patient result of the same order still bills: QC left the order open.
    expect(await l.send('lis', oru('12345', 'CBC'))).toContain('MSA|AA|');
    await l.settled();
    expect(saleLines(l.emu, '12345').map((x) => [x.code, x.delivered])).toEqual([['CBC', 1]]);
  });

  /**
   * What the lab saw every morning: a Mindray BC-5380 connected to a plain `hl7[]` endpoint with
   * `analyzer: bc-1` (README.md `hl7[].analyzer`, "read with the LIS normalizer") sends its QC run
   * (the shipped transcript, MSH-11 Q, sample QC-L1-2601). The gateway made a `result.validated`
   * for "accession QC-L1-2601", which the relay retried and dead-lettered ("GW_MAPPING_MISSING:
   * accession QC-L1-2601 has no Odoo sale order"): a dead letter per QC run on the status page
   * and tray, and the QC itself nowhere as a QC run.
   * Promise broken: as above (QC never billing readiness); dead letters are for real problems.
   * Cause: hl7/normalize-lis.ts made `result.validated` whatever the run type.
   * Fix: as above; and the message carries `runType:qc` for the message browser.
   */
  it('a BC-5380 QC run on an hl7[] endpoint tagged with its analyzer is kept as a QC run, not dead-lettered as a result without an order', async () => {
    const l = await lab('qc-bc-hl7', {
      hl7: [
        { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
        { id: 'bc', listen: { host: '127.0.0.1', port: 0 }, analyzer: 'bc-1' },
      ],
    });
    expect(await l.send('bc', BC_QC)).toContain('MSA|AA|102');
    await l.settled();
    const events = (await l.all()).filter((e) => e.event.source.endpoint === 'bc');
    expect(events.filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.lastError ?? ''}`)).toEqual([]);
    expect(events.map((e) => [e.event.type, runTypeOf(e), (e.event.data as { testCode?: string }).testCode, e.event.partitionKey])).toEqual([
      ['test.completed', 'qc', '6690-2', 'specimen:QC-L1-2601'],
      ['test.completed', 'qc', '718-7', 'specimen:QC-L1-2601'],
    ]);
    expect(await l.search('runType:qc')).toEqual([['bc', '102']]);
  });

  /**
   * What the technician saw: the message browser (`GET /api/messages?q=runType:qc`, the status
   * page's search) lists the QC runs of the ASTM analyzers, but not one of the Mindray BC-5380's
   * (profile `mindray-bc-5380` in `analyzers[]`), although its events say `runType: qc`.
   * Promise broken: astm/README.md (`searchTerms` hold `runType:qc|calibration`) — the same
   * analyzers[] feature; firmware-profiles/README.md "Commissioning": capture a QC run and see in
   * the message browser what was derived.
   * Cause: ingress/mllp/hl7-intake.ts took an HL7 message's terms from the message alone
   * (hl7SearchTerms: control id, ORC/OBR-2/3, SPM-2); the run type of its events never reached them.
   * Fix: hl7SearchTerms adds `runType:<t>` for every non-patient run type among the events, as
   * astm/normalize.ts does; patient messages get no run-type term.
   */
  it('a Mindray BC-5380 QC message is found by the message browser search runType:qc, a patient message is not', async () => {
    const l = await lab('qc-bc-search', { analyzers: [{ id: 'bc-1', profile: 'mindray-bc-5380', tcp: { listen: { host: '127.0.0.1', port: 0 } } }] });
    expect(await l.send('bc-1', BC_QC)).toContain('MSA|AA|102');
    const patient = BC_QC.replace('|102|Q|', '|103|P|').replace('QC-L1-2601', 'SMP-0301');
    expect(await l.send('bc-1', patient)).toContain('MSA|AA|103');
    // The run is a QC run in the store …
    const qcRun = (await l.all()).filter((e) => e.event.type === 'test.completed' && e.event.source.controlId === '102');
    expect(qcRun.map(runTypeOf)).toEqual(['qc', 'qc']);
    // … and the message browser finds it as one, and only it.
    expect(await l.search('runType:qc')).toEqual([['bc-1', '102']]);
    expect(await l.search('runType:patient')).toEqual([]);
  });
});

describe('the LIS normalizer on a QC run', () => {
  /** The events of one ORU^R01 (MSH-11 `processing`), as the LIS endpoint makes them, and its search terms. */
  function read(processing: string, ...segments: string[]): { events: Array<[string, string, string, string, unknown]>; terms: string[] } {
    const frame = Buffer.from([`MSH|^~\\&|LIS|LAB|GW|LAB|20260302070000||ORU^R01^ORU_R01|K-1|${processing}|2.5.1`, ...segments].join('\r'), 'latin1');
    const message = readInbound(frame, analyseBlock(frame).messages[0]!, 'ascii').message!;
    const drafts = normalizeLis({ message, endpoint: 'lis', receivedAt: '2026-03-02T07:00:00.000Z', notes: [], fingerprint: 'fp' });
    return {
      events: drafts.map((e) => [e.type, e.partitionKey, e.idempotencyKey.split('|').slice(-2).join('|'), (e.data as { accession?: string }).accession ?? '-', (e.data as { runType?: string }).runType ?? '-']),
      terms: hl7SearchTerms(message, drafts),
    };
  }
  const segments = ['PID|1||MRN-1', 'ORC|RE|A-1', 'OBR|1|A-1||CBC|||20260302065500', 'OBX|1|NM|WBC||7.1||||||I', 'OBX|2|NM|HGB||128||||||P', 'OBR|2|A-1||GLU|||20260302065500', 'OBX|1|NM|GLU||5.4||||||F', 'OBR|3|A-1||NA|||20260302065500||||||||||||||||||F'];

  // Patient runs keep the events and keys they had before QC was told apart (a LIS resending
  // across the upgrade still finds its message a duplicate), and no run-type search term.
  it('a patient ORU keeps its events, keys and search terms', () => {
    expect(read('P', ...segments)).toEqual({
      events: [
        ['test.in_progress', 'order:A-1', '4|test.in_progress', 'A-1', '-'],
        ['test.completed', 'order:A-1', '5|test.completed', 'A-1', 'patient'],
        ['result.validated', 'order:A-1', '6|result.validated', 'A-1', '-'],
        ['result.validated', 'order:A-1', '8|result.validated', 'A-1', '-'],
      ],
      terms: ['K-1', 'A-1'],
    });
  });

  // The same report marked QC: results of the sample only — no validation, no in-progress
  // milestone, no accession — and the message carries runType:qc.
  it('the same ORU marked QC (MSH-11 Q) makes only test.completed of the sample, and is searchable as QC', () => {
    expect(read('Q', ...segments)).toEqual({
      events: [
        ['test.completed', 'specimen:A-1', '5|test.completed', '-', 'qc'],
        ['test.completed', 'specimen:A-1', '7|test.completed', '-', 'qc'],
        ['test.completed', 'specimen:A-1', '8|test.completed', '-', 'qc'],
      ],
      terms: ['K-1', 'A-1', 'runType:qc'],
    });
  });
});
