/**
 * Host queries with several Q records in one message (LIS2-A2 §11, protocols.md §2.3/§2.4): an
 * analyzer that scans a rack asks for every tube in one message (H, Q|1|…, Q|2|…, …, L). Real
 * gateway (real LevelDB in a temp dir), the LIS orders sent over real MLLP, the analyzers simulated
 * over real TCP sockets (test/fixtures), the answers read off the wire.
 *
 * The bug this file pins: only the first Q of a message was answered ("N Q records: only the first
 * is answered"). The other tubes of the rack got nothing, waited for the analyzer's timeout and ran
 * without their orders (or not at all).
 */
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';

const listen = { host: '127.0.0.1', port: 0 };
const CENTAUR = { id: 'centaur-mq', profile: 'siemens-advia-centaur-xp', tcp: { listen } };
const COBAS = { id: 'e411-mq', profile: 'roche-cobas-e411', tcp: { listen } };
const GENEXPERT = { id: 'gx-mq', profile: 'cepheid-genexpert', tcp: { listen } };
const GENERIC = { id: 'generic-mq', profile: 'generic-astm', tcp: { listen } };

/** One ORM^O01 with an ORC/OBR group per accession (each accession its own order). */
function ormMany(controlId: string, orders: Array<[accession: string, test: string]>): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|${controlId}|P|2.5`,
      'PID|1||MRN-8^^^LAB^MR',
      ...orders.flatMap(([accession, test]) => [`ORC|NW|${accession}||${accession}|SC||||20261125101500||||||||||||CLINIC-A`, `OBR|1|${accession}||${test}^${test}^L`]),
      '',
    ].join('\r'),
  );
}

/** The records of a session text, split on CR. */
const recordsOf = (text: string): string[] => text.split(/\r|\n/).filter((r) => r !== '');

describe('several Q records in one message are all answered, in one reply', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  const analyzers: Record<string, { sim: AnalyzerSim; socket: net.Socket }> = {};

  async function order(controlId: string, accession: string, tests: string[]): Promise<void> {
    expect((await lis.send(orm(controlId, accession, tests))).toString('latin1')).toContain(`MSA|AA|${controlId}`);
  }

  /** Send one query message and read the one session the gateway answers with. */
  async function ask(analyzer: string, records: string[]): Promise<string[]> {
    const { sim } = analyzers[analyzer]!;
    const sent = await sim.sendMessage(records);
    expect(sent.replies).toBe('<ACK>'.repeat(records.length + 1));
    // A reply of 200 tubes is a long session (a frame, an ACK, each in turn): 20 s on a loaded CI machine.
    return recordsOf(await nextSession(sim, 20_000));
  }

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('hq-multi', { analyzers: [CENTAUR, COBAS, GENEXPERT, GENERIC] }));
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    for (const a of [CENTAUR, COBAS, GENEXPERT, GENERIC]) analyzers[a.id] = await connectAnalyzer(gateway, a.id);
  });

  afterAll(async () => {
    for (const a of Object.values(analyzers)) a.socket.destroy();
    await lis?.close();
    await stop?.();
  });

  it('a rack of five tubes asked in one message gets the orders of all five, in Q order, in one session', async () => {
    await order('RK-O1', 'RK-1', ['TSH']);
    await order('RK-O2', 'RK-2', ['FT4']);
    await order('RK-O3', 'RK-3', ['VITD']);
    await order('RK-O4', 'RK-4', ['TSH', 'FT4']);
    await order('RK-O5', 'RK-5', ['VITD']);
    const q = (n: number, tube: string): string => `Q|${n}|^${tube}^0024^A|^${tube}^0024^A|ALL||||||||O`;
    const answer = await ask(CENTAUR.id, ['H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114082913', q(1, 'RK-3'), q(2, 'RK-1'), q(3, 'RK-5'), q(4, 'RK-2'), q(5, 'RK-4'), 'L|1|N']);
    expect(answer[0]).toMatch(/^\d?H\|/);
    expect(answer.filter((r) => /^\d?H\|/.test(r))).toHaveLength(1);
    // P/O per tube, in the order the analyzer asked, each with its own tests and O.26 = O\Q.
    expect(answer.filter((r) => r.startsWith('P|')).map((r) => r.split('|')[1])).toEqual(['1', '2', '3', '4', '5']);
    expect(orderRecords(answer.join('\r')).map((o) => [o[2], o[4], o[25]])).toEqual([
      ['RK-3', '^^^VitD', 'O\\Q'],
      ['RK-1', '^^^TSH3UL', 'O\\Q'],
      ['RK-5', '^^^VitD', 'O\\Q'],
      ['RK-2', '^^^FT4', 'O\\Q'],
      ['RK-4', '^^^TSH3UL\\^^^FT4', 'O\\Q'],
    ]);
    // One L, the last record: the request was processed (Centaur: F).
    expect(answer.filter((r) => /^\d?L\|/.test(r))).toEqual(['L|1|F']);
    expect(answer.at(-1)).toBe('L|1|F');
    // Nothing else follows: one reply session for the whole message.
    expect(await nextSession(analyzers[CENTAUR.id]!.sim, 1_000)).toBe('');
  });

  it('each Q keeps its own test list (Q.5); a tube named by two Qs is answered once, with the tests of both', async () => {
    await order('PQ-O1', 'PQ-1', ['TSH', 'FT4']);
    await order('PQ-O2', 'PQ-2', ['TSH', 'FT4']);
    const answer = await ask(CENTAUR.id, [
      'H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114083000',
      'Q|1|^PQ-1^0024^A|^PQ-1^0024^A|^^^TSH3UL||||||||O',
      'Q|2|^PQ-2^0025^A|^PQ-2^0025^A|ALL||||||||O',
      'Q|3|^PQ-1^0024^A|^PQ-1^0024^A|^^^FT4||||||||O',
      'Q|4|^PQ-2^0025^A|^PQ-2^0025^A|^^^FT4||||||||O',
      'L|1|N',
    ]);
    expect(orderRecords(answer.join('\r')).map((o) => [o[2], o[4]])).toEqual([
      ['PQ-1', '^^^TSH3UL\\^^^FT4'],
      ['PQ-2', '^^^TSH3UL\\^^^FT4'],
    ]);
    // Q.5 of the first Q alone restricts its tube: asked once more for TSH only, TSH only.
    const single = await ask(CENTAUR.id, [
      'H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114083010',
      'Q|1|^PQ-1^0024^A|^PQ-1^0024^A|^^^TSH3UL||||||||O',
      'Q|2|^PQ-2^0025^A|^PQ-2^0025^A|^^^FT4||||||||O',
      'L|1|N',
    ]);
    expect(orderRecords(single.join('\r')).map((o) => [o[2], o[4]])).toEqual([
      ['PQ-1', '^^^TSH3UL'],
      ['PQ-2', '^^^FT4'],
    ]);
  });

  it('cobas e411: every O echoes its own Q’s sequence, carrier and position; an unknown tube in the middle gets O.26 = Z; L|1|N', async () => {
    await order('CB-O1', 'CB-1', ['TSH', 'FT4']);
    await order('CB-O2', 'CB-2', ['TSH', 'FT4']);
    const answer = await ask(COBAS.id, [
      'H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1',
      'Q|1|^^CB-1^91^0^3^^S1^SC||ALL||||||||O',
      'Q|2|^^CB-404^92^0^4^^S1^SC||ALL||||||||O',
      'Q|3|^^CB-2^93^0^5^^S1^SC||^^^10||||||||O',
      'L|1|N',
    ]);
    expect(answer[0]).toMatch(/^\d?H\|\\\^&\|\|\|host\|\|\|\|\|cobas-e411\|TSDWN\^REPLY\|/);
    expect(orderRecords(answer.join('\r')).map((o) => [o[2], o[3], o[4], o[25]])).toEqual([
      ['CB-1', '91^0^3^^S1^SC', '^^^8\\^^^10', 'O'],
      ['CB-404', '92^0^4^^S1^SC', '', 'Z'],
      ['CB-2', '93^0^5^^S1^SC', '^^^10', 'O'],
    ]);
    expect(answer.at(-1)).toBe('L|1|N');
  });

  it('cobas e411 cancel (Q.13 = A): the cancel is not answered, the other Q is; a Q withdrawn by the cancel after it gets nothing', async () => {
    const answer = await ask(COBAS.id, ['H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1', 'Q|1|^^CB-1^91^0^3^^S1^SC||ALL||||||||A', 'Q|2|^^CB-2^93^0^5^^S1^SC||ALL||||||||O', 'L|1|N']);
    expect(orderRecords(answer.join('\r')).map((o) => [o[2], o[3]])).toEqual([['CB-2', '93^0^5^^S1^SC']]);
    // Q.13 = A cancels the last request (LIS2-A2 §11): here the Q right before it. Nothing left to answer.
    const { sim } = analyzers[COBAS.id]!;
    await sim.sendMessage(['H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1', 'Q|1|^^CB-1^91^0^3^^S1^SC||ALL||||||||O', 'Q|2|^^CB-1^91^0^3^^S1^SC||ALL||||||||A', 'L|1|N']);
    expect(await nextSession(sim, 1_500)).toBe('');
    // A cancel naming another tube refers to an earlier request: the tube asked for right before
    // it is still answered.
    const kept = await ask(COBAS.id, ['H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1', 'Q|1|^^CB-2^93^0^5^^S1^SC||ALL||||||||O', 'Q|2|^^CB-1^91^0^3^^S1^SC||ALL||||||||A', 'L|1|N']);
    expect(orderRecords(kept.join('\r')).map((o) => [o[2], o[3]])).toEqual([['CB-2', '93^0^5^^S1^SC']]);
  });

  it('GeneXpert: each Q read in the order layout; an ordered cartridge gets O.26 = Q, an unknown one O.26 = Y', async () => {
    await order('GXM-O1', 'GX-M1', ['MTBRIF-MTB']);
    const answer = await ask(GENEXPERT.id, [
      'H|@^\\|URM-MQ-01||GeneXpert PC^GeneXpert^6.2|||||LIS||P|1394-97|20260114115515',
      'Q|1|^GX-404||ALL||||||||O',
      'Q|2|^GX-M1||^^^MTB-RIF||||||||O',
      'L|1|N',
    ]);
    expect(orderRecords(answer.join('\r')).map((o) => [o[2], o[4], o[25]])).toEqual([
      ['GX-404', '', 'Y'],
      ['GX-M1', '^^^MTB-RIF', 'Q'],
    ]);
    expect(answer.at(-1)).toBe('L|1|N');
  });

  it('a range Q expands as before; a later Q naming a tube of the range does not answer it twice; Q.3 = ALL beside them is ignored', async () => {
    expect((await lis.send(ormMany('RG-O', [['RG-001', 'GLU'], ['RG-002', 'NA'], ['RG-003', 'K'], ['GN-9', 'CRP']]))).toString('latin1')).toContain('MSA|AA|RG-O');
    const answer = await ask(GENERIC.id, [
      'H|\\^&|||Analyzer|||||LIS||P|LIS2-A2',
      'Q|1|^RG-001|^RG-003|ALL||||||||O',
      'Q|2|ALL||ALL||||||||O',
      'Q|3|^GN-9||ALL||||||||O',
      'Q|4|^RG-002||ALL||||||||O',
      'L|1|N',
    ]);
    expect(orderRecords(answer.join('\r')).map((o) => [o[2], o[4]])).toEqual([
      ['RG-001', '^^^GLU'],
      ['RG-002', '^^^NA'],
      ['RG-003', '^^^K'],
      ['GN-9', '^^^CRP'],
    ]);
    expect(answer.at(-1)).toBe('L|1|F');
  });

  it('standard LIS2-A2, no tube of the message known: one H and L|1|I; one known: its order and L|1|F', async () => {
    const none = await ask(GENERIC.id, ['H|\\^&|||Analyzer|||||LIS||P|LIS2-A2', 'Q|1|^NONE-1||ALL||||||||O', 'Q|2|^NONE-2||ALL||||||||O', 'L|1|N']);
    expect(none).toHaveLength(2);
    expect(none[1]).toBe('L|1|I');
    const one = await ask(GENERIC.id, ['H|\\^&|||Analyzer|||||LIS||P|LIS2-A2|1', 'Q|1|^NONE-1||ALL||||||||O', 'Q|2|^GN-9||ALL||||||||O', 'L|1|N']);
    expect(orderRecords(one.join('\r')).map((o) => o[2])).toEqual(['GN-9']);
    expect(one.at(-1)).toBe('L|1|F');
  });

  it('at most 200 tubes per reply: tubes named in a Q are kept, a range fills what is left', async () => {
    const ids = Array.from({ length: 210 }, (_, i) => `CAP-${String(i + 1).padStart(4, '0')}`);
    expect((await lis.send(ormMany('CAP-O', ids.map((id) => [id, 'GLU'])))).toString('latin1')).toContain('MSA|AA|CAP-O');
    const answer = await ask(GENERIC.id, ['H|\\^&|||Analyzer|||||LIS||P|LIS2-A2|2', 'Q|1|^CAP-0001|^CAP-0210|ALL||||||||O', 'Q|2|^GN-9||ALL||||||||O', 'L|1|N']);
    const tubes = orderRecords(answer.join('\r')).map((o) => o[2]);
    expect(tubes).toHaveLength(200);
    // The named ends and the other Q's tube are answered; the range's accessions fill 197 places.
    expect(tubes).toEqual([...ids.slice(0, 198), 'CAP-0210', 'GN-9']);
    expect(answer.at(-1)).toBe('L|1|F');
  });

  it('the stored query message finds every tube of the message; a single-Q message reads as before', async () => {
    // The rack's query (first test) is found by its last tube too.
    const found = await gateway.store!.listMessages({ q: 'RK-4', limit: 50 });
    expect(found.filter((m) => m.kind === 'astm' && m.messageType === 'ASTM^QUERY')).toHaveLength(1);
    const ctx = { analyzerId: 'a', endpoint: 'a', profile: loadProfile('siemens-advia-centaur-xp'), receivedAt: '2026-01-14T09:00:00.000Z' };
    const single = normalizeAstmMessage('H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114082913\rQ|1|^K403911^0024^A|^K403911^0024^A|ALL||||||||O\rL|1|N', ctx);
    expect(Object.keys(single.hostQuery!).sort()).toEqual(['all', 'cancel', 'delimiters', 'header', 'sequence', 'specimens', 'statusCode', 'tests']);
    expect(single.warnings).toEqual([]);
    const multi = normalizeAstmMessage('H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114082913\rQ|1|^K1^0024^A||ALL||||||||O\rQ|2|^K2^0025^A||^^^FT4||||||||A\rL|1|N', ctx);
    // The first Q stays where it was; every Q is listed in `requests`, in order.
    expect(multi.hostQuery?.specimens.map((s) => s.specimenId)).toEqual(['K1']);
    expect(multi.hostQuery?.requests?.map((r) => [r.sequence, r.specimens.map((s) => s.specimenId), r.tests, r.statusCode, r.cancel])).toEqual([
      ['1', ['K1'], 'ALL', 'O', false],
      ['2', ['K2'], ['FT4'], 'A', true],
    ]);
    expect(multi.searchTerms).toEqual(expect.arrayContaining(['K1', 'K2']));
    expect(multi.warnings).toEqual([]);
  });
});
