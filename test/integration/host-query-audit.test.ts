/**
 * Host query audit (download on demand): an analyzer asks the gateway for a specimen's orders and
 * the gateway answers in its own E1381 session. Real gateway (real LevelDB in a temp dir), the LIS
 * order sent over real MLLP, the analyzer simulated over a real TCP socket (test/fixtures).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextSession, orderRecords, orm, startHostQueryRig, type HostQueryRig } from '../fixtures/order-download.ts';

const GENEXPERT = { id: 'gx-1', profile: 'cepheid-genexpert', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

describe('GeneXpert host query naming the test it wants (Q.5)', () => {
  let lis: HostQueryRig['lis'];
  let analyzer: HostQueryRig['analyzer'];
  let close: HostQueryRig['close'];

  beforeAll(async () => {
    ({ lis, analyzer, close } = await startHostQueryRig('hq-gx', [GENEXPERT]));
  });

  afterAll(() => close?.());

  /**
   * What the user sees: the LIS ordered Xpert MTB/RIF Ultra (MTBRIF-MTB) for tube TB-Q5-1. The
   * technician loads the cartridge; the GeneXpert asks the host for that assay
   * (`Q|1|^TB-Q5-1||^^^MTB-RIF||||||||O`, the universal test id in the order layout, the same
   * `^^^MTB-RIF` the GeneXpert puts in O.5) and the gateway answers "no order for this specimen"
   * (an O record without tests, O.26 = Y). The test is not run from the host order; the tech has to
   * key it in by hand, or the tube waits.
   *
   * Promise broken: protocols.md §2.3 (Q.5 = universal test ID, the same field layout as O.5) and
   * §2.4 (the host answers with the ordered tests); the profile's own `fields.testId.orderCodeComponent`
   * ("Component of O.5 holding the code in orders, when it differs from results (GeneXpert: 4)",
   * profiles/types.ts:161) — the answer's O.5 is written with it (astm/host-query.ts:117) but the
   * query's Q.5 is read with it ignored.
   *
   * Cause: astm/normalize.ts:531-535 reads each Q.5 repeat with `analyzerTestCode`, which takes
   * `codeComponent` (2: the GeneXpert *result* layout `^MTB-RIF^^Xpert`, normalize.ts:168), so
   * `^^^MTB-RIF` gives '' and is filtered out; `tests` becomes [] (not 'ALL'), and
   * `analyzerTests(…, requested = [])` (host-query.ts:159) drops every ordered test.
   *
   * Fix: read Q.5 with the order layout (`orderCodeComponent ?? codeComponent`, no result
   * qualifiers), e.g. an `analyzerOrderCode(rep, profile)` helper used by #hostQuery; and when Q.5
   * had repeats but none yields a code, treat it as ALL (with a warning) rather than as "nothing".
   */
  it('answers the ordered assay when Q.5 names it in the order layout ^^^MTB-RIF', async () => {
    expect((await lis.send(orm('GXQ5-1', 'TB-Q5-1', ['MTBRIF-MTB']))).toString('latin1')).toContain('MSA|AA|GXQ5-1');
    // Control: the same tube asked for with Q.5 = ALL gets the assay.
    await analyzer.sim.sendMessage(['H|@^\\|URM-Q5-00||GeneXpert PC^GeneXpert^6.2|||||LIS||P|1394-97|20260114115500', 'Q|1|^TB-Q5-1||ALL||||||||O', 'L|1|N']);
    expect(orderRecords(await nextSession(analyzer.sim, 5_000)).map((o) => o[4])).toEqual(['^^^MTB-RIF']);
    const sent = await analyzer.sim.sendMessage([
      'H|@^\\|URM-Q5-01||GeneXpert PC^GeneXpert^6.2|||||LIS||P|1394-97|20260114115515',
      'Q|1|^TB-Q5-1||^^^MTB-RIF||||||||O',
      'L|1|N',
    ]);
    expect(sent.replies).toBe('<ACK><ACK><ACK><ACK>');
    const answer = await nextSession(analyzer.sim, 5_000);
    expect(answer).toMatch(/^\d?H\|/);
    const orders = orderRecords(answer);
    expect(orders).toHaveLength(1);
    // O.5 = ^^^MTB-RIF (the order layout), O.26 = Q (an answer to the query), not Y (no order).
    expect(orders[0]![4]).toBe('^^^MTB-RIF');
    expect(orders[0]![25]).toBe('Q');
  });

  it('answers every ordered test when Q.5 says ^^^ALL in the order layout, or names no code the profile can read', async () => {
    expect((await lis.send(orm('GXQ5-2', 'TB-Q5-2', ['MTBRIF-MTB']))).toString('latin1')).toContain('MSA|AA|GXQ5-2');
    for (const [n, q5] of [['02', '^^^ALL'], ['03', '^^^']] as const) {
      await analyzer.sim.sendMessage([`H|@^\\|URM-Q5-${n}||GeneXpert PC^GeneXpert^6.2|||||LIS||P|1394-97|20260114115530`, `Q|1|^TB-Q5-2||${q5}||||||||O`, 'L|1|N']);
      const orders = orderRecords(await nextSession(analyzer.sim, 5_000));
      expect(orders.map((o) => [o[4], o[25]]), `Q.5 = ${q5}`).toEqual([['^^^MTB-RIF', 'Q']]);
    }
  });
});
