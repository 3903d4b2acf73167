import { describe, expect, it } from 'vitest';
import { CallLimit } from '../../gateway/src/relay/call-limit.ts';
import type { OdooApi } from '../../gateway/src/relay/odoo/odoo-client.ts';

/** The shared bound on Odoo requests in flight (relay.concurrency). */
function fakeOdoo(): { odoo: OdooApi; pending: Array<{ method: string; settle: (ok: boolean) => void }>; max: () => number } {
  const pending: Array<{ method: string; settle: (ok: boolean) => void }> = [];
  let open = 0;
  let max = 0;
  const odoo: OdooApi = {
    serverVersion: 17,
    fields: undefined as never, // not used by CallLimit.call
    call<T>(_model: string, method: string): Promise<T> {
      open++;
      max = Math.max(max, open);
      return new Promise<T>((resolve, reject) => {
        pending.push({
          method,
          settle: (ok) => {
            open--;
            if (ok) resolve(method as T);
            else reject(new Error(`${method} failed`));
          },
        });
      });
    },
  };
  return { odoo, pending, max: () => max };
}
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('CallLimit', () => {
  it('never lets more than max calls through, hands permits on in FIFO order, and frees a permit when a call fails', async () => {
    const f = fakeOdoo();
    const limit = new CallLimit(f.odoo, 2);
    const calls = ['a', 'b', 'c', 'd', 'e'].map((m) => limit.call('sale.order', m).catch((e: Error) => e.message));
    await tick();
    expect(f.pending.map((p) => p.method)).toEqual(['a', 'b']);
    expect(limit.inFlight).toBe(2);
    f.pending[1]!.settle(false);
    await tick();
    expect(f.pending.map((p) => p.method)).toEqual(['a', 'b', 'c']);
    f.pending[0]!.settle(true);
    await tick();
    expect(f.pending.map((p) => p.method)).toEqual(['a', 'b', 'c', 'd']);
    f.pending[2]!.settle(true);
    f.pending[3]!.settle(true);
    await tick();
    f.pending[4]!.settle(true);
    expect(await Promise.all(calls)).toEqual(['a', 'b failed', 'c', 'd', 'e']);
    expect(f.max()).toBe(2);
    expect(limit.inFlight).toBe(0);
  });

  it('a bound below one is one', async () => {
    const f = fakeOdoo();
    const limit = new CallLimit(f.odoo, 0);
    void limit.call('x', 'a');
    void limit.call('x', 'b');
    await tick();
    expect(f.pending).toHaveLength(1);
  });
});
