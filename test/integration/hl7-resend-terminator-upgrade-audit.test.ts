/**
 * Upgrade: a message the previous release took in a form whose ends it hashed as they came (no
 * final CR, an empty line after it) is sent again, in the same form, after the upgrade. The
 * previous release's intake and store (its sources at PREVIOUS, from `git archive`) write to a
 * LevelDB data dir over real MLLP; the current tree's open the same dir. The resend must find the
 * message it was: the stored ACK, byte for byte, and no event made again.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { endpointConfig, repoRoot } from '../fixtures/hl7/helpers.ts';
import { adtA01, glucoseOru as oru } from '../fixtures/hl7/messages.ts';

const run = promisify(execFile);

/** The release before the fingerprint read a message's ends alike (HEAD when this test was written). */
const PREVIOUS = 'ccfd7de';

let work: string;
let prevSrc: string;

/**
 * A command run to its end within 30 s (killed after), failing with its stderr and `what` named:
 * git missing, the commit absent (a shallow clone) or tar failing stops the test with why, at once.
 */
async function step(what: string, file: string, args: string[]): Promise<void> {
  try {
    await run(file, args, { timeout: 30_000, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
    const why = e.code === 'ENOENT' ? `${file} is not installed` : e.killed ? 'it took over 30 s' : (e.stderr || e.message).trim();
    throw new Error(`${what}: ${why}`);
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'lgw-fp-upgrade-'));
  prevSrc = path.join(work, 'prev');
  await mkdir(prevSrc);
  const tar = path.join(work, 'prev.tar');
  await step(`the previous release's commit ${PREVIOUS} must be in the clone (a full clone of main; a shallow one lacks it)`, 'git', ['-C', repoRoot, 'cat-file', '-e', `${PREVIOUS}^{commit}`]);
  await step(`git archive of ${PREVIOUS}`, 'git', ['-C', repoRoot, 'archive', '--format=tar', '-o', tar, PREVIOUS, 'gateway/src']);
  await step(`unpacking the sources of ${PREVIOUS}`, 'tar', ['-x', '-f', tar, '-C', prevSrc]);
  await symlink(path.join(repoRoot, 'node_modules'), path.join(prevSrc, 'node_modules'));
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface StoreLike {
  close(): Promise<void>;
}
interface EndpointLike {
  start(): Promise<void>;
  stop(deadline?: number): Promise<void>;
  address(): { port: number } | undefined;
}

/** Send each message on one connection to an endpoint; the replies. */
async function sendAll(endpoint: EndpointLike, messages: string[]): Promise<Buffer[]> {
  await endpoint.start();
  const client = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
  const replies: Buffer[] = [];
  try {
    for (const m of messages) replies.push(await client.send(Buffer.from(m, 'latin1')));
  } finally {
    await client.close();
    await endpoint.stop(2_000);
  }
  return replies;
}

/** The previous release's store and intake on `dataDir` take the messages, one connection; its replies. */
async function takenByPrevious(dataDir: string, messages: string[]): Promise<Buffer[]> {
  const prevStore = await import(path.join(prevSrc, 'gateway/src/store/event-store.ts'));
  const prevEndpoint = await import(path.join(prevSrc, 'gateway/src/ingress/mllp/mllp-endpoint.ts'));
  const prevTelemetry = await import(path.join(prevSrc, 'gateway/src/telemetry.ts'));
  const old = (await prevStore.EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 })) as StoreLike;
  try {
    return await sendAll(new prevEndpoint.MllpEndpoint({ config: endpointConfig(), store: old, telemetry: new prevTelemetry.Telemetry(), log: silentLogger }) as EndpointLike, messages);
  } finally {
    await old.close();
  }
}

describe('HL7 resend across the upgrade of the fingerprint', () => {
  it('a message taken without its final CR (or with an empty line after it) by the previous release, resent so: a duplicate', async () => {
    const dataDir = await mkdtemp(path.join(work, 'data-'));
    const noCr = oru('U-1').slice(0, -1);
    const blankAfter = `${oru('U-2')}\r\n`;
    const standard = oru('U-3');

    // The previous release takes the three messages.
    const before = await takenByPrevious(dataDir, [noCr, blankAfter, standard]);

    // The current release on the same data dir: the LIS resends them as they were, MSH-7 refreshed.
    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      const refreshed = (m: string): string => m.replace('20240101120000', '20240101121500');
      const after = await sendAll(new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log: silentLogger }), [noCr, blankAfter, standard].map(refreshed));
      for (const [i, reply] of after.entries()) expect(reply.equals(before[i] as Buffer)).toBe(true);
      expect(store.intake()).toMatchObject({ accepted: 3, duplicates: 3 });
      const events = (await store.listEvents({ limit: 100 })).map((e) => `${e.event.type} ${e.event.correlationId}`);
      expect(events.sort()).toEqual(['result.validated ACC-U-1', 'result.validated ACC-U-2', 'result.validated ACC-U-3']);
    } finally {
      await store.close();
    }
  }, 60_000);

  /**
   * Past the upgrade window (`store.retentionDays` after the first opening, here 0): the look-ups
   * under the forms a file gives a message stop, but a message the previous release took without
   * its final CR and the LIS resends in that same form is still looked up under the one key that
   * release gave it, as before the window: its events' keys outlive retention (tombstones), so the
   * previous release never made a resent result's events again. Before, past the window it was a
   * new message: a second result.validated for Odoo, a second invoice line to post.
   */
  it('past the upgrade window, a message taken without its final CR by the previous release and resent so: still a duplicate', async () => {
    const dataDir = await mkdtemp(path.join(work, 'data-'));
    const noCr = oru('X-1').slice(0, -1);
    const [before] = await takenByPrevious(dataDir, [noCr]);

    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    try {
      expect(store.mayHoldEarlierReleaseKeys()).toBe(false);
      const [after] = await sendAll(new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log: silentLogger }), [noCr.replace('20240101120000', '20240101121500')]);
      expect(after?.equals(before as Buffer)).toBe(true);
      expect(store.intake()).toMatchObject({ accepted: 1, duplicates: 1 });
      const events = (await store.listEvents({ limit: 100 })).map((e) => `${e.event.type} ${e.event.correlationId}`);
      expect(events).toEqual(['result.validated ACC-X-1']);
    } finally {
      await store.close();
    }
  }, 60_000);

  /**
   * The other way round across the upgrade: the previous release took the message from a file (no
   * final CR, or an empty line after it) and keyed it as it came; the engine resends it after the
   * upgrade in the usual form (one CR after each segment). Before, the usual form hashed otherwise,
   * was looked up under nothing and was committed again: a second result.validated for Odoo.
   */
  it('a message taken without its final CR (or with an empty line after it) by the previous release, resent in the usual form: a duplicate', async () => {
    const dataDir = await mkdtemp(path.join(work, 'data-'));
    const noCr = oru('V-1').slice(0, -1);
    const blankAfter = `${oru('V-2')}\r`;
    const crlfBlankAfter = `${oru('V-3').replaceAll('\r', '\r\n')}\r\n`;

    const before = await takenByPrevious(dataDir, [noCr, blankAfter, crlfBlankAfter]);

    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      // The engine's own sends: one CR after each segment, MSH-7 refreshed.
      const usual = ['V-1', 'V-2', 'V-3'].map((id) => oru(id, '20240101121500'));
      const after = await sendAll(new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log: silentLogger }), usual);
      for (const [i, reply] of after.entries()) expect(reply.equals(before[i] as Buffer)).toBe(true);
      expect(store.intake()).toMatchObject({ accepted: 3, duplicates: 3 });
      const events = (await store.listEvents({ limit: 100 })).map((e) => `${e.event.type} ${e.event.correlationId}`);
      expect(events.sort()).toEqual(['result.validated ACC-V-1', 'result.validated ACC-V-2', 'result.validated ACC-V-3']);
    } finally {
      await store.close();
    }
  }, 60_000);

  /**
   * The same for a message without events (ADT): it has no event key to find it by, so it is looked
   * up by its dedup key under the earlier fingerprints. Before, it was stored a second time (the
   * message browser showed it twice and the duplicate counter missed it).
   */
  it('an ADT taken without its final CR (or with an empty line after it) by the previous release, resent in the usual form: a duplicate', async () => {
    const dataDir = await mkdtemp(path.join(work, 'data-'));
    const before = await takenByPrevious(dataDir, [
      adtA01('W-1').slice(0, -1),
      `${adtA01('W-2')}\r`,
    ]);

    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      // The store was written by an earlier release: its messages may be resent under their keys.
      expect(store.mayHoldEarlierReleaseKeys()).toBe(true);
      const after = await sendAll(new MllpEndpoint({ config: endpointConfig(), store, telemetry: new Telemetry(), log: silentLogger }), [adtA01('W-1'), adtA01('W-2')]);
      for (const [i, reply] of after.entries()) expect(reply.equals(before[i] as Buffer)).toBe(true);
      expect(store.intake()).toMatchObject({ accepted: 2, duplicates: 2 });
      const stored = (await store.listMessages({ endpoint: 'lis', limit: 100 })).map((m) => m.controlId);
      expect(stored.sort()).toEqual(['W-1', 'W-2']);
    } finally {
      await store.close();
    }
  }, 60_000);
});
