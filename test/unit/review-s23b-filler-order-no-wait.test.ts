/**
 * An order of a LIS link whose results are looked up by their order's other number, read while
 * such a result is being committed (hl7/order-numbers.ts, README "A result that came before its
 * order", cost): the intake (Hl7Intake) on a real store (LevelDB in a temp dir) whose writes are
 * held at LevelDB (its own hook; answered once written), as a slow disk holds them.
 */
import { describe, expect, it, vi } from 'vitest';
import { Hl7Intake } from '../../gateway/src/ingress/mllp/hl7-intake.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { holdLevelWrites, until } from '../fixtures/astm-link/wait.ts';
import { endpointConfig } from '../fixtures/hl7/helpers.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-filler-order-no-wait-', { pruneIntervalMs: 0, minFreeBytes: 0, answerAtCommitPoint: false });
const meta = { receivedAt: new Date().toISOString(), remoteAddress: '127.0.0.1:5000' };

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;
const order = (id: string, placer: string, filler: string): Buffer =>
  Buffer.from([MSH('ORM^O01^ORM_O01', id), 'PID|1||MRN-77^^^LAB^MR', `ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|1|${placer}|${filler}|GLU^GLU test`].join('\r') + '\r', 'latin1');
const result = (id: string, filler: string): Buffer =>
  Buffer.from(
    [MSH('ORU^R01^ORU_R01', id), 'PID|1||MRN-77^^^LAB^MR', `ORC|RE||${filler}`, `OBR|1||${filler}|GLU^GLU test|||20260301100000|||||||||||||||20260301110000|||F`, 'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F'].join('\r') + '\r',
    'latin1',
  );

describe('an order read while a result looked up by its other number is being committed', () => {
  /**
   * A LIS whose results carry only the filler number has each result looked up. Before, an order
   * carrying a filler number read while such a result was being committed (another connection of
   * the link, or pipelined) had its commit issued only once that result's was written, naming the
   * result's number or not, and every later message of the link queued behind it: with a slow disk
   * the link's orders went one write at a time behind its results. Now an order naming no number
   * a result came under without its order is committed at once, beside the result.
   */
  it('is committed without waiting for the result, when it names no waiting number', async () => {
    const store = await tmp.open();
    const intake = new Hl7Intake({ config: endpointConfig(), store, log: silentLogger });
    // The link's order carrying a filler number: its results are looked up.
    expect((await intake.handleFrame(order('O-0', '70600', 'LF-9600'), meta)).results[0]?.outcome).toBe('accepted');
    const commits = vi.spyOn(store, 'commit');
    const hold = holdLevelWrites(store);
    // The result of 70600 naming only LF-9600: looked up, found, its commit held at LevelDB.
    const r = intake.handleFrame(result('R-1', 'LF-9600'), meta);
    await until(() => hold.held() === 1);
    // Another order carrying a filler number, read while the result is being committed.
    const o = intake.handleFrame(order('O-1', '70601', 'LF-9601'), meta);
    try {
      await until(() => commits.mock.calls.length === 2, 5_000).catch(() => undefined);
      expect(commits.mock.calls.map(([m]) => m.controlId)).toEqual(['R-1', 'O-1']);
    } finally {
      hold.release();
    }
    expect((await r).results[0]?.outcome).toBe('accepted');
    expect((await o).results[0]?.outcome).toBe('accepted');
    const validated = (await store.listEvents({ limit: 20 })).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['70600']);
  });

  /** An order naming the number of a result being committed that found no order waits for it, and gets its copy. */
  it('waits for the result it names, and gets it', async () => {
    const store = await tmp.open();
    const intake = new Hl7Intake({ config: endpointConfig(), store, log: silentLogger });
    expect((await intake.handleFrame(order('O-0', '70610', 'LF-9610'), meta)).results[0]?.outcome).toBe('accepted');
    const hold = holdLevelWrites(store);
    const r = intake.handleFrame(result('R-1', 'LF-9611'), meta);
    await until(() => hold.held() >= 1);
    const o = intake.handleFrame(order('O-1', '70611', 'LF-9611'), meta);
    hold.release();
    expect((await r).results[0]?.outcome).toBe('accepted');
    expect((await o).results[0]?.outcome).toBe('accepted');
    const validated = (await store.listEvents({ limit: 20 })).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId).sort()).toEqual(['70611', 'LF-9611']);
  });
});
