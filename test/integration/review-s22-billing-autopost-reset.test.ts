import { cpSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { billingRetention, invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { Relay } from '../../gateway/src/relay/relay.ts';
import { dueDelayFor } from '../../gateway/src/relay/sync-modes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { billed, invoices, normalize, orm, oru } from '../fixtures/relay/billing-rig.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { odooConfig, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

/**
 * A site that lets the gateway post its invoices (relay.autoConfirm) meets an invoice it finds in
 * Odoo as a draft that was posted before: finance reset it to draft to correct it (it keeps its
 * number and `posted_before`). The gateway finds its invoice again whenever it delivers an
 * eligibility a second time (a restored backup of its data directory, README "A restored backup").
 * Before, it posted whatever draft it found: finance's correction, half done, was posted under the
 * invoice's number. Now only a draft never posted is the gateway's to post; the one finance reset
 * is left to finance. Real LevelDB copied as IT copies it, the relay and the Odoo emulator over HTTP.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const config = relayConfig({ invoicing: true, autoConfirm: true, maxAttempts: 5 });
const openStore = (dir: string): Promise<EventStore> =>
  EventStore.open({ dataDir: dir, dueDelayMs: dueDelayFor(config), backoff: { initialMs: 10, maxMs: 100 }, pruneIntervalMs: 0, minFreeBytes: 0, deriver: invoiceEligibility, retentionHold: billingRetention });

/** One gateway on `dir`, delivering until nothing of it is queued; its dead letters. */
async function deliverAll(dir: string, url: string): Promise<string[]> {
  const store = await openStore(dir);
  const telemetry = new Telemetry();
  const oc = odooConfig({ url });
  const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: oc.timeoutMs, telemetry, log: silentLogger, keyExpiryWarnDays: oc.keyExpiryWarnDays });
  const relay = new Relay({ store, odoo: client, config, odooConfig: oc, telemetry, log: silentLogger, idlePollMs: 20, linkBackoff: { initialMs: 20, maxMs: 200 }, watchStock: false, ambiguousSettleMs: 50 });
  try {
    await relay.start();
    await waitFor(() => {
      const s = store.stats();
      return s.pending + s.inFlight + s.retrying === 0;
    }, 20_000, 20);
    await store.flush();
    return (await store.listEvents({ state: 'dead' })).map((e) => `${e.event.type}: ${e.deadReason ?? ''}`);
  } finally {
    await relay.stop(5000);
    await store.close();
  }
}

async function receive(dir: string, texts: string[]): Promise<void> {
  const store = await openStore(dir);
  try {
    for (const text of texts) {
      const { controlId, drafts } = normalize(text);
      const { ack: _ack, ...message } = inboundMessage(controlId);
      await store.commit(message, drafts);
    }
  } finally {
    await store.close();
  }
}

describe.each([16, 17, 19] as const)('relay.autoConfirm and an invoice finance reset to draft (Odoo %s)', (version) => {
  it('the gateway, finding it again, does not post finance\'s correction', async () => {
    const { emu, url } = await startEmulator(version);
    cleanups.push(() => emu.close());
    const { dir: old, cleanup: c1 } = tempDir('autopost-reset-old-');
    const { dir: restored, cleanup: c2 } = tempDir('autopost-reset-new-');
    cleanups.push(c1, c2);

    await receive(old, [orm('AR-1', ['GLU', 'CRP']), oru('AR-1', 'GLU'), oru('AR-1', 'CRP')]);
    cpSync(old, restored, { recursive: true });
    expect(await deliverAll(old, url)).toEqual([]);
    const [inv] = invoices(emu, 'AR-1');
    expect(inv!['state']).toBe('posted');

    // Finance resets the invoice to draft to correct it, and is not done yet.
    emu.call('account.move', 'button_draft', [[inv!.id]]);

    expect(await deliverAll(restored, url)).toEqual([]);
    const after = invoices(emu, 'AR-1');
    expect(after.map((m) => [m['name'], m['state']]), 'left as finance has it').toEqual([[inv!['name'], 'draft']]);
    expect(billed(emu, 'AR-1')).toEqual(['CRP', 'GLU']);
  });
});
