import { describe, expect, it } from 'vitest';
import { localTime, settleHoldWords } from '../../gateway/src/status/status-model.ts';

/**
 * The settle hold's words on the status page, the tray's status window and `lab-gateway status`
 * (settleHold.message, dc0c165) for one held delivery: the common case after a power cut with one
 * result on its way to Odoo. Before, the words spoke of it as of several ("… waits behind them.
 * They go on their own then"), and a technician reading "them" looked for other deliveries the
 * page did not count. Now one delivery is "it"; several stay "them".
 */
describe('settle hold words, one delivery or several', () => {
  const now = Date.UTC(2026, 11, 8, 10, 0, 0);
  const until = now + 180_000;
  const at = localTime(until, now, true);

  it('one delivery, one event behind it', () => {
    expect(settleHoldWords({ events: 1, partitions: 1, behind: 1, until }, now)).toBe(
      `1 delivery waits until ${at} to check Odoo for writes the gateway may have left running when it stopped (a power cut, a kill): ` +
        'looked up sooner, a write Odoo still runs is not found and is sent twice. 1 more event of the same order waits behind it. ' +
        'It goes on its own then; restarting the gateway does not make it go sooner.',
    );
  });

  it('one delivery, nothing behind it', () => {
    expect(settleHoldWords({ events: 1, partitions: 1, behind: 0, until }, now)).toMatch(/is sent twice\. It goes on its own then; restarting the gateway does not make it go sooner\.$/);
  });

  it('several deliveries keep the plural', () => {
    expect(settleHoldWords({ events: 3, partitions: 2, behind: 2, until }, now)).toMatch(
      /^3 deliveries wait until .* 2 more events of the same orders wait behind them\. They go on their own then; restarting the gateway does not make them go sooner\.$/,
    );
  });
});
