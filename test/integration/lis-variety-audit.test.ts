/**
 * Audit "LIS variety": HL7 v2 dialects a real LIS sends, over real MLLP/TCP into a whole gateway
 * (LIS endpoint + a Mindray BS-200 HL7 analyzer endpoint, real LevelDB store with its invoice
 * eligibility deriver). Each test failed before its fix; the "Cause" lines say what was wrong.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';

let gateway: Gateway;
let stop: () => Promise<void>;
let lis: MllpClient;
let bs: MllpClient;

beforeAll(async () => {
  ({ gateway, stop } = await startTestGateway('lisvar', {
    analyzers: [{ id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
  }));
  lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port!, timeoutMs: 10_000 });
  bs = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-200']!.port!, timeoutMs: 10_000 });
});

afterAll(async () => {
  await lis?.close().catch(() => undefined);
  await bs?.close().catch(() => undefined);
  await stop?.();
});

/** An HL7 message from segment lines (CR-terminated, as the standard says). */
const hl7 = (...segments: string[]): Buffer => Buffer.from(segments.join('\r') + '\r', 'latin1');
const lines = (frame: Buffer | undefined): string[] => (frame ?? Buffer.alloc(0)).toString('latin1').split('\r').filter((l) => l !== '');
const msa = (reply: Buffer): string => lines(reply).find((l) => l.startsWith('MSA|')) ?? '';

/** The vendor's own QRY^Q02 (Mindray BS-200 manual), asking for `barcode` (QRD-8) under control id `id`. */
function bsQuery(barcode: string, id: string): Buffer {
  const vendor = unwrapFrame(readFileSync(path.join(corpusDir, 'qry_q02_mindray-bs200_host-query_vendor-manual.mllp'))).toString('latin1');
  return Buffer.from(vendor.replace('|QRY^Q02|1|', `|QRY^Q02|${id}|`).replace('|RD|34567743|', `|RD|${barcode}|`), 'latin1');
}

async function eventsOf(accession: string): Promise<StoredEvent['event'][]> {
  const stored = await gateway.store!.eventsByCorrelation(accession);
  return [...stored].sort((a, b) => (a.event.id < b.event.id ? -1 : 1)).map((s) => s.event);
}

describe('LIS orders as HL7 v2.5.1 OML^O21 sends them', () => {
  /**
   * User impact: a STAT sample ordered by a v2.5.1 LIS (priority in TQ1-9, the only place OML^O21
   * has for it: OBR-27 is kept for backward compatibility only since v2.5) is downloaded to the
   * analyzer as routine (Mindray DSP-24 `N`, ASTM O record priority `R`): the urgent tube waits in
   * the routine queue.
   * Promise: hl7/README.md "Host queries of HL7 analyzers": DSP-24 STAT `Y`/`N`; normalize-lis.ts
   * reads TQ1-9 as the priority. HL7 v2.5.1 OML_O21: ORDER = ORC [{TIMING: TQ1 [{TQ2}]}]
   * [OBSERVATION_REQUEST: OBR …]: TQ1 comes between the ORC and its OBR (corpus
   * oml_o21_hapi-lab-example-01.hl7, oml_o33_multi-specimen_hl7apy.hl7).
   * Cause: normalize-lis.ts kept a TQ1 only when it followed an OBR (an ORC cleared the current
   * line), so a TQ1 in its standard place was dropped and `priority` never read from it.
   * Fix: the TQ1 after an ORC is that ORC's timing, for the lines of the OBR that follow (or the
   * ORC-only line); one after the OBR is still that line's.
   */
  it('TQ1-9 S (STAT) between ORC and OBR: the analyzer host query gets the order as STAT (DSP-24 Y)', async () => {
    const order = hl7(
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301080000||OML^O21^OML_O21|TQ1-STAT-1|P|2.5.1',
      'PID|1||MRN-71^^^LAB^MR',
      'ORC|NW|STAT-71||||||||20260301075500|||||||||||CLINIC-A',
      'TQ1|||||||||S^Stat^HL70485',
      'OBR|1|STAT-71||GLU^Glucose^L',
    );
    expect(msa(await lis.send(order))).toBe('MSA|AA|TQ1-STAT-1');
    const [qck, dsr] = await bs.request(bsQuery('STAT-71', 'Q71'), 2);
    expect(lines(qck)).toContain('QAK|SR|OK|');
    expect(lines(dsr).find((l) => l.startsWith('DSP|24|'))).toBe('DSP|24||Y|||');
  });

  /**
   * User impact: one accession, two tubes (serum for ALT, fluoride for glucose), the LIS names
   * each tube in its SPM. The analyzer scans the second tube and is told "no order" (QAK NF): the
   * tube is not run from the worklist, and its results do not find the order (their chatter notes
   * go to a "sale order" named after the tube, and are dead-lettered).
   * Promise: hl7/README.md "The accession of a barcode" / "Host queries": an LIS order whose
   * specimen id (SPM-2) the barcode is is found; DESIGN.md §3 specimen.received from OML SPM.
   * Cause: normalize-lis.ts kept only the first specimen id of an accession in
   * `order.created.specimenId`, and the look-up (astm/host-query.ts `orderEventsForSpecimen`)
   * matched `data.specimenId === barcode`: every other tube of the order was unknown.
   * Fix: order.created carries every tube with its tests (`specimens`, when there is more than
   * one); the look-up (host queries, accession resolution) matches any of them, and a tube is
   * answered with the tests ordered on it.
   */
  it('one accession with two tubes (SPM per OBR): the host query for the second tube finds the order and its test', async () => {
    const order = hl7(
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301080000||OML^O21^OML_O21|TUBES-72|P|2.5.1',
      'PID|1||MRN-72^^^LAB^MR',
      'ORC|NW|ACC-72||||||||20260301075500|||||||||||CLINIC-A',
      'OBR|1|ACC-72||ALT^Alanine aminotransferase^L',
      'SPM|1|SST-72A||SER^Serum^HL70487|||||||||||||20260301070000|20260301073000',
      'ORC|NW|ACC-72||||||||20260301075500|||||||||||CLINIC-A',
      'OBR|2|ACC-72||GLU^Glucose^L',
      'SPM|2|FLU-72B||PLAS^Plasma^HL70487|||||||||||||20260301070000|20260301073000',
    );
    expect(msa(await lis.send(order))).toBe('MSA|AA|TUBES-72');
    const testNumbers = (dsr: Buffer | undefined): string[] => lines(dsr).filter((l) => /^DSP\|(29|[3-9][0-9])\|/.test(l));
    // The first tube (the order's specimenId, known before): ALT, test number 1 of the BS profile,
    // and not the glucose of the other tube.
    const [first, firstDsr] = await bs.request(bsQuery('SST-72A', 'Q72A'), 2);
    expect(lines(first)).toContain('QAK|SR|OK|');
    expect(testNumbers(firstDsr)).toEqual(['DSP|29||1^^^|||']);
    // The second tube of the same order: glucose, test number 3. (Its own connection: a found
    // order is answered with two frames, "not found" with one, and the client waits for two.)
    const other = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-200']!.port!, timeoutMs: 10_000 });
    try {
      const [second, secondDsr] = await other.request(bsQuery('FLU-72B', 'Q72B'), 2);
      expect(lines(second)).toContain('QAK|SR|OK|');
      expect(testNumbers(secondDsr)).toEqual(['DSP|29||3^^^|||']);
    } finally {
      await other.close().catch(() => undefined);
    }
    // The analyzer's result for the second tube lands on the order (accession resolution shares
    // the look-up), its key staying on the barcode.
    const oru = hl7(
      'MSH|^~\\&|Mindray|BS-200|||20260301110000||ORU^R01|72|P|2.3.1||||0||ASCII|||',
      'PID|1|854||72|Anon||19830719000000|F',
      'OBR|1|FLU-72B|72|Mindray^BS-200|N||20260301105500||||||||plasma',
      'OBX|1|NM|3|GLU|5.400000|mmol/L|-||||F|||20260301105900||',
    );
    expect(msa(await bs.send(oru))).toBe('MSA|AA|72');
    const result = (await eventsOf('ACC-72')).find((e) => e.type === 'test.completed');
    expect(result?.type === 'test.completed' ? [result.data.specimenId, result.data.accession, result.partitionKey] : []).toEqual(['FLU-72B', 'ACC-72', 'order:ACC-72']);
    expect(result?.idempotencyKey).toContain('FLU-72B');
  });
});

describe('one message that cancels a test and orders it again', () => {
  /**
   * User impact: the LIS replaces a test in one ORM (the tube was haemolysed: ORC CA for GLU,
   * then ORC NW for GLU again, in that order). The gateway stores "ordered, then cancelled": GLU
   * disappears from the sale order and from the analyzer worklist, and when its new result is
   * validated the invoice is drafted without it (the test is done and never billed).
   * Promise: DESIGN.md §2 "Order within a partition: events of one order … reach Odoo in the order
   * they happened"; relay/README.md "Billing: each test exactly once, never a cancelled one",
   * walked "in stored order".
   * Cause: normalize-lis.ts emitted every order.created of the message before every
   * order.cancelled, whatever the order of the ORC groups.
   * Fix: the order facts in segment order (one event per run of an accession's consecutive lines
   * with the same control, keyed on its first line), still before the milestones.
   */
  it('ORC CA GLU then ORC NW GLU in one ORM: GLU stays ordered and is billed once validated', async () => {
    const msh = (id: string, type: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301090000||${type}|${id}|P|2.3`;
    expect(msa(await lis.send(hl7(msh('RE-73-1', 'ORM^O01'), 'PID|1||MRN-73', 'ORC|NW|ACC-73||||||||20260301085500|||||||||||CLINIC-A', 'OBR|1|ACC-73||GLU^Glucose^L', 'OBR|2|ACC-73||NA^Sodium^L')))).toBe('MSA|AA|RE-73-1');
    const replace = hl7(
      msh('RE-73-2', 'ORM^O01'),
      'PID|1||MRN-73',
      'ORC|CA|ACC-73||||||||20260301093000|||||||||||CLINIC-A',
      'OBR|1|ACC-73||GLU^Glucose^L',
      'ORC|NW|ACC-73||||||||20260301093000|||||||||||CLINIC-A',
      'OBR|1|ACC-73||GLU^Glucose^L',
    );
    expect(msa(await lis.send(replace))).toBe('MSA|AA|RE-73-2');
    const result = hl7(
      msh('RE-73-3', 'ORU^R01'),
      'PID|1||MRN-73',
      'ORC|RE|ACC-73',
      'OBR|1|ACC-73||GLU^Glucose^L|||||||||||||||||||F',
      'OBX|1|NM|GLU^Glucose^L||5.4|mmol/L|||||F',
      'OBR|2|ACC-73||NA^Sodium^L|||||||||||||||||||F',
      'OBX|1|NM|NA^Sodium^L||140|mmol/L|||||F',
    );
    expect(msa(await lis.send(result))).toBe('MSA|AA|RE-73-3');
    const eligible = (await eventsOf('ACC-73')).filter((e) => e.type === 'invoice.eligible');
    expect(eligible).toHaveLength(1);
    expect(eligible[0]!.type === 'invoice.eligible' && eligible[0]!.data.tests.map((t) => t.code).sort()).toEqual(['GLU', 'NA']);
  });
});

describe('idempotency keys across the upgrade', () => {
  /**
   * A LIS resending, after the upgrade, a message it sent before must find it a duplicate: the
   * order facts stay keyed on the first line of their accession and kind (segment position and
   * type), whatever their new order. Each shape's keys below are those the previous normalizer
   * gave (it put order.created first in message D1).
   */
  it('order facts keep the keys they had: one per accession and kind, on its first line', () => {
    const keysOf = (...segments: string[]): string[] => {
      const frame = hl7('MSH|^~\\&|LIS|LAB|GW|LAB|20260301080000||ORM^O01|K-1|P|2.3', ...segments);
      const read = readInbound(frame, analyseBlock(frame).messages[0]!, 'ascii');
      return normalizeLis({ message: read.message!, endpoint: 'lis', receivedAt: '2026-03-01T08:00:00.000Z', notes: [], fingerprint: 'fp' }).map((e) => `${e.correlationId}|${e.idempotencyKey.split('|').slice(-2).join('|')}`);
    };
    expect(keysOf('PID|1||P1', 'ORC|NW|A1', 'OBR|1|A1||GLU', 'OBR|2|A1||NA')).toEqual(['A1|3|order.created']);
    expect(keysOf('PID|1||P1', 'ORC|NW|B1', 'OBR|1|B1||GLU', 'ORC|NW|B2', 'OBR|1|B2||K', 'ORC|NW|B1', 'OBR|2|B1||NA')).toEqual(['B1|3|order.created', 'B2|5|order.created']);
    expect(keysOf('ORC|NW|C1', 'OBR|1|C1||GLU', 'ORC|CA|C1', 'OBR|1|C1||GLU')).toEqual(['C1|2|order.created', 'C1|4|order.cancelled']);
    expect(keysOf('ORC|CA|D1', 'OBR|1|D1||GLU', 'ORC|NW|D1', 'OBR|1|D1||GLU')).toEqual(['D1|2|order.cancelled', 'D1|4|order.created']);
  });
});

describe('ORU^R01 with one ORC for the whole report', () => {
  /**
   * User impact: a LIS that, like its ORM, writes one ORC with the order numbers and then one OBR
   * per test (OBR-2/OBR-3 left to the ORC) gets AA for its report, but only the first test is
   * validated: the second test's final result produces no event (a debug note "no accession"),
   * its line is never marked delivered and the order never becomes invoice-eligible.
   * Promise: DESIGN.md §2 "Bad input … never vanishes"; §3 result.validated from ORU OBX-11 F;
   * the same shape in an ORM is read with the ORC applying to every OBR after it
   * (normalize-lis.ts:185 `pendingOrc ?? lastOrc`), so the order has both tests.
   * Cause: normalize-lis.ts gave an ORU's ORC only to the OBR right after it; a later OBR had no
   * accession and EventSink.add skipped its events (a debug note), the message answered AA.
   * Fix: an ORU OBR without an ORC and without numbers of its own is an order of the patient's
   * last ORC (OUL keeps its rule: the ORC follows its OBR); results tied to nothing are refused
   * (next test).
   */
  it('ORC, OBR GLU + OBX F, OBR NA + OBX F: both tests validated, the order becomes invoice-eligible', async () => {
    const msh = (id: string, type: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301100000||${type}|${id}|P|2.3`;
    expect(msa(await lis.send(hl7(msh('ONE-74-1', 'ORM^O01'), 'PID|1||MRN-74', 'ORC|NW|ACC-74||||||||20260301095500|||||||||||CLINIC-A', 'OBR|1|||GLU^Glucose^L', 'OBR|2|||NA^Sodium^L')))).toBe('MSA|AA|ONE-74-1');
    const ordered = (await eventsOf('ACC-74')).find((e) => e.type === 'order.created');
    // The order path reads this shape as one order with both tests.
    expect(ordered?.type === 'order.created' && ordered.data.tests.map((t) => t.code)).toEqual(['GLU', 'NA']);
    const report = hl7(
      msh('ONE-74-2', 'ORU^R01'),
      'PID|1||MRN-74',
      'ORC|RE|ACC-74',
      'OBR|1|||GLU^Glucose^L|||||||||||||||||||F',
      'OBX|1|NM|GLU^Glucose^L||5.4|mmol/L|||||F',
      'OBR|2|||NA^Sodium^L|||||||||||||||||||F',
      'OBX|1|NM|NA^Sodium^L||140|mmol/L|||||F',
    );
    expect(msa(await lis.send(report))).toBe('MSA|AA|ONE-74-2');
    const events = await eventsOf('ACC-74');
    expect(events.filter((e) => e.type === 'result.validated').map((e) => (e.type === 'result.validated' ? e.data.testCode : '')).sort()).toEqual(['GLU', 'NA']);
    expect(events.some((e) => e.type === 'invoice.eligible')).toBe(true);
  });
});

describe('an order the gateway cannot identify', () => {
  /**
   * User impact: a LIS that numbers its requisitions only in ORC-4 (placer group number) and
   * leaves ORC-2/3 and OBR-2/3 empty gets AA for every new order, and nothing happens: no sale
   * order, no worklist, no alert; the message is stored as "accepted", so the operator has no
   * rejected message to look at either. The lab learns it when the month's invoices are missing.
   * Promise: DESIGN.md §2 "Bad input never takes the gateway down and never vanishes: it is
   * answered (AE/AR/NAK) with a clear reason and kept, raw, for an operator"; HL7 v2.5 §2.9.2
   * (AA only for a message the receiver processed); ORC-2 "must be present in the ORC or the OBR".
   * Cause: normalize-lis.ts only pushed a debug note ("has no placer or filler number") and the
   * intake committed the message as accepted and answered AA.
   * Fix: ORC-4 (placer group number) is the accession when ORC-2/3 and OBR-2/3 are empty; with no
   * number at all the message is refused (next test).
   */
  it('ORM^O01 NW without any order number: not acknowledged AA while no order is created', async () => {
    const order = hl7(
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301110000||ORM^O01|NONUM-75|P|2.3',
      'PID|1||MRN-75',
      'ORC|NW|||REQ-75|||||20260301105500|||||||||||CLINIC-A',
      'OBR|1|||GLU^Glucose^L',
    );
    const reply = await lis.send(order);
    const stored = (await gateway.store!.listMessages({ controlId: 'NONUM-75', endpoint: 'lis' }))[0]!;
    const created = (await Promise.all(stored.eventIds.map((id) => gateway.store!.getEvent(id)))).filter((e) => e?.event.type === 'order.created');
    // Either the order is created (from the only number the LIS gave) or the LIS is told it was not.
    const ack = msa(reply);
    expect(created.length > 0 || /^MSA\|A[ER]\|NONUM-75/.test(ack), `order.created: ${created.length}, ${ack}`).toBe(true);
    // Here, from ORC-4.
    expect(ack).toBe('MSA|AA|NONUM-75');
    expect(created.map((e) => e?.event.correlationId)).toEqual(['REQ-75']);
  });

  /**
   * User impact: an order with no number anywhere was answered AA and went nowhere.
   * Promise: DESIGN.md §2 "Bad input … is answered (AE/AR/NAK) with a clear reason and kept, raw,
   * for an operator"; hl7/README.md (ERR table: 101 required field missing).
   */
  it('ORM^O01 NW with no order number at all: AR, ERR 101 at ORC^1^2, kept as rejected with the reason', async () => {
    const order = hl7('MSH|^~\\&|LIS|LAB|GW|LAB|20260301110000||ORM^O01|NONUM-76|P|2.3', 'PID|1||MRN-76', 'ORC|NW|||||||||20260301105500', 'OBR|1|||GLU^Glucose^L');
    const reply = lines(await lis.send(order));
    expect(reply).toContain('MSA|AR|NONUM-76|order at segment 3 (ORC) has no placer or filler number (ORC-2, OBR-2, ORC-3, OBR-3 and ORC-4 are empty)');
    // v2.3: the error in ERR-1 (segment^sequence^field^code&text&table).
    expect(reply.find((l) => l.startsWith('ERR|'))).toMatch(/^ERR\|ORC\^1\^2\^101&/);
    const stored = (await gateway.store!.listMessages({ controlId: 'NONUM-76', endpoint: 'lis' }))[0]!;
    expect([stored.status, stored.eventIds.length]).toEqual(['rejected', 0]);
    expect(stored.rejectReason).toMatch(/no placer or filler number/);
  });
});

describe('results the gateway cannot tie to any order', () => {
  /**
   * User impact: an ORU whose OBR carries no order number, under no ORC and without a specimen,
   * was answered AA and its result dropped (a debug note): the LIS took it as delivered.
   * Promise: DESIGN.md §2 "Bad input never … vanishes: it is answered (AE/AR/NAK) with a clear
   * reason and kept, raw, for an operator".
   */
  it('ORU^R01 with an OBR tied to nothing: AE naming the OBR, kept as rejected, no event of it', async () => {
    const report = hl7(
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301120000||ORU^R01|LOOSE-77|P|2.5.1',
      'PID|1||MRN-77',
      'OBR|1|||GLU^Glucose^L|||||||||||||||||||F',
      'OBX|1|NM|GLU^Glucose^L||5.4|mmol/L|||||F',
    );
    const reply = lines(await lis.send(report));
    expect(reply.find((l) => l.startsWith('MSA|'))).toMatch(/^MSA\|AE\|LOOSE-77\|the results of the OBR at segment 3 cannot be tied to an order/);
    // v2.5: ERR-2 location, ERR-3 code.
    expect(reply.find((l) => l.startsWith('ERR|'))).toMatch(/^ERR\|\|OBR\^1\^2\|101\^/);
    const stored = (await gateway.store!.listMessages({ controlId: 'LOOSE-77', endpoint: 'lis' }))[0]!;
    expect([stored.status, stored.eventIds.length]).toEqual(['rejected', 0]);
  });
});
