/**
 * An analyzer that both asks for its tubes (host query) and gets orders pushed (pushOrders), a LIS
 * numbering in upper case, and a tube whose label would not scan at one moment: the analyzer holds
 * the order's tests under two spellings of one barcode, the label's (ACC-…, downloaded, or asked
 * for once the label scanned) and the one typed at the analyzer in lower case (acc-…, answered by
 * the case fallback, e56fcd0/2213e3d). The LIS then cancels a test: the analyzer must get the
 * cancel under every barcode it holds the test under, or it runs the cancelled test on the one
 * left. Real gateway (real LevelDB in a temp dir), the LIS over real MLLP, the analyzer simulated
 * over a real TCP socket.
 */
import { describe, expect, it } from 'vitest';
import { msa, nextSession, orderLines, orm, refuseSession, useHostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

const query = (barcode: string): string[] => ['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', `Q|1|^${barcode}||ALL||||||||O`, 'L|1|N'];

/** The cancels (O.12 = C) of a session, as [specimen, tests], sorted by specimen. */
const cancels = (text: string): Array<[string, string]> =>
  orderLines(text)
    .filter(([, , action]) => action === 'C')
    .map(([specimen, tests]): [string, string] => [specimen, tests])
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));

describe('a test the analyzer holds under two spellings of its barcode, then cancelled by the LIS', () => {
  const rig = useHostQueryRig('s23c-case-download-two', [CHEM]);

  it('downloaded under the label, then asked for as typed: the cancel goes under both', { timeout: 60_000 }, async () => {
    const { sim } = rig.analyzer;
    expect(msa(await rig.lis.send(orm('TW-1', 'ACC-TW-1', ['ALT', 'GLU'])))).toBe('MSA|AA|TW-1');
    // The download: the analyzer takes ALT and GLU under ACC-TW-1.
    expect(orderLines(await nextSession(sim, 20_000)).map(([specimen]) => specimen)).toEqual(['ACC-TW-1']);
    // The label does not scan on the rack: the technician types acc-tw-1, the analyzer asks.
    await sim.sendMessage(query('acc-tw-1'));
    const answer = orderLines(await nextSession(sim, 20_000));
    expect(answer.map(([specimen]) => specimen)).toEqual(['acc-tw-1']);
    expect(answer[0]![1]).toContain('^^^ALT');
    expect(msa(await rig.lis.send(orm('TW-2', 'ACC-TW-1', ['ALT'], 'CA')))).toBe('MSA|AA|TW-2');
    // Before: the cancel went out under ACC-TW-1 alone; the tube on the rack, acc-tw-1, ran the
    // cancelled ALT.
    expect(cancels(await nextSession(sim, 20_000))).toEqual([
      ['ACC-TW-1', '^^^ALT'],
      ['acc-tw-1', '^^^ALT'],
    ]);
    // Sent once: nothing more goes out for it.
    expect(await nextSession(sim, 3_000)).toBe('');
  });

  it('asked for as typed, then as the label once it scanned: the cancel goes under both', { timeout: 60_000 }, async () => {
    const { sim } = rig.analyzer;
    expect(msa(await rig.lis.send(orm('TW-3', 'ACC-TW-3', ['ALT', 'GLU'])))).toBe('MSA|AA|TW-3');
    // The analyzer is busy: the download waits in the outbox.
    await refuseSession(sim);
    await sim.sendMessage(query('acc-tw-3'));
    expect(orderLines(await nextSession(sim, 40_000)).map(([specimen]) => specimen)).toEqual(['acc-tw-3']);
    // The tube relabelled and loaded again: its label scans.
    await sim.sendMessage(query('ACC-TW-3'));
    expect(orderLines(await nextSession(sim, 20_000)).map(([specimen]) => specimen)).toEqual(['ACC-TW-3']);
    expect(msa(await rig.lis.send(orm('TW-4', 'ACC-TW-3', ['ALT'], 'CA')))).toBe('MSA|AA|TW-4');
    // Before (41af7d6): under acc-tw-3 alone, the first answer's spelling; the tube under its
    // label ran the cancelled ALT.
    expect(cancels(await nextSession(sim, 20_000))).toEqual([
      ['ACC-TW-3', '^^^ALT'],
      ['acc-tw-3', '^^^ALT'],
    ]);
  });
});

describe('a download the outbox read before the analyzer took a query answer under the typed barcode, sent after it', () => {
  const rig = useHostQueryRig('s23c-case-download-race', [CHEM]);

  it('the cancel goes under both barcodes', { timeout: 90_000 }, async () => {
    const { sim } = rig.analyzer;
    expect(msa(await rig.lis.send(orm('TR-1', 'ACC-TR-1', ['ALT', 'GLU'])))).toBe('MSA|AA|TR-1');
    await refuseSession(sim);
    // The analyzer asks for the typed barcode; while its answer waits for the analyzer to take
    // the line, another order makes the outbox read ACC-TR-1 (ALT and GLU still to send).
    await sim.sendMessage(query('acc-tr-1'));
    expect(msa(await rig.lis.send(orm('TR-2', 'ACC-TR-2', ['GLU'])))).toBe('MSA|AA|TR-2');
    await new Promise((r) => setTimeout(r, 500));
    const sessions: Array<[string, string, string]> = [];
    for (let i = 0; i < 4; i++) {
      const got = orderLines(await nextSession(sim, i === 0 ? 40_000 : 5_000));
      if (got.length === 0) break;
      sessions.push(...got);
      if (got.some(([specimen]) => specimen === 'ACC-TR-2')) break;
    }
    expect(sessions.some(([specimen]) => specimen === 'acc-tr-1')).toBe(true);
    expect(msa(await rig.lis.send(orm('TR-3', 'ACC-TR-1', ['ALT'], 'CA')))).toBe('MSA|AA|TR-3');
    const cancelled = cancels(await nextSession(sim, 20_000));
    // Every barcode the analyzer took ALT under gets the cancel. With the outbox's read before the
    // answer was taken (the half second above: the answer waits for the analyzer to take the
    // line), the download sent after the answer gives ALT to ACC-TR-1 as well, and the analyzer
    // holds it under both. Before: the cancel went under acc-tr-1 alone (the answer made it ALT's
    // tube), and ACC-TR-1 ran the cancelled ALT.
    const holders = [...new Set(sessions.filter(([specimen, tests, action]) => specimen.toUpperCase() === 'ACC-TR-1' && tests.includes('^^^ALT') && action !== 'C').map(([specimen]) => specimen))].sort();
    expect(holders).toContain('acc-tr-1');
    expect(cancelled.map(([specimen]) => specimen).sort()).toEqual(holders);
  });
});
