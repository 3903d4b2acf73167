import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { Relay } from '../../gateway/src/relay/relay.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { BOT, makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { milestone, orderCreated, resultValidated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Audit of how the relay's loop (gateway/src/relay/relay.ts) shares Odoo between the queue's
 * partitions and tells the truth about the link while it drains a backlog.
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** The sale order the gateway made for an accession, if any. */
function saleOrderOf(r: Rig, accession: string): number | undefined {
  return r.emu.records('sale.order', [['client_order_ref', '=', accession]])[0]?.id as number | undefined;
}

/** The gateway restarted: a new Odoo client and relay (not started) on the rig's store, a link back-off of 1 s to 60 s. */
function restartedRelay(r: Rig): Relay {
  const telemetry = new Telemetry();
  const client = new OdooClient({ url: r.url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 5000, telemetry, log: silentLogger });
  return new Relay({ store: r.store, odoo: client, config: r.config, odooConfig: r.odooConfig, telemetry, log: silentLogger, idlePollMs: 20, watchStock: false, linkBackoff: { initialMs: 1000, maxMs: 60_000 } });
}

/** The chatter notes on an accession's sale order. */
function notesOn(r: Rig, accession: string): number {
  const so = saleOrderOf(r, accession);
  if (so === undefined) return 0;
  return r.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so], ['body', 'ilike', 'lgw:']]).length;
}

describe('one order with a long history in the queue', () => {
  /**
   * What the user saw: after an outage, one big order (a study panel rerun all night: an analyzer
   * completion and a LIS result, again and again, 300 events) sat at the head of the queue.
   * Orders the LIS sent while it drained (a stat order from the emergency room) did not reach Odoo
   * until every one of the big order's events had: the round that leased it posts a partition's
   * runs (milestones, then results, then milestones...) one stage after another, and nothing new is
   * leased before the round ends. 300 alternating events are 300 stages, each a round trip to
   * Odoo; the other partitions of the round were done after one stage and the gateway's other
   * workers stood idle.
   * Promise broken: DESIGN.md §1 step 4 (FIFO within a partition, concurrently across keys); the
   * workflow article's "workload isolation" (one backlog must not hold the lab's other work).
   */
  it('Odoo 17: orders sent while a 300-event partition drains reach Odoo before that partition is done', async () => {
    rig = await makeRig(17);
    await waitFor(() => rig!.client.state === 'connected');
    // Each note is a real round trip, as with an Odoo across the WAN.
    rig.emu.faults.inject({ match: { method: 'message_post' }, times: Infinity, action: { kind: 'latency', ms: 10 } });
    const big: DraftEvent[] = [orderCreated('BIG-1', 'CLINIC-A', ['GLU'])];
    for (let n = 1; n <= 150; n++) {
      // An analyzer's completion, then the LIS's (re)validated result of the rerun: another rule.
      big.push(milestone('test.completed', 'BIG-1', n));
      big.push({ ...resultValidated('BIG-1', 'GLU'), idempotencyKey: `lis|validated|BIG-1|GLU|run-${n}` });
    }
    await rig.commit(big);
    // The big order's round is under way (its sale order is in Odoo): the stat orders come in.
    await waitFor(() => saleOrderOf(rig!, 'BIG-1') !== undefined, 20_000, 5);
    await rig.commit([orderCreated('STAT-1', 'CLINIC-A', ['GLU']), orderCreated('STAT-2', 'CLINIC-B', ['CRP'])]);
    await waitFor(() => saleOrderOf(rig!, 'STAT-1') !== undefined && saleOrderOf(rig!, 'STAT-2') !== undefined, 60_000, 5);
    // The stat orders did not wait for the whole partition.
    expect(notesOn(rig, 'BIG-1')).toBeLessThan(150);
    // And nothing of the big order was lost or posted twice by sharing the way.
    await rig.waitDrained(60_000);
    expect(notesOn(rig, 'BIG-1')).toBe(150);
    const events = await rig.store.eventsByCorrelation('BIG-1');
    expect(events.filter((e) => e.state === 'delivered')).toHaveLength(301);
  }, 90_000);
});

describe('a 429 in one batch while another batch of the round is answered', () => {
  /**
   * What the user saw: Odoo's front proxy rate-limited the gateway during the morning's catch-up
   * (429, Retry-After: 30). The order that met it waited its 30 s, as it should; but a chatter
   * note of the same round, sent just before and answered just after, set the status back to
   * "connected" and cleared the error. For the next 30 s (up to an hour with a longer Retry-After)
   * the page, the tray and /api/status said Odoo was connected with no error while the gateway
   * sent nothing and the queue stood still: IT looking for the cause saw none.
   * Promise broken: DESIGN.md §5 `odoo: { state, lastError }` tell the link as it is; relay README
   * "Odoo down for a week ... Retry-After honoured" (the state while it is honoured).
   */
  it('Odoo 17: the link stays reported down, with the 429 as its error, while the Retry-After holds the gateway back', async () => {
    rig = await makeRig(17, { relay: { concurrency: 2 }, relayOptions: { linkBackoff: { initialMs: 1000, maxMs: 60_000 } } });
    await waitFor(() => rig!.client.state === 'connected' && rig!.relay.snapshot().referencePulledAt !== undefined);
    await rig.commit([orderCreated('NOTE-1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    // The note is sent first and answered late; the new order's write meets the rate limit meanwhile.
    rig.emu.faults.inject({ match: { method: 'message_post' }, times: 1, action: { kind: 'latency', ms: 1200 } });
    rig.emu.faults.inject({ match: { method: 'check_object_reference' }, times: Infinity, action: { kind: 'latency', ms: 400 } });
    rig.emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: Infinity, action: { kind: 'status', status: 429, retryAfterSeconds: 30 } });
    const [note] = await rig.commit([milestone('specimen.received', 'NOTE-1', 1), orderCreated('RATE-2', 'CLINIC-A', ['GLU'])]);
    await waitFor(async () => (await rig!.store.getEvent(note!))?.state === 'delivered', 10_000, 10);
    expect(rig.emu.faults.log.some((f) => f.action === 'status')).toBe(true);
    // The round is over and the gateway holds back for the Retry-After: the status says so.
    expect(rig.client.state).toBe('unreachable');
    expect(rig.relay.snapshot().lastError).toMatch(/429/);
  }, 30_000);
});

describe('the gateway stopped (an update, a restart) while it drains a backlog', () => {
  /**
   * What the user saw: IT restarted the gateway for an update during the morning's catch-up.
   * stop() waited its deadline, then the store closed under a round that went on posting stage
   * after stage: the round's events stayed in flight in the store ("could not record relay
   * outcomes" in the log), and at the next start the order's unsent events were held for the
   * ambiguous settle time (3 minutes) and looked up before being sent, as after a power cut.
   * Promise broken: STYLE.md §6 (stop() graceful, with a deadline: the relay stops before the
   * store); relay README "Why an ambiguous write waits" is for writes that may have landed, not
   * for events never sent.
   */
  it('Odoo 17: stop() ends the round after the stage in flight; what was posted is recorded, the rest is released, nothing is left in flight', async () => {
    // A round of 16 runs, each note 400 ms: 3 s and more, past stop()'s deadline of 1.5 s.
    rig = await makeRig(17, { relayOptions: { maxRunsPerRound: 16 } });
    await waitFor(() => rig!.client.state === 'connected');
    await rig.commit([orderCreated('LONG-1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    rig.emu.faults.inject({ match: { method: 'message_post' }, times: Infinity, action: { kind: 'latency', ms: 400 } });
    const history: DraftEvent[] = [];
    for (let n = 1; n <= 8; n++) {
      history.push(milestone('test.completed', 'LONG-1', n));
      history.push({ ...resultValidated('LONG-1', 'GLU'), idempotencyKey: `lis|validated|LONG-1|GLU|run-${n}` });
    }
    await rig.commit(history);
    await waitFor(() => rig!.emu.calls.some((c) => c.method === 'message_post'), 10_000, 5);
    await rig.relay.stop(1_500);
    await rig.store.flush();
    const s = rig.store.stats();
    expect(s.inFlight).toBe(0);
    const events = await rig.store.eventsByCorrelation('LONG-1');
    // Posted before the stop: recorded as delivered; never sent: waiting, not ambiguous.
    expect(events.filter((e) => e.state === 'delivered').length).toBeGreaterThan(1);
    expect(events.filter((e) => e.ambiguous)).toEqual([]);
  }, 30_000);
});

describe('an operator pauses sending while a round is under way', () => {
  /**
   * What the user saw: finance paused sending for the month-end close (POST /api/relay/pause);
   * the status said "paused since 17:02:11", and yet chatter notes (invoices, in a round of
   * them) kept reaching Odoo after that time: the round under way went on stage after stage
   * (and started its stage's further batches) until it was done.
   * Promise broken: relay.ts pause() "in effect at once"; README "a pause holds every event".
   * The request already sent is Odoo's to answer; nothing is sent after the pause.
   */
  it('Odoo 17: nothing more is sent once pause() resolved; the round records what Odoo took and releases the rest', async () => {
    rig = await makeRig(17);
    await waitFor(() => rig!.client.state === 'connected');
    await rig.commit([orderCreated('CLOSE-1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    rig.emu.faults.inject({ match: { method: 'message_post' }, times: Infinity, action: { kind: 'latency', ms: 400 } });
    const history: DraftEvent[] = [];
    for (let n = 1; n <= 4; n++) {
      history.push(milestone('test.completed', 'CLOSE-1', n));
      history.push({ ...resultValidated('CLOSE-1', 'GLU'), idempotencyKey: `lis|validated|CLOSE-1|GLU|run-${n}` });
    }
    await rig.commit(history);
    await waitFor(() => rig!.emu.calls.some((c) => c.method === 'message_post'), 10_000, 5);
    await rig.relay.pause();
    const pausedAt = rig.emu.calls.length;
    // The round is over once nothing is in flight.
    await waitFor(() => rig!.store.stats().inFlight === 0, 10_000, 20);
    await new Promise((r) => setTimeout(r, 500));
    expect(rig.emu.calls.slice(pausedAt).map((c) => `${c.model}.${c.method}`)).toEqual([]);
    const events = await rig.store.eventsByCorrelation('CLOSE-1');
    expect(events.filter((e) => e.state === 'pending').length).toBeGreaterThan(0);
    // Resumed: the rest goes, each once.
    await rig.relay.resume();
    await rig.waitDrained();
    expect(notesOn(rig, 'CLOSE-1')).toBe(4);
  }, 30_000);
});

describe('the gateway restarted while Odoo asks it to wait (Retry-After)', () => {
  /**
   * What the user saw: Odoo's front proxy rate-limited the gateway (429, Retry-After: 30). IT saw
   * "unreachable: 429" on the page and restarted the gateway, as one does; the new process had
   * forgotten the server's request and came straight back (version, sign-in, field maps, the
   * reference pull): a burst at an address the proxy had asked to stay away, which is what keeps
   * a rate limiter or a fail2ban rule in front of Odoo blocking the lab.
   * Promise broken: relay README "A Retry-After ... is honoured: nothing at all goes to Odoo — no
   * round, no reference pull, no login — before the later of the back-off and the server's time";
   * odoo-api.md A.3 (429 from the front proxy: retry with back-off).
   */
  it('Odoo 17: a relay started within the Retry-After sends nothing to Odoo until it has passed, then delivers', async () => {
    rig = await makeRig(17, { relayOptions: { linkBackoff: { initialMs: 1000, maxMs: 60_000 } } });
    await waitFor(() => rig!.relay.snapshot().referencePulledAt !== undefined);
    rig.emu.faults.inject({ match: { transport: 'jsonrpc', service: 'object' }, times: Infinity, action: { kind: 'status', status: 429, retryAfterSeconds: 8 } });
    await rig.commit([orderCreated('WAIT-1', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => rig!.emu.faults.log.some((f) => f.action === 'status'), 10_000, 10);
    await waitFor(() => rig!.client.state === 'unreachable', 10_000, 10);
    await rig.relay.stop();
    // The restarted gateway: a new relay and client on the same store.
    const again = restartedRelay(rig);
    const restartedAt = rig.emu.calls.length;
    await again.start();
    try {
      await new Promise((r) => setTimeout(r, 4000));
      expect(rig.emu.calls.slice(restartedAt).map((c) => `${c.model ?? c.service ?? c.transport}.${c.method ?? ''}`)).toEqual([]);
      // The status says why.
      expect(again.snapshot().lastError).toMatch(/429/);
      // The proxy lets the gateway through again: once the time has passed, the order goes.
      rig.emu.faults.clear();
      await rig.waitDrained(30_000);
      expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'WAIT-1']])).toBe(1);
    } finally {
      await again.stop();
    }
  }, 30_000);
});

describe('an operator resumes a paused gateway restarted within a Retry-After', () => {
  /**
   * What the user saw: the gateway, paused for the close, had been told by Odoo's proxy to wait
   * (429, Retry-After) just before a restart. The accountant resumed it right after the restart;
   * resuming cut every wait short ("an operator resuming wants it tried now"), the server's kept
   * time with it, and the gateway came straight back at the rate-limited address.
   * Promise broken: relay README "A Retry-After ... is honoured: nothing at all goes to Odoo ...
   * before the later of the back-off and the server's time".
   */
  it('Odoo 17: resume() tries at once, but not before the server\'s time', async () => {
    rig = await makeRig(17, { relayOptions: { linkBackoff: { initialMs: 1000, maxMs: 60_000 } } });
    await waitFor(() => rig!.relay.snapshot().referencePulledAt !== undefined);
    rig.emu.faults.inject({ match: { transport: 'jsonrpc', service: 'object' }, times: Infinity, action: { kind: 'status', status: 429, retryAfterSeconds: 30 } });
    await rig.commit([orderCreated('WAIT-2', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => rig!.emu.faults.log.some((f) => f.action === 'status'), 10_000, 10);
    await waitFor(() => rig!.client.state === 'unreachable', 10_000, 10);
    await rig.relay.pause();
    await rig.relay.stop();
    const again = restartedRelay(rig);
    const restartedAt = rig.emu.calls.length;
    await again.start();
    try {
      expect(again.snapshot().paused).toBe(true);
      await again.resume();
      await new Promise((r) => setTimeout(r, 3000));
      expect(rig.emu.calls.slice(restartedAt).map((c) => `${c.model ?? c.service ?? c.transport}.${c.method ?? ''}`)).toEqual([]);
    } finally {
      await again.stop();
    }
  }, 30_000);
});

describe('an operator pauses and resumes while a Retry-After given at sign-in holds', () => {
  /**
   * What the user saw: Odoo's front proxy rate-limited the gateway as it connected (429,
   * Retry-After: 30, on the version check that opens a connection). The page said "unreachable:
   * 429"; an accountant paused sending for the close and resumed it a minute later, well within
   * the 30 s the proxy had asked for... and the gateway came straight back (version, sign-in),
   * at an address the proxy had asked to stay away. The connection's calls go around the call
   * limit, so its 429 closed no gate, and resume() only kept a Retry-After from before a restart.
   * Promise broken: relay README "A Retry-After ... is honoured: nothing at all goes to Odoo — no
   * round, no reference pull, no login — before the later of the back-off and the server's time";
   * "an operator's resume tries at once, but not before that time".
   */
  it('Odoo 17: resume() after a 429 on the connection does not connect again before the server\'s time', async () => {
    rig = await makeRig(17, { start: false, relayOptions: { linkBackoff: { initialMs: 1000, maxMs: 60_000 } } });
    rig.emu.faults.inject({ match: { service: 'common', rpcMethod: 'version' }, times: Infinity, action: { kind: 'status', status: 429, retryAfterSeconds: 30 } });
    await rig.relay.start();
    await waitFor(() => rig!.emu.faults.log.some((f) => f.action === 'status'), 10_000, 10);
    await waitFor(() => rig!.relay.snapshot().lastError !== undefined, 10_000, 10);
    await rig.relay.pause();
    const resumedAt = rig.emu.calls.length;
    await rig.relay.resume();
    await new Promise((r) => setTimeout(r, 3000));
    expect(rig.emu.calls.slice(resumedAt).map((c) => `${c.model ?? c.service ?? c.transport}.${c.method ?? ''}`)).toEqual([]);
    expect(rig.relay.snapshot().lastError).toMatch(/429/);
  }, 30_000);
});
