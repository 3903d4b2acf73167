/**
 * An analyzer that both asks for its tubes (host query) and gets orders pushed (pushOrders), the
 * label of a tube unreadable and its barcode typed at the analyzer in lower case (`acc-tq-1` for
 * ACC-TQ-1, a LIS numbering in upper case: the case fallback answers it, e56fcd0/2213e3d). The
 * order waits in the outbox (its download refused), the analyzer asks for the typed barcode and
 * takes the answer: it holds the test under `acc-tq-1`. Then the LIS cancels the test. Real
 * gateway (real LevelDB in a temp dir), the LIS over real MLLP, the analyzer simulated over a real
 * TCP socket.
 */
import { describe, expect, it } from 'vitest';
import { msa, nextSession, orderLines, orm, refuseSession, useHostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

describe('a test answered to a barcode typed in lower case, then cancelled by the LIS', () => {
  const rig = useHostQueryRig('s23b-case-download-cancel', [CHEM]);

  it('is cancelled under the barcode the analyzer holds it under', { timeout: 60_000 }, async () => {
    const { sim } = rig.analyzer;
    expect(msa(await rig.lis.send(orm('TQ-1', 'ACC-TQ-1', ['ALT', 'GLU'])))).toBe('MSA|AA|TQ-1');
    await refuseSession(sim);
    await sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', 'Q|1|^acc-tq-1||ALL||||||||O', 'L|1|N']);
    const answer = orderLines(await nextSession(sim, 40_000));
    // The answer echoes the barcode as typed: the analyzer holds ALT and GLU under acc-tq-1.
    expect(answer.map(([specimen]) => specimen)).toEqual(['acc-tq-1']);
    expect(answer[0]![1]).toContain('^^^ALT');
    expect(msa(await rig.lis.send(orm('TQ-2', 'ACC-TQ-1', ['ALT'], 'CA')))).toBe('MSA|AA|TQ-2');
    // Before: the cancel went out under ACC-TQ-1, a sample the analyzer does not hold; it ran the
    // cancelled ALT on acc-tq-1.
    expect(orderLines(await nextSession(sim, 20_000))).toEqual([['acc-tq-1', '^^^ALT', 'C']]);
  });
});

