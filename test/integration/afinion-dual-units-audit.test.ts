import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer } from '../fixtures/order-download.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * An Abbott Afinion 2 set to report HbA1c in both units, NGSP % and IFCC mmol/mol, with the
 * estimated average glucose (eAG) beside them: one cartridge, three results of one measurement,
 * all with the same completion time. A real Afinion 2 so set was captured sending exactly these
 * results over HL7 (OBX HbA1c 5.1 %, HbA1c 32 mmol/mol, eAG 5.5 mmol/L, one timestamp); over ASTM
 * each result is an R record (the layout of the corpus capture). The gateway over real TCP, a real
 * LevelDB store.
 */

const AFINION = { id: 'afinion-1', profile: 'abbott-afinion-2', tcp: { listen: { host: '127.0.0.1', port: 0 } } };
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

/** The patient's HbA1c run as the Afinion 2 sends it; `header` is H.14, new in every session. */
function dualUnitRun(header: string): string[] {
  return [
    `H|\\^&|||Afinion 2 Analyzer^^AF20095065|||||||P|1|${header}`,
    'P|1||A2601147|||||U',
    'O|1||7|^^^HbA1c|||||||N||||^O||||||||^10233356||F',
    'R|1|^^^HbA1c|5.1|%||||F||op7||20260114091503',
    'R|2|^^^HbA1c|32|mmol/mol||||F||op7||20260114091503',
    'R|3|^^^eAG|5.5|mmol/L||||F||op7||20260114091503',
    'L|1|N',
  ];
}

async function started(): Promise<{ gateway: Gateway; sim: AnalyzerSim }> {
  const { gateway, stop } = await startTestGateway('afinion-units', { analyzers: [AFINION] });
  closers.push(stop);
  const { sim, socket } = await connectAnalyzer(gateway, AFINION.id);
  closers.push(async () => void socket.destroy());
  return { gateway, sim };
}

const events = async (gateway: Gateway): Promise<StoredEvent[]> => gateway.store!.listEvents({ limit: 100 });
const completed = (all: StoredEvent[]) =>
  all.flatMap((e) => (e.event.type === 'test.completed' ? [[e.event.data.analyzerTestCode, e.event.data.testCode, e.event.data.value, e.event.data.units]] : []));

describe('Afinion 2 reporting HbA1c in % and mmol/mol', () => {
  /**
   * What the lab saw: its Afinion reports HbA1c in both units (the IFCC value is what its
   * diabetes clinic reads). The analyzer got its ACK, but the gateway kept only the % result:
   * the mmol/mol result had the same idempotency key (analyzer, specimen, code HbA1c, completion
   * time) and the store skipped it as a resend of the first. And every run was flagged
   * "analyzer code eAG has no mapping" (a warning, and the message listed under unmapped:eAG),
   * telling the operator to fix a mapping for a result the Afinion 2 always adds. The promises:
   * DESIGN.md §2, no acknowledged message is lost and equal keys only for the same business fact
   * (two results are two facts); the cartridge is still one (one consumable.used), and a resend
   * of the run adds nothing.
   */
  it('both HbA1c results and the eAG are kept, the cartridge counted once, and a resend adds nothing', async () => {
    const { gateway, sim } = await started();
    const first = await sim.sendMessage(dualUnitRun('20260114091612'));
    expect(first.replies).not.toContain('NAK');
    await waitFor(async () => (await events(gateway)).some((e) => e.event.type === 'consumable.used'), 10_000);

    const stored = await events(gateway);
    expect(completed(stored)).toEqual([
      ['HbA1c', 'HBA1C', '5.1', '%'],
      ['HbA1c', 'HBA1C', '32', 'mmol/mol'],
      ['eAG', 'EAG', '5.5', 'mmol/L'],
    ]);
    expect(stored.filter((e) => e.event.type === 'consumable.used').map((e) => e.event.data)).toMatchObject([{ productCode: 'ABT-AFINION-HBA1C-CART', quantity: 1, runType: 'patient' }]);
    // The key of the first result is what it always was (stored results keep theirs).
    expect(stored.find((e) => e.event.type === 'test.completed')?.event.idempotencyKey).toBe('astm|afinion-1|result|A2601147|HbA1c|20260114091503');
    const [message] = await gateway.store!.listMessages({ q: 'A2601147', limit: 5 });
    expect(message?.searchTerms ?? []).not.toContain('unmapped:eAG');

    // The Afinion resends the run in a new session (it did not see the ACK): nothing new.
    const again = await sim.sendMessage(dualUnitRun('20260114092001'));
    expect(again.replies).not.toContain('NAK');
    await waitFor(async () => (await gateway.store!.listMessages({ q: 'A2601147', limit: 5 })).length === 2, 10_000);
    expect((await events(gateway)).map((e) => e.event.idempotencyKey)).toEqual(stored.map((e) => e.event.idempotencyKey));
  });
});
