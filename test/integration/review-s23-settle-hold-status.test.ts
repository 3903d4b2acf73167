import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { useChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { hl7Message, leaveOpenLeases, makeConfig, numberedValidatedEvent, requestJson, tempDir, waitFor } from '../fixtures/status/harness.ts';

/**
 * After a power cut (or a kill -9) the deliveries the gateway was sending wait the settle time
 * from the restart (AMBIGUOUS_SETTLE_MS, 180 s; 11bb844) before the relay looks them up in Odoo:
 * a write the stopped process had sent may still be running there, and a look-up before it lands
 * finds nothing and sends it again. The later events of the same orders wait behind them.
 *
 * What the technician saw: the status page (and the tray's status window, the same page) read
 * "Retrying 3" and nothing else, for three minutes after the restart, with Odoo answering: IT
 * restarted the gateway again, or replayed the orders from the LIS by hand. Now `/api/status`
 * carries `settleHold` (additive) and the page's "Queue to Odoo" card says how many deliveries
 * wait, until when, and why; a restart within the hold keeps saying it (the events keep the first
 * restart's due time), and it goes once the time has passed.
 *
 * The real store in a temp dir, left with open leases as a power cut leaves it, the real status
 * server on it, the page in real Chromium. Settle time 12 s here (180 s in production).
 */
const SETTLE_MS = 12_000;

const event = numberedValidatedEvent;

interface Hold {
  events: number;
  behind: number;
  until: string;
  message: string;
}

/** "HH:MM:SS (UTC±hh:mm)" of an instant in this process's time zone, as the gateway writes it. */
function clock(ms: number): string {
  const d = new Date(ms);
  const two = (v: number): string => String(v).padStart(2, '0');
  const offset = -d.getTimezoneOffset();
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} (UTC${offset < 0 ? '-' : '+'}${two(Math.floor(Math.abs(offset) / 60))}:${two(Math.abs(offset) % 60)})`;
}

describe('deliveries held after a restart, on the status page', () => {
  const chromium = useChromium();
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function startGateway(dataDir: string, tmp: string): Promise<{ store: EventStore; server: StatusServer; stop: () => Promise<void> }> {
    const store = await EventStore.open({ dataDir, minFreeBytes: 1024 * 1024, pruneIntervalMs: 0, ambiguousSettleMs: SETTLE_MS });
    const config = makeConfig(path.join(tmp, 'data'), { id: 'lab-settle' });
    const server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await store.close();
    };
    cleanups.push(stop);
    return { store, server, stop };
  }

  it('says how many wait, until when and why; through a second restart; gone once the time has passed', async () => {
    const tmp = tempDir('review-s23-settle-hold-');
    cleanups.push(tmp.cleanup);
    const dataDir = path.join(tmp.dir, 'data');

    // The gateway before the power cut: order ACC-S1 has three results queued, ACC-S2 one; the
    // relay was sending the first two of ACC-S1 (one lease) and ACC-S2's.
    // The power goes: the leases stay open in LevelDB.
    expect(await leaveOpenLeases(dataDir, 'ACC-S1', 'ACC-S2'), 'two of ACC-S1 and the one of ACC-S2 in flight').toBe(3);

    // The restart.
    const restartedAt = Date.now();
    let gw = await startGateway(dataDir, tmp.dir);
    const status = async (): Promise<{ queue: { retrying: number; pending: number }; settleHold?: Hold; health: string }> => (await requestJson(`${gw.server.url()}/api/status`)).json;
    const first = await waitFor(async () => (await status()).settleHold, 'the hold in /api/status', 5_000);
    const until = Date.parse(first.until);
    expect(until, 'the settle time from the restart').toBeGreaterThanOrEqual(restartedAt + SETTLE_MS - 1000);
    expect(until).toBeLessThanOrEqual(Date.now() + SETTLE_MS + 1000);
    expect(first).toMatchObject({ events: 3, behind: 1 });
    expect(first.message).toBe(
      `3 deliveries wait until ${clock(until)} to check Odoo for writes the gateway may have left running when it stopped (a power cut, a kill): ` +
        'looked up sooner, a write Odoo still runs is not found and is sent twice. 1 more event of the same orders waits behind them. ' +
        'They go on their own then; restarting the gateway does not make them go sooner.',
    );
    const s = await status();
    expect(s.queue.retrying).toBe(3);
    expect(s.health, 'nothing for a person to do: no health reason').toBe('ok');

    // The page: the Queue to Odoo card says it, under the counts.
    const page = await chromium.newPage();
    await page.goto(gw.server.url());
    await page.waitForSelector('#q-settle:not([hidden])');
    expect(await page.textContent('#q-settle')).toBe(first.message);
    expect(await page.textContent('#q-retrying')).toBe('3');

    // IT restarts the gateway again within the hold: the events keep the first restart's due
    // time, and the page keeps saying so (nothing is in flight this time to open a new hold).
    await gw.stop();
    gw = await startGateway(dataDir, tmp.dir);
    const again = await waitFor(async () => (await status()).settleHold, 'the hold after the second restart', 5_000);
    expect(again).toEqual(first);
    await page.goto(gw.server.url());
    await page.waitForSelector('#q-settle:not([hidden])');
    expect(await page.textContent('#q-settle')).toBe(first.message);

    // An operator discards ACC-S2's held result: two left, in one order.
    const held = (await gw.store.listEvents({ state: 'retrying', limit: 10 })).find((e) => e.event.correlationId === 'ACC-S2');
    await gw.store.discard(held!.event.id, 'test', 'sent by hand');
    const fewer = await waitFor(async () => {
      const h = (await status()).settleHold;
      return h?.events === 2 ? h : undefined;
    }, 'two held');
    expect(fewer.message).toMatch(/^2 deliveries wait until .* 1 more event of the same order waits behind them\. /);
    await page.waitForFunction(() => document.getElementById('q-settle')?.textContent?.startsWith('2 deliveries wait'));

    // The time passes: the relay may look them up now (none runs here), and the words go.
    await waitFor(async () => ((await status()).settleHold === undefined ? true : undefined), 'the hold over', SETTLE_MS + 10_000, 200);
    expect(Date.now(), 'not before the due time (`until` is that time rounded up to the second)').toBeGreaterThan(until - 1000);
    await page.waitForSelector('#q-settle[hidden]', { state: 'attached' });
    expect((await status()).queue.retrying, 'still retrying: waiting for the relay, no longer held').toBe(2);
  }, 60_000);

  it('holds nothing after a restart that found no delivery under way', async () => {
    const tmp = tempDir('review-s23-settle-none-');
    cleanups.push(tmp.cleanup);
    const dataDir = path.join(tmp.dir, 'data');
    const before = await EventStore.open({ dataDir, minFreeBytes: 1024 * 1024, pruneIntervalMs: 0 });
    await before.commit(hl7Message(undefined, 'N1'), [event('ACC-N1', 1)]);
    await before.close();
    const gw = await startGateway(dataDir, tmp.dir);
    const page = await chromium.newPage();
    await page.goto(gw.server.url());
    await page.waitForFunction(() => document.getElementById('q-pending')?.textContent === '1');
    expect(await page.isHidden('#q-settle')).toBe(true);
    const s = (await requestJson(`${gw.server.url()}/api/status`)).json as { settleHold?: Hold };
    expect('settleHold' in s, 'the field is there only while deliveries are held').toBe(false);
  }, 30_000);
});
