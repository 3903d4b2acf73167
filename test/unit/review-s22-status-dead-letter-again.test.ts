/**
 * DEAD_LETTERS' words after an administrator replays a dead letter and Odoo refuses it again, for
 * another reason, within one poll of the model: the count of dead letters is the same before and
 * after. The status model on a real store in a temp dir, polled by hand as its 1 s timer does; the
 * relay's part (store.complete, then its `relay.outcome` telemetry) done as the relay does it.
 *
 * Before: the oldest dead letter was read again only when the count changed, and a replay that
 * failed again before the next poll left it at 1: the tray and the page kept the old reason ("no
 * Odoo counterpart") after IT had mapped the product and Odoo now refused the line for another
 * one, and IT looked for a mapping that was done.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig, makeDeadLetter, openStore, tempDir, waitFor } from '../fixtures/status/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a dead letter replayed and refused again before the next poll', () => {
  it('shows the reason of its new refusal', async () => {
    const t = tempDir('review-s22-dead-again-');
    cleanups.push(t.cleanup);
    const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-dead' });
    const store = await openStore(config.gateway.dataDir);
    cleanups.push(() => store.close());
    const telemetry = new Telemetry();
    const m = new StatusModel({
      config,
      store,
      telemetry,
      version: 't',
      startedAt: new Date().toISOString(),
      pollIntervalMs: 3_600_000, // polled by the test
      diskIntervalMs: 3_600_000,
      readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }),
    });
    await m.start();
    cleanups.push(() => m.stop());
    const deadWords = (): string | undefined => m.toApiStatus().healthReasons.find((r) => r.code === 'DEAD_LETTERS')?.message;

    const { eventId } = await makeDeadLetter(store, 'DL-9', 'product GLU has no Odoo counterpart');
    await waitFor(() => (m.poll(), /no Odoo counterpart/.test(deadWords() ?? '') || undefined), 'the first refusal named');

    // IT maps the product; the administrator replays; Odoo refuses the line again, for another reason.
    await store.replay(eventId, 'token:admin', 'GLU mapped');
    const again = 'Odoo refused the line: the price list of the lab has no price for GLU';
    for (let i = 0; ; i++) {
      const lease = (await store.lease({ limit: 100 })).find((l) => l.events.some((e) => e.event.id === eventId));
      if (lease) {
        await store.complete(lease, [{ eventId, outcome: 'dead', reason: again }]);
        telemetry.emit('relay.outcome', { eventId, eventType: 'result.validated', outcome: 'dead', latencyMs: 5, error: again });
        break;
      }
      if (i > 100) throw new Error('could not lease the replayed event');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(store.stats().deadLettered).toBe(1);

    // The model's next poll: the same count of dead letters, the new reason.
    const words = await waitFor(() => (m.poll(), /no price for GLU/.test(deadWords() ?? '') ? deadWords() : undefined), 'the new refusal named', 3_000).catch(() => deadWords());
    expect(words).toBe("1 dead letter (result.validated of ACC-DL-9: Odoo refused the line: the price list of the lab has no price for GLU) waiting for an administrator's decision (replay or discard, on the status page's Dead letters tab)");
  });
});
