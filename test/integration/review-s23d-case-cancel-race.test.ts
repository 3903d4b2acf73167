/**
 * An analyzer with pushOrders holds ALT under the tube's label (ACC-TC-1, downloaded). The label
 * will not scan on the rack: the technician types acc-tc-1 and the analyzer asks for it. While
 * the answer (ALT and GLU under acc-tc-1, the case fallback) waits for the analyzer to take the
 * line, the LIS cancels ALT: the outbox reads the cancel then, when the analyzer holds ALT under
 * ACC-TC-1 only, and the cancel goes on the line after the answer. The analyzer now holds ALT
 * under acc-tc-1 as well (08497f7 records it, alsoUnder), but the cancel on the line named
 * ACC-TC-1 alone and, once it was taken, the test counted as cancelled everywhere: nothing went
 * under acc-tc-1, and the tube on the rack ran the cancelled ALT. The cancel must follow under
 * the barcode the answer gave it, once.
 *
 * Real gateway (real LevelDB in a temp dir), the LIS over real MLLP, the analyzer simulated over
 * a real TCP socket.
 */
import { describe, expect, it } from 'vitest';
import { ACK, ENQ, EOT, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { msa, nextSession, orderLines, orm, useHostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

const query = (barcode: string): string[] => ['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', `Q|1|^${barcode}||ALL||||||||O`, 'L|1|N'];

describe('a cancel the outbox read before the analyzer took a query answer under the typed barcode', () => {
  const rig = useHostQueryRig('s23d-case-cancel-race', [CHEM]);

  it('goes under the typed barcode too, once', { timeout: 90_000 }, async () => {
    const { sim } = rig.analyzer;
    const { lis } = rig;
    expect(msa(await lis.send(orm('TC-1', 'ACC-TC-1', ['ALT', 'GLU'])))).toBe('MSA|AA|TC-1');
    expect(orderLines(await nextSession(sim, 20_000)).map(([specimen]) => specimen)).toEqual(['ACC-TC-1']);
    // The typed barcode asked for; the answer waits for the analyzer to take the line while the
    // LIS cancels ALT (the outbox reads the cancel meanwhile).
    await sim.sendMessage(query('acc-tc-1'));
    // The answer is built: the gateway asks for the line (ENQ). The analyzer does not answer yet.
    expect(await sim.nextByte(20_000)).toBe(ENQ);
    expect(msa(await lis.send(orm('TC-2', 'ACC-TC-1', ['ALT'], 'CA')))).toBe('MSA|AA|TC-2');
    await new Promise((r) => setTimeout(r, 500));
    // The analyzer takes the answer.
    sim.write([ACK]);
    let answer = '';
    for (;;) {
      const b = await sim.nextByte(5_000);
      if (b === EOT) break;
      if (b !== STX) continue;
      const rest: number[] = [];
      for (let c = await sim.nextByte(5_000); c !== 0x0a; c = await sim.nextByte(5_000)) rest.push(c);
      answer += Buffer.from(rest).subarray(1, rest.length - 4).toString('latin1');
      sim.write([ACK]);
    }
    const sessions: Array<[string, string, string]> = [...orderLines(answer)];
    for (let i = 0; i < 5; i++) {
      const got = orderLines(await nextSession(sim, i === 0 ? 40_000 : 5_000));
      if (got.length === 0) break;
      sessions.push(...got);
    }
    // What the analyzer took to run, and the cancels it took, by barcode.
    const held = new Set(sessions.filter(([, tests, action]) => tests.includes('^^^ALT') && action !== 'C').map(([specimen]) => specimen));
    const cancelledUnder = sessions.filter(([, tests, action]) => tests.includes('^^^ALT') && action === 'C').map(([specimen]) => specimen);
    expect(held.has('acc-tc-1'), 'the answer gave ALT under the typed barcode (the cancel came after it was built)').toBe(true);
    // Before: the cancel went under ACC-TC-1 alone, and the tube typed acc-tc-1 ran the cancelled ALT.
    expect([...new Set(cancelledUnder)].sort()).toEqual(['ACC-TC-1', 'acc-tc-1']);
    expect(cancelledUnder.length, 'each barcode gets the cancel once').toBe(2);
  });
});
