/**
 * A tube barcode is resolved to its LIS order's accession before an analyzer's message is
 * committed and acknowledged (astm/accessions.ts `resolveAccessions`): one or more store reads,
 * whose time depends on the tube (a barcode with a stored order scans the message index, a tube
 * labelled with the accession is found at once, an unknown barcode finds nothing).
 *
 * - Order: an analyzer that sends several messages on one connection without waiting (an HL7
 *   analyzer pipelining over MLLP; an ASTM analyzer without a link protocol) still has them
 *   committed in arrival order (message ids, the queue of every partition) and acknowledged in
 *   arrival order, whatever each resolution costs (DESIGN.md §2, order within a partition). The
 *   message log's reads are slowed on purpose (real files, a hooked read), so that a later,
 *   quicker message would overtake an earlier, slower one if the steps ran side by side.
 * - Bound: a look-up that outlasts its budget (a barcode named by thousands of messages on a slow
 *   disk) is stopped, the tube keeps its barcode as the accession, with a warning: the ACK never
 *   waits near the 15 s an ASTM sender gives the receiver (LIS1-A §6.5.2).
 *
 * Real parts: a whole gateway (real LevelDB in a temp dir, real MLLP and TCP sockets, the E1381
 * analyzer simulator of test/fixtures), the real store for the bound.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveAccessions } from '../../gateway/src/astm/accessions.ts';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { partitionKeys } from '../../gateway/src/events/keys.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer } from '../fixtures/order-download.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';
import { hookFileHandle } from '../fixtures/store/file-handle-hook.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

// ------------------------------------------------------------------------------------------------
// helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An LIS order (OML^O21) for `accession`, its tube labelled `barcode` (SPM-2). */
function oml(controlId: string, accession: string, barcode: string, tests: string[]): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||OML^O21|${controlId}|P|2.5`,
      'PID|1||MRN-7^^^LAB^MR',
      ['ORC', 'NW', accession, ...Array(18).fill(''), 'CLINIC-A'].join('|'),
      ...tests.map((t, i) => `OBR|${i + 1}|${accession}||${t}^${t}^L`),
      `SPM|1|${barcode}||SER^Serum`,
      '',
    ].join('\r'),
    'latin1',
  );
}

/** Mindray BS test numbers of the mindray-bs-series profile. */
const BS_TEST = { ALT: '1', GLU: '3', CREA: '4' } as const;

/** A Mindray BS patient ORU^R01 (MSH-16 = 0), one test, OBR-2 the tube's barcode, OBX-11 the result status. */
function bsOru(controlId: string, tube: string, test: keyof typeof BS_TEST, value: string, status: 'P' | 'F' = 'F'): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|Mindray|BS-200|||20261125110000||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
      'PID|1|854||31|Anon||19830719000000|F',
      `OBR|1|${tube}|31|Mindray^BS-200|N||20261125105500||||||||serum`,
      `OBX|1|NM|${BS_TEST[test]}|${test}|${value}|U/L|-||||${status}|||||`,
      '',
    ].join('\r'),
    'latin1',
  );
}

/** An ASTM result message (generic-astm) for one tube: one R record per test. */
function astmResult(controlId: string, tube: string, tests: Array<[string, string]>): string[] {
  return [
    `H|\\^&|${controlId}||an-1|||||host||P|LIS2-A2|20261125110000`,
    'P|1',
    `O|1|${tube}||${tests.map(([t]) => `^^^${t}`).join('\\')}|R`,
    ...tests.map(([t, v], i) => `R|${i + 1}|^^^${t}|${v}|mmol/L||||F||op||2026112511${String(i).padStart(2, '0')}00`),
    'L|1|N',
  ];
}

/**
 * Every message-log read of this process made slow, by a delay that varies from read to read
 * (a busy disk): the index scan of a barcode with a stored order reads its LIS message from the
 * log, a tube labelled with the accession reads nothing there.
 */
async function slowLogReads(dir: string): Promise<{ calls: () => number; restore: () => void }> {
  return hookFileHandle(dir, 'read', async (call, original) => {
    await sleep([40, 5, 25, 0, 15][call % 5] as number);
    return original();
  });
}

/**
 * What the store holds from `endpoint`, in commit order: the control ids of its messages (message
 * ids are taken at the commit), and, per partition, the control ids of the messages whose events
 * the queue holds, in queue order (as the relay would lease them).
 */
async function committed(gateway: Gateway, endpoint: string): Promise<{ messages: string[]; partitions: Map<string, string[]> }> {
  const store = gateway.store!;
  const stored = (await store.listMessages({ endpoint, limit: 1000 })).reverse();
  const controlIdOf = new Map(stored.map((m) => [m.id, m.controlId ?? '?']));
  const partitions = new Map<string, string[]>();
  // The relay is off: nothing else leases. One lease takes every partition's whole queue in order,
  // a day ahead so that the reagent partitions' micro-batch windows have passed.
  const leases = await store.lease({ limit: 10_000, maxPerPartition: 10_000, sameTypeOnly: false, now: Date.now() + 86_400_000 });
  for (const lease of leases) {
    const ids = lease.events.map((e) => e.event.source.messageId).filter((id): id is string => id !== undefined && controlIdOf.has(id));
    if (ids.length > 0) partitions.set(lease.partitionKey, ids.map((id) => controlIdOf.get(id) as string));
  }
  return { messages: stored.map((m) => m.controlId ?? '?'), partitions };
}

/** True when `seen` lists control ids in the order they appear in `arrival` (repeats allowed). */
function inArrivalOrder(seen: string[], arrival: string[]): boolean {
  const at = seen.map((c) => arrival.indexOf(c));
  return at.every((p, i) => p >= 0 && (i === 0 || p >= (at[i - 1] as number)));
}

// ------------------------------------------------------------------------------------------------
// HL7 analyzer

describe('an HL7 analyzer (Mindray BS over MLLP) pipelining results whose barcodes resolve at different speeds', () => {
  it('has them committed and acknowledged in arrival order, every partition in arrival order', async () => {
    const { gateway, stop } = await startTestGateway('resolve-order-hl7', {
      analyzers: [{ id: 'bs-1', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
    });
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    let bs: MllpClient | undefined;
    let slow: Awaited<ReturnType<typeof slowLogReads>> | undefined;
    try {
      // Orders ACC-1…ACC-4, their tubes labelled BC-1…BC-4 (the analyzer reads the barcode).
      for (let k = 1; k <= 4; k++) {
        expect((await lis.send(oml(`O-${k}`, `ACC-${k}`, `BC-${k}`, ['ALT', 'GLU', 'CREA']))).toString('latin1')).toContain(`MSA|AA|O-${k}`);
      }
      // Each barcode tube's look-up scans the message index and reads the LIS message from the
      // log (slow); a tube labelled ACC-k is found by its accession at once; BC-404 has no order.
      const plan: Array<[string, keyof typeof BS_TEST, string, 'P' | 'F']> = [
        ['BC-1', 'ALT', '30', 'P'], // a preliminary result, then…
        ['ACC-1', 'GLU', '5.1', 'F'], // …another tube of the same order, labelled with its accession (fast), then…
        ['BC-1', 'CREA', '71', 'F'], // …another result of the first tube
        ['BC-404', 'GLU', '4.0', 'F'], // no order known
        ['BC-2', 'CREA', '80', 'F'],
        ['ACC-2', 'ALT', '22', 'F'],
        ['ACC-3', 'GLU', '6.0', 'F'],
        ['BC-3', 'CREA', '77', 'F'],
        ['BC-3', 'ALT', '18', 'F'],
        ['ACC-4', 'CREA', '90', 'F'],
        ['BC-4', 'GLU', '4.4', 'F'],
        ['ACC-1', 'CREA', '70', 'F'],
        ['BC-404', 'ALT', '12', 'F'],
        ['BC-2', 'GLU', '5.5', 'F'],
        ['ACC-3', 'ALT', '15', 'F'],
        ['BC-4', 'ALT', '19', 'F'],
      ];
      const arrival = plan.map((_, i) => `R-${i + 1}`);
      slow = await slowLogReads(gateway.addresses().dataDir);
      bs = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-1']!.port! });
      // Every message is written before the first reply comes back.
      const client = bs;
      const replies = await Promise.all(plan.map(([tube, test, value, status], i) => client.send(bsOru(arrival[i] as string, tube, test, value, status))));
      expect(slow.calls(), 'the look-ups read the message log (the slowed reads took part)').toBeGreaterThan(0);
      slow.restore();
      slow = undefined;

      // ACKs in arrival order, each for its own message.
      expect(replies.map((r) => /MSA\|(\w+)\|([^|\r]*)/.exec(r.toString('latin1'))?.slice(1, 3).join(' '))).toEqual(arrival.map((c) => `AA ${c}`));

      const { messages, partitions } = await committed(gateway, 'bs-1');
      // Commit order (message ids are taken at the commit) = arrival order.
      expect(messages).toEqual(arrival);
      // The barcodes were resolved: BC-1's results are in order ACC-1's partition, beside the
      // result of the tube labelled ACC-1, in arrival order.
      expect(partitions.get(partitionKeys.order('ACC-1'))).toEqual(['R-1', 'R-1', 'R-2', 'R-2', 'R-3', 'R-12']);
      expect(partitions.get(partitionKeys.order('BC-404'))?.[0]).toBe('R-4');
      // Every partition's queue (orders, reagent lots) holds its events in arrival order.
      for (const [partition, seen] of partitions) expect(inArrivalOrder(seen, arrival), `${partition}: ${seen.join(' ')}`).toBe(true);
      expect(partitions.size).toBeGreaterThan(5);
    } finally {
      slow?.restore();
      await bs?.close().catch(() => undefined);
      await lis.close().catch(() => undefined);
      await stop();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// ASTM analyzers

describe('ASTM analyzers whose barcodes resolve at different speeds', () => {
  const tubes: Array<[string, Array<[string, string]>]> = [
    ['BC-1', [['GLU', '5.0']]],
    ['ACC-1', [['CRP', '3']]],
    ['BC-404', [['GLU', '4.1']]],
    ['BC-2', [['GLU', '6.2'], ['CRP', '8']]],
    ['ACC-2', [['GLU', '5.9']]],
    ['BC-1', [['CRP', '4']]],
    ['ACC-3', [['GLU', '7.0']]],
    ['BC-3', [['CRP', '1']]],
    ['BC-2', [['GLU', '6.3']]],
    ['ACC-1', [['GLU', '5.2']]],
  ];
  const arrival = tubes.map((_, i) => `A-${i + 1}`);

  /** A gateway with the LIS orders ACC-1…ACC-3 (tubes BC-1…BC-3) stored, and the analyzer `analyzer`. */
  async function withOrders(id: string, analyzer: Record<string, unknown>): Promise<Awaited<ReturnType<typeof startTestGateway>>> {
    const started = await startTestGateway(id, { analyzers: [analyzer] });
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: started.gateway.addresses().hl7.lis!.port });
    try {
      for (let k = 1; k <= 3; k++) expect((await lis.send(oml(`O-${k}`, `ACC-${k}`, `BC-${k}`, ['GLU', 'CRP']))).toString('latin1')).toContain(`MSA|AA|O-${k}`);
    } finally {
      await lis.close().catch(() => undefined);
    }
    return started;
  }

  function expectArrivalOrder(c: { messages: string[]; partitions: Map<string, string[]> }): void {
    expect(c.messages).toEqual(arrival);
    // BC-1's and the ACC-1 tube's results share order ACC-1's partition, in arrival order (each
    // tube's specimen.received with its first message).
    expect(c.partitions.get(partitionKeys.order('ACC-1'))).toEqual(['A-1', 'A-1', 'A-2', 'A-2', 'A-6', 'A-10']);
    for (const [partition, seen] of c.partitions) expect(inArrivalOrder(seen, arrival), `${partition}: ${seen.join(' ')}`).toBe(true);
  }

  it('without a link protocol (records only, nothing waited for): messages sent in one go are committed in arrival order', async () => {
    const { gateway, stop } = await withOrders('resolve-order-ro', { id: 'an-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, overrides: { lowLevel: 'records-only' } });
    const slow = await slowLogReads(gateway.addresses().dataDir);
    const socket = net.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['an-1']!.port! });
    socket.on('error', () => undefined);
    try {
      await once(socket, 'connect');
      socket.write(Buffer.from(tubes.map(([tube, tests], i) => astmResult(arrival[i] as string, tube, tests).join('\r\n') + '\r\n').join(''), 'latin1'));
      await waitFor(async () => (await gateway.store!.listMessages({ endpoint: 'an-1', limit: 100 })).length >= arrival.length);
      expect(slow.calls()).toBeGreaterThan(0);
      slow.restore();
      expectArrivalOrder(await committed(gateway, 'an-1'));
    } finally {
      slow.restore();
      socket.destroy();
      await stop();
    }
  });

  it('over E1381 (each message ACKed after its commit): messages sent back to back are committed in arrival order', async () => {
    const { gateway, stop } = await withOrders('resolve-order-e1381', { id: 'an-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    const slow = await slowLogReads(gateway.addresses().dataDir);
    const analyzer = await connectAnalyzer(gateway, 'an-1');
    try {
      for (const [i, [tube, tests]] of tubes.entries()) {
        const { replies } = await analyzer.sim.sendMessage(astmResult(arrival[i] as string, tube, tests));
        expect(replies, `message ${arrival[i]}`).not.toContain('NAK');
      }
      expect(slow.calls()).toBeGreaterThan(0);
      slow.restore();
      expectArrivalOrder(await committed(gateway, 'an-1'));
    } finally {
      slow.restore();
      analyzer.socket.destroy();
      await stop();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// the bound

describe('the look-up before the ACK is bounded', () => {
  it('a barcode whose look-up outlasts its budget keeps its id as the accession, with a warning, and the look-up stops reading', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-resolve-bound-'));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0 });
    let slow: Awaited<ReturnType<typeof hookFileHandle>> | undefined;
    try {
      const order: DraftEvent = {
        type: 'order.created',
        occurredAt: '2026-11-25T10:00:00.000Z',
        receivedAt: '2026-11-25T10:00:00.000Z',
        idempotencyKey: 'lis|order|ACC-9',
        correlationId: 'ACC-9',
        partitionKey: partitionKeys.order('ACC-9'),
        source: { kind: 'hl7', endpoint: 'lis' },
        data: { accession: 'ACC-9', orderingClientRef: 'CLINIC-A', specimenId: 'BC-9', tests: [{ code: 'GLU' }] },
      };
      await store.commit(inboundMessage('ORD-9', { searchTerms: ['ACC-9', 'BC-9'] }), [order]);
      // 600 later messages name the barcode (the analyzer's own traffic), so the order is three
      // pages deep in the message index: every record on the way is read from the log.
      for (let i = 0; i < 600; i++) await store.commit(inboundMessage(`Q-${i}`, { searchTerms: ['BC-9'] }), []);
      const profile = loadProfile('generic-astm');
      const text = astmResult('A-1', 'BC-9', [['GLU', '5.0']]).join('\r');
      const normalized = (): ReturnType<typeof normalizeAstmMessage> => normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt: new Date().toISOString() });

      // With a disk that answers at once, the barcode resolves to ACC-9.
      const quick = await resolveAccessions(normalized(), store);
      expect(quick.events.find((e) => e.type === 'test.completed')?.correlationId).toBe('ACC-9');

      // A disk that stops answering (every log read held until released): without a bound the
      // look-up, and the ACK behind it, would wait as long as the disk.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      slow = await hookFileHandle(dir, 'read', async (_call, original) => {
        await released;
        return original();
      });
      const bounded = await resolveAccessions(normalized(), store, { budgetMs: 300 });
      expect(bounded.events.find((e) => e.type === 'test.completed')?.correlationId, 'the barcode was resolved although its look-up was given up').toBe('BC-9');
      expect(bounded.warnings.join('\n')).toMatch(/BC-9.*stopped after 300 ms/);
      // The look-up given up is stopped, not left scanning: once the disk answers again, the page
      // it was reading completes and no further page is read.
      const readsAtBudget = slow.calls();
      expect(readsAtBudget).toBeGreaterThan(0);
      release();
      await sleep(500);
      expect(slow.calls(), 'the abandoned look-up went on reading the message index').toBe(readsAtBudget);
    } finally {
      slow?.restore();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
