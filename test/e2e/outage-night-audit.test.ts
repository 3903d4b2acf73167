/**
 * Outage night audit: the real gateway (MLLP listener, LevelDB store, relay, status model) in this
 * process, the Odoo emulator over HTTP as the lab's Odoo, driven through a night in which Odoo
 * goes away and comes back. What the lab is promised (DESIGN.md §2 "No acknowledged message is
 * ever lost … Odoo down for a week", gateway/src/relay/README.md "Odoo down for a week
 * dead-letters nothing", "Retry-After … honoured: nothing at all goes to Odoo"): every message
 * acknowledged during the outage reaches Odoo once it is back, and the gateway does what Odoo asks
 * while it recovers. Each test says what the user sees, the promise, the cause and the fix.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { RELAY_MODELS } from '../../gateway/src/relay/odoo/field-map.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { orm, oru } from '../fixtures/relay/billing-rig.ts';
import { freePort } from '../fixtures/ports.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';
import { OdooEmulator } from '../odoo-emulator/index.ts';

const KEY_ENV = 'LGW_OUTAGE_NIGHT_AUDIT_KEY';
process.env[KEY_ENV] = BOT.key;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The lab's gateway on `url`, with its LIS connected; `send` asserts the AA of each message. */
async function labGateway(id: string, url: string, relay: Record<string, unknown> = {}): Promise<{ gateway: Gateway; send: (text: string) => Promise<void> }> {
  const { gateway, stop } = await startTestGateway(id, {
    odoo: { url, database: 'lab', login: BOT.login, apiKeyEnv: KEY_ENV, timeoutMs: 3000 },
    relay: { enabled: true, maxAttempts: 5, backoff: { initialMs: 20, maxMs: 200, multiplier: 2, jitter: 0 }, ...relay },
  });
  cleanups.push(stop);
  const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  cleanups.push(() => lis.close());
  return {
    gateway,
    async send(text) {
      const controlId = text.split('\r')[0]!.split('|')[9]!;
      const ack = (await lis.send(Buffer.from(text, 'latin1'))).toString('latin1');
      expect(ack, `ACK of ${controlId}`).toContain(`MSA|AA|${controlId}`);
    },
  };
}

function botUsers(): ConstructorParameters<typeof OdooEmulator>[0]['users'] {
  return [
    { login: 'admin', password: 'admin', rights: 'admin' },
    { login: BOT.login, password: BOT.password, apiKeys: [{ key: BOT.key }], rights: 'bot' },
  ];
}

describe('outage night: Odoo upgraded while it was down', () => {
  /**
   * What the user sees: Odoo is taken down overnight for its upgrade from 18 to 19 (Odoo.sh /
   * on-premise upgrade; same URL, same database, same bot user and key). The LIS keeps ordering,
   * every ORM gets its AA. When Odoo is back, every order of the night is a dead letter
   * ("Odoo rejected the request (sale.order.load): builtins.KeyError: 'product_uom'"): no sale
   * order, so nothing to bill, and the status still reports the 18 server. Only a restart of the
   * gateway makes it talk to Odoo 19 properly; the dead letters need a replay each.
   *
   * Promise broken: DESIGN.md §2 "No acknowledged message is ever lost: … Odoo down for a week";
   * relay/README.md "Odoo down for a week dead-letters nothing"; DESIGN.md §4 / odoo-api.md B
   * ("field names that drift between versions (discover with fields_get)") — the gateway must speak
   * to the Odoo that is there, and the relay README's client section ("fields_get on every model
   * at connect → FieldMap").
   *
   * Cause: the relay connects (version detection, authenticate, fields_get) only while
   * `#connected` is false (gateway/src/relay/relay.ts:267), and only refused credentials set it
   * back to false (relay.ts:288-289). A link failure (relay.ts:290-291 `#linkTrouble`) keeps the
   * client's protocol, version and FieldMap from before the outage (odoo/odoo-client.ts:182-198,
   * 313-337 run only from connect()), so after the upgrade the rules `pick()` 18's
   * `product_uom` (rules/order-created.ts:45) and Odoo 19 refuses it: permanent → dead.
   *
   * Fix: the end of a link outage is a new connection: a round or a pull that met the link down
   * clears `#connected` (relay.ts `#linkTrouble`), so the version, protocol (JSON-RPC → JSON-2 on
   * 19) and field map are read again before anything is posted, once per recovery; a changed
   * version is logged and raised as the `info` alert ODOO_VERSION_CHANGED.
   */
  it('orders acknowledged during the outage reach the upgraded Odoo 19 instead of being dead-lettered', async () => {
    // Odoo comes back on the same port after a night down: not one a listen(0) of another test may
    // be handed meanwhile (the gateway would then post the night's events to that listener).
    const port = await freePort();
    const before = await startEmulator(18, {}, port);
    let odoo: OdooEmulator = before.emu;
    cleanups.push(() => odoo.close());
    const { gateway, send } = await labGateway('night-upgrade', before.url);
    const alerts: string[] = [];
    gateway.telemetry.on('alert', (a) => alerts.push(a.code));
    await waitFor(() => gateway.relay!.snapshot().state === 'connected' && gateway.relay!.snapshot().serverVersion === 18, 20_000);
    // Odoo goes down once the gateway is done with it: its first reference pull finds the seeded
    // reagent below its reorder point and the gateway posts the RFQ. Taken down while that write
    // was in flight, the write may have landed (ambiguous): it is held AMBIGUOUS_SETTLE_MS (180 s)
    // before its look-up, longer than this test waits for the night's events (seen once in CI:
    // "did not drain within 60 s"; the close, 0-50 ms after "connected", raced the RFQ's post).
    await waitFor(() => {
      const s = gateway.store!.stats();
      return s.delivered > 0 && s.pending === 0 && s.inFlight === 0 && s.retrying === 0;
    }, 20_000);

    // 22:00: Odoo goes down for its upgrade. The LIS goes on ordering.
    await odoo.close();
    await send(orm('UPG-1', ['GLU', 'TSH']));
    await send(orm('UPG-2', ['GLU']));
    await send(orm('UPG-3', ['TSH']));
    await waitFor(() => gateway.relay!.snapshot().state === 'unreachable', 20_000);

    // 05:00: the same URL answers again, now Odoo 19 (same database name, same bot and key).
    odoo = new OdooEmulator({ version: 19, seed: 'lab-demo', users: botUsers() });
    await odoo.listen(port);
    await waitFor(() => {
      const s = gateway.store!.stats();
      return s.pending === 0 && s.inFlight === 0 && s.retrying === 0;
    }, 60_000).catch(async (err: unknown) => {
      // Seen once in a full CI run, never alone: say where the events stood, for whoever looks next.
      const waiting = (await Promise.all((['pending', 'inflight', 'retrying'] as const).map((state) => gateway.store!.listEvents({ state })))).flat();
      const detail = waiting.map((e) => ({ type: e.event.type, state: e.state, attempts: e.attempts, ambiguous: e.ambiguous, lastError: e.lastError, dueInMs: e.dueAt - Date.now() }));
      throw new Error(`${String(err)}; relay ${JSON.stringify(gateway.relay!.snapshot())}; waiting ${JSON.stringify(detail)}`);
    });

    const dead = await gateway.store!.listEvents({ state: 'dead' });
    expect(dead.map((e) => e.deadReason)).toEqual([]);
    expect(gateway.store!.stats().deadLettered).toBe(0);
    for (const [acc, lines] of [['UPG-1', 2], ['UPG-2', 1], ['UPG-3', 1]] as const) {
      const so = odoo.records('sale.order', [['client_order_ref', '=', acc]]);
      expect(so, `sale order ${acc} in Odoo 19`).toHaveLength(1);
      expect(odoo.count('sale.order.line', [['order_id', '=', so[0]!.id]])).toBe(lines);
    }
    // The gateway says which Odoo it now speaks to, and that it changed; it read Odoo 19's fields
    // once for the recovery, not at every round.
    expect(gateway.relay!.snapshot().serverVersion).toBe(19);
    expect(alerts).toContain('ODOO_VERSION_CHANGED');
    expect(odoo.calls.filter((c) => c.method === 'fields_get')).toHaveLength(RELAY_MODELS.length);
  }, 120_000);
});

describe('outage night: recovery and the rate limiter', () => {
  /**
   * What the user sees: after the night's outage the gateway catches up on the chatter notes it
   * kept (preliminary results, ORU OBX-11 P → test.completed). Odoo's front (Odoo Online's rate
   * limiter, nginx limit_req) answers the first note with 429 and "Retry-After: 60". The gateway
   * goes on and posts every other note of the batch at once (11 more message_post calls right
   * after the 429), and the next batch of the round too: the lab's address stays rate-limited
   * (or gets banned for longer), exactly what the README says the relay no longer does.
   *
   * Promise broken: gateway/src/relay/README.md "A `Retry-After` on such an answer … is honoured:
   * nothing at all goes to Odoo — no round, no reference pull, no login — before the later of the
   * back-off and the server's time"; DESIGN.md §1 step 4 (back-off on failure); the reference
   * article's "retry policies with backoff … without degrading ERP performance".
   *
   * Cause: the link failure is only looked at once a whole batch and a whole stage are done.
   * rules/milestone-notes.ts:66-77 posts one note per order with workers that catch each failure
   * and take the next order (`for (let next = queue.shift(); …) await post(next)`), whatever the
   * failure was; relay.ts:511-522 (the round's workers, `while (next < batches.length)`) start
   * the stage's next batch after a batch reported `trouble: 'link'`; `#linkTrouble` only runs
   * after the round (relay.ts:290-291). The same holds for the per-accession loop of
   * rules/order-created.ts:52-73 (a 429 on one accession's calls, the next accession is tried).
   *
   * Fix: a gate in the rules' shared call limit (call-limit.ts): the first link-down failure
   * (429/502/503/504, refused connection) or refused credentials closes it, and every later call
   * fails at once with that failure without being sent, until the relay's back-off (at least the
   * Retry-After) has passed; the round's workers start no batch once one met the link down; the
   * milestone and order loops stop there and leave the rest (released, not charged).
   */
  it('after a 429 with Retry-After during the catch-up, nothing more is sent to Odoo before that time', async () => {
    const { emu: odoo, url } = await startEmulator(17);
    cleanups.push(() => odoo.close());
    // One request at a time: every call after the 429 started after its answer came back.
    const { gateway, send } = await labGateway('night-429', url, { concurrency: 1 });
    const accessions = Array.from({ length: 12 }, (_, i) => `RL-${i + 1}`);
    for (const acc of accessions) await send(orm(acc, ['GLU']));
    await waitFor(() => odoo.count('sale.order', [['client_order_ref', '=like', 'RL-%']]) === accessions.length, 30_000);

    // The night: Odoo unreachable; the analyzers' preliminary results are kept.
    odoo.faults.outage(600_000, 'refuse');
    for (const acc of accessions) await send(oru(acc, 'GLU', 'P'));
    await waitFor(() => gateway.relay!.snapshot().state === 'unreachable', 20_000);

    // Morning: Odoo is back, behind a rate limiter that refuses the first note for 60 s.
    odoo.faults.inject({ match: { method: 'message_post' }, times: 1, action: { kind: 'status', status: 429, retryAfterSeconds: 60 } });
    const mark = odoo.calls.length;
    odoo.faults.endOutage();
    await waitFor(() => odoo.calls.slice(mark).some((c) => c.fault === 'status'), 30_000);
    await sleep(3_000); // well inside the 60 s Odoo asked for

    const since = odoo.calls.slice(mark);
    const refused = since.findIndex((c) => c.fault === 'status');
    const sentAfter = since.slice(refused + 1).map((c) => `${c.model}.${c.method}`);
    expect(sentAfter, 'requests sent to Odoo after its 429 "Retry-After: 60"').toEqual([]);
  }, 120_000);
});

describe('outage night: the clock corrected while Odoo was away', () => {
  /**
   * What the user sees: a power cut in the night; the gateway box reboots while the lab's
   * Internet link is still down, so NTP cannot reach its servers and the system clock comes from
   * the RTC — kept in local time, two hours ahead of UTC (a BIOS set by hand, a former dual-boot
   * box). The LIS keeps ordering (every ORM gets its AA). The Internet comes back: NTP steps the
   * clock back two hours and Odoo answers again. Nothing reaches Odoo for the next two hours: the
   * orders of the night are "pending", `oldestPendingAgeSeconds` is 0 and `healthReasons` is
   * empty — /api/status, the tray and the page say all is well while no sale order is created.
   *
   * Promise broken: DESIGN.md §1 step 4 (the relay posts due events, retrying with back-off) and
   * §5 / status/README.md (`oldestPendingAgeSeconds`, QUEUE_STALE, ODOO_UNREACHABLE: the status
   * shows what waits for Odoo); relay/README.md "Odoo down for a week dead-letters nothing" —
   * the catch-up after the outage must start once Odoo is back, not when the wall clock catches
   * up with the times written before the step.
   *
   * Cause: durations are measured on the wall clock. The relay's back-off deadline is
   * `#notBefore = Date.now() + wait` (gateway/src/relay/relay.ts:314 `#linkTrouble`) and the loop
   * sleeps `#notBefore - Date.now()` (relay.ts:262-264): after the clock stepped back two hours
   * that is a two-hour sleep, renewed at every wake-up. The store's due times are wall-clock
   * instants written at commit (`dueAt`, store/event-store.ts:1362 `#leaseHead`: `head.dueAt > now`
   * moves the partition to later), so the night's events are "not due" for two hours, which is
   * also why `oldestPendingAgeSeconds` (due events only) reads 0 and QUEUE_STALE never comes;
   * the status model's ODOO_UNREACHABLE counts from a `since` now in the future
   * (status/status-model.ts:745, 451-453), so it is not raised either.
   *
   * Fix: the relay's back-offs and intervals on the monotonic clock (`performance.now()`); the
   * store's lease, its retry due times and queue age, and the status model's times on a wall clock
   * that never goes backwards (gateway/src/wall-clock.ts: after a step back it runs on at half
   * speed until the system clock has caught up); the step is logged and raised as the `warning`
   * alert CLOCK_STEPPED_BACK.
   */
  it('orders kept during the outage reach Odoo once it is back, although NTP stepped the clock back', async () => {
    // The box booted with its clock two hours ahead (no NTP: the link is down).
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() + 2 * 3_600_000 });
    cleanups.push(async () => void vi.useRealTimers());
    const { emu: odoo, url } = await startEmulator(17);
    cleanups.push(() => odoo.close());
    const { gateway, send } = await labGateway('night-clock', url);
    const alerts: string[] = [];
    gateway.telemetry.on('alert', (a) => alerts.push(a.code));
    await waitFor(() => gateway.relay!.snapshot().state === 'connected', 20_000);

    odoo.faults.outage(600_000, 'refuse');
    await send(orm('CLK-1', ['GLU']));
    await send(orm('CLK-2', ['GLU', 'TSH']));
    await waitFor(() => gateway.relay!.snapshot().state === 'unreachable', 20_000);

    // The Internet is back: NTP steps the clock back to the true time, Odoo answers again.
    vi.setSystemTime(Date.now() - 2 * 3_600_000);
    odoo.faults.endOutage();

    // The status is polled (every second): wait for both, then say what is missing.
    const orders = (): number => odoo.count('sale.order', [['client_order_ref', '=like', 'CLK-%']]);
    await waitFor(() => orders() === 2 && gateway.statusModel!.toApiStatus().queue.pending === 0, 30_000).catch(() => undefined);
    const status = gateway.statusModel!.toApiStatus();
    expect({ orders: orders(), pending: status.queue.pending }, JSON.stringify(status.queue)).toEqual({ orders: 2, pending: 0 });
    expect(alerts, 'the step back is reported').toContain('CLOCK_STEPPED_BACK');
  }, 90_000);
});
