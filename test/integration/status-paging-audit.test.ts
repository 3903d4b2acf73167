import { afterEach, describe, expect, it, vi } from 'vitest';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { MessageLog } from '../../gateway/src/store/message-log.ts';
import type { RetentionHold } from '../../gateway/src/store/types.ts';
import { makeConfig, requestJson } from '../fixtures/status/harness.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

/**
 * Scripts that page through the HTTP API (an export of the delivered events for billing, IT
 * looking for an analyzer's messages) on a store that keeps working meanwhile: retention prunes,
 * thousands of messages of other links sit in the log. Real LevelDB in a temp dir, the real
 * status server over HTTP.
 */
const DAY_MS = 86_400_000;
const tmp = useTempStore('status-paging-', { pruneIntervalMs: 0, minFreeBytes: 0 });
let server: StatusServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  vi.restoreAllMocks();
});

async function serve(store: EventStore): Promise<string> {
  const config = makeConfig(tmp.dir);
  server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: 't', startedAt: new Date().toISOString(), processMetrics: false });
  await server.start();
  return server.url();
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Accessions not billed in full: their billing events stay past the retention age. */
function billingHold(open: ReadonlySet<string>): RetentionHold {
  return { types: ['result.validated'], keep: async (correlationId) => open.has(correlationId) };
}

/**
 * A morning after an Odoo outage: the results of FIN-0..9 were stored first, those of the
 * accessions not billed in full (HOLD-0..4) after them; when Odoo came back the relay delivered
 * HOLD-* first, then FIN-*. Returns the event ids by accession.
 */
async function backlogDelivered(store: EventStore): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  const commit = async (acc: string): Promise<void> => {
    const r = await store.commit(inboundMessage(`C-${acc}`), [resultValidated(acc, `k-${acc}`)]);
    ids.set(acc, r.eventIds[0]!);
  };
  for (let i = 0; i < 10; i++) await commit(`FIN-${i}`);
  await pause(5);
  for (let i = 0; i < 5; i++) await commit(`HOLD-${i}`);
  const leases = await store.lease({ limit: 100 });
  expect(leases).toHaveLength(15);
  const deliver = async (prefix: string): Promise<void> => {
    for (const l of leases.filter((x) => x.partitionKey.startsWith(`order:${prefix}`))) {
      await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
      await pause(2);
    }
  };
  await deliver('HOLD-');
  await pause(5);
  await deliver('FIN-');
  return ids;
}

async function pruneAll(store: EventStore, now: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

type EventPage = { events: Array<{ event: { id: string; correlationId: string } }>; next?: string | null };

describe('GET /api/events?state=delivered paging while retention prunes', () => {
  // What finance saw: a script exporting the delivered events page by page (`after` = the last id
  // of the previous page) for the month's billing check stopped at the retention edge with an
  // empty page — "done" — while the results of the accessions not billed in full, kept past the
  // age for exactly that check, were still in the store, older than that page. Retention had
  // pruned the event the script's cursor named between two pages, and the listing answered
  // "nothing comes after an event it does not know". Broke: the paging promise of /api/events
  // (status/README.md: `after` continues from that event's completion towards older ones).
  it('continues from the place of an event pruned between two pages', async () => {
    const open = new Set(['HOLD-0', 'HOLD-1', 'HOLD-2', 'HOLD-3', 'HOLD-4']);
    const store = await tmp.open({ retentionHold: billingHold(open) });
    await backlogDelivered(store);
    const base = await serve(store);

    const page1 = (await requestJson(`${base}/api/events?state=delivered&limit=10`)).json as EventPage;
    expect(page1.events.map((e) => e.event.correlationId)).toEqual(['FIN-9', 'FIN-8', 'FIN-7', 'FIN-6', 'FIN-5', 'FIN-4', 'FIN-3', 'FIN-2', 'FIN-1', 'FIN-0']);
    const cursor = page1.events.at(-1)!.event.id;

    // A month on, the minute pass of retention runs before the script asks for the next page.
    await pruneAll(store, Date.now() + 31 * DAY_MS);
    expect((await requestJson(`${base}/api/events/${cursor}`)).status, 'the cursor event was pruned').toBe(404);

    const page2 = (await requestJson(`${base}/api/events?state=delivered&limit=10&after=${cursor}`)).json as EventPage;
    expect(page2.events.map((e) => e.event.correlationId), 'the held results, older than the page before').toEqual(['HOLD-4', 'HOLD-3', 'HOLD-2', 'HOLD-1', 'HOLD-0']);
  });

  // The same after a restart of the gateway between two pages: the page's `next` (additive) names
  // the place itself, not only the event.
  it('continues from `next` after a restart, the cursor event pruned', async () => {
    const open = new Set(['HOLD-0', 'HOLD-1', 'HOLD-2', 'HOLD-3', 'HOLD-4']);
    let store = await tmp.open({ retentionHold: billingHold(open) });
    await backlogDelivered(store);
    let base = await serve(store);
    const page1 = (await requestJson(`${base}/api/events?state=delivered&limit=10`)).json as EventPage;
    expect(page1.events).toHaveLength(10);
    expect(typeof page1.next, 'a full page names where the next one starts').toBe('string');

    await server!.stop();
    server = undefined;
    await store.close();
    store = await tmp.open({ retentionHold: billingHold(open) });
    await pruneAll(store, Date.now() + 31 * DAY_MS);
    base = await serve(store);

    const page2 = (await requestJson(`${base}/api/events?state=delivered&limit=10&after=${encodeURIComponent(page1.next!)}`)).json as EventPage;
    expect(page2.events.map((e) => e.event.correlationId)).toEqual(['HOLD-4', 'HOLD-3', 'HOLD-2', 'HOLD-1', 'HOLD-0']);
    expect(page2.next, 'a short page is the end').toBeNull();
  });
});

describe('GET /api/messages?endpoint= on a large store', () => {
  // What IT saw: picking the analyzer xn-1 (three messages, last week) in the page's message
  // browser took seconds and slowed intake: the listing read the record of every message in the
  // log — here 6,000 of the LIS link's — from disk to keep xn-1's three, on every request. Broke:
  // the status API must not cost the lab's intake a full read of the store per click (DESIGN.md
  // §1: status observes, intake first). Counted in records read from the message log.
  it('reads a bounded number of records per request, and `next` leads to the rest', async () => {
    const store = await tmp.open();
    for (let i = 0; i < 3; i++) await store.commit(inboundMessage(`XN-${i}`, { endpoint: 'xn-1', kind: 'astm', dedupKey: `astm|xn-1|${i}` }), []);
    for (let chunk = 0; chunk < 12; chunk++) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => store.commit(inboundMessage(`L-${chunk}-${i}`), [])));
    }
    const base = await serve(store);
    const reads = vi.spyOn(MessageLog.prototype, 'read');

    const found: string[] = [];
    let before: string | null | undefined;
    let requests = 0;
    let mostReads = 0;
    do {
      reads.mockClear();
      const query = `${base}/api/messages?endpoint=xn-1&limit=50${before ? `&before=${before}` : ''}`;
      const page = (await requestJson(query)).json as { messages: Array<{ controlId: string; endpoint: string }>; next: string | null };
      requests++;
      mostReads = Math.max(mostReads, reads.mock.calls.length);
      for (const m of page.messages) {
        expect(m.endpoint).toBe('xn-1');
        found.push(m.controlId);
      }
      before = page.next;
    } while (before && requests < 20);

    expect(found, 'every message of xn-1, newest first').toEqual(['XN-2', 'XN-1', 'XN-0']);
    expect(requests, 'the first page stopped at its read budget, `next` went on').toBeGreaterThan(1);
    expect(mostReads, 'records read by one request').toBeLessThanOrEqual(5_000);
  });
});

describe('GET /api/events?state=discarded on a store of delivered events', () => {
  // What IT saw: `lab-gateway events list --state discarded` (the two events an administrator
  // discarded last month) took a long time and slowed intake: the delivered and discarded events
  // share one index by completion time, and the listing read every event in it — with its body,
  // from the message log — to keep the two discarded ones, on every request. Broke: the status API
  // must not cost the lab's intake a full read of the store per request (DESIGN.md §1: status
  // observes, intake first). Counted in records read from the message log, after a restart (no
  // body cached).
  it('reads a bounded number of records per request, and `next` leads to the rest', async () => {
    let store = await tmp.open();
    const discarded: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await store.commit(inboundMessage(`D-${i}`), [resultValidated(`DISC-${i}`, `k-disc-${i}`)]);
      await store.discard(r.eventIds[0]!, 'token:test@127.0.0.1', 'entered by hand in Odoo');
      discarded.push(r.eventIds[0]!);
    }
    for (let chunk = 0; chunk < 12; chunk++) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => store.commit(inboundMessage(`R-${chunk}-${i}`), [resultValidated(`R-${chunk}-${i}`, `k-r-${chunk}-${i}`)])));
      for (;;) {
        const leases = await store.lease({ limit: 500 });
        if (leases.length === 0) break;
        await Promise.all(leases.map((l) => store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })))));
      }
    }
    expect(store.stats().delivered).toBe(6000);
    await store.close();
    store = await tmp.open();
    const base = await serve(store);
    const reads = vi.spyOn(MessageLog.prototype, 'read');

    const found: string[] = [];
    let after: string | null | undefined;
    let requests = 0;
    let mostReads = 0;
    do {
      reads.mockClear();
      const page = (await requestJson(`${base}/api/events?state=discarded&limit=50${after ? `&after=${encodeURIComponent(after)}` : ''}`)).json as EventPage;
      requests++;
      mostReads = Math.max(mostReads, reads.mock.calls.length);
      found.push(...page.events.map((e) => e.event.id));
      after = page.next;
    } while (after && requests < 20);

    expect(found, 'both discarded events, newest first').toEqual([...discarded].reverse());
    expect(mostReads, 'records read by one request').toBeLessThanOrEqual(5_000);
    expect(requests, 'the first page stopped at its read budget, `next` went on').toBeGreaterThan(1);

    // `lab-gateway events list` follows `next` until it has its --limit or the listing ends: it
    // must not print "no events" because the first page stopped at its budget.
    const cli = await runCli(cliSource, ['events', 'list', '--state', 'discarded', '--url', base]);
    expect(cli.code, cli.err).toBe(0);
    expect(cli.out.split('\n').filter((l) => l.includes('discarded')).map((l) => l.split(' ')[0])).toEqual([...discarded].reverse());
  });
});
