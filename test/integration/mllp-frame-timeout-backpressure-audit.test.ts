/**
 * The bound on a frame that never ends (hl7[].frameTimeoutMs) while the gateway itself does not
 * read (gateway/src/ingress/mllp/README.md "A frame that never ends", "… while the gateway is the
 * one not reading").
 *
 * The bound cuts a frame whose end block does not come. When the gateway stops reading — frames
 * await their commit in a slow store (maxInFlight), or replies their reader (a LIS that does not
 * read its ACKs) — the rest of a frame it began to read waits in the kernel: the frame cannot end,
 * by no fault of the sender, and must not be cut. Once reading resumes, the bound applies again.
 *
 * A whole gateway in this process (a real LevelDB store in a temp dir, held through the store's
 * own write hook), real TCP sockets, the kernel's socket queues read from /proc/net/tcp to know
 * what the gateway has read. No timed assertion: the tests wait for replies, the socket's 'close',
 * log lines and the kernel's queues; a wait of several bounds is only ever followed by an
 * assertion that nothing happened.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { REPLY_BACKLOG_BYTES } from '../../gateway/src/ingress/mllp/mllp-connection.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { acks, CR, FS, type LinkLis, oru, useLinkRig, VT } from '../fixtures/hl7/link-rig.ts';

/** The bound of the links (short, for the test). */
const FRAME_TIMEOUT_MS = 400;
/** MllpConnection's default maxInFlight (the endpoint does not change it). */
const MAX_IN_FLIGHT = 1024;

const rig = useLinkRig('frame-timeout-bp', [{ id: 'lis', listen: { host: '127.0.0.1', port: 0 }, frameTimeoutMs: FRAME_TIMEOUT_MS }]);
const { connect, keptFrom, warningsAbout, logLines, holdCommits } = rig;

const framed = (text: string): Buffer => Buffer.concat([Buffer.of(VT), Buffer.from(text, 'latin1'), Buffer.of(FS, CR)]);

/**
 * An ADT whose receiving application and facility (MSH-5/6) are long: the ACK copies them, so each
 * ACK is ~`pad` bytes and a few hundred outgrow the kernels' buffers and REPLY_BACKLOG_BYTES.
 */
const adt = (id: string, pad: number): string =>
  `MSH|^~\\&|LIS|LAB|${'R'.repeat(pad / 2)}|${'F'.repeat(pad / 2)}|20260301120000||ADT^A08^ADT_A01|${id}|P|2.5\rEVN|A08|20260301120000\rPID|1||MRN-${id}\r`;

/** Resolves once the gateway's process has read every byte this LIS wrote (the kernel holds none). */
async function allRead(lis: LinkLis): Promise<void> {
  await expect.poll(async () => (lis.socket.writableLength === 0 ? await lis.queues() : undefined), { timeout: 60_000, interval: 20 }).toEqual({ unread: 0, unsent: 0 });
}

const cutWarnings = (lis: LinkLis): Array<Record<string, unknown>> => warningsAbout(lis.address).filter((l) => String(l.msg).includes('no end block'));

describe('MLLP: the frame bound while the gateway is the one not reading', () => {
  it('a slow store (frames await their commit, maxInFlight reached): a frame begun before reading paused is not cut, and is answered once the store catches up', async () => {
    const lis = await connect('lis');
    const hold = await holdCommits();
    let released = false;
    try {
      // A pipelining LIS: MAX_IN_FLIGHT - 1 messages, all read by the gateway, none committed.
      const ids = Array.from({ length: MAX_IN_FLIGHT + 1 }, (_, i) => `SLOW-${i}`);
      lis.socket.write(Buffer.concat(ids.slice(0, MAX_IN_FLIGHT - 1).map((id) => framed(oru(id)))));
      await allRead(lis);
      // The next message reaches maxInFlight: reading pauses, with the one after it begun.
      const last = framed(oru(ids[MAX_IN_FLIGHT] as string, 20));
      const half = Math.floor(last.length / 2);
      lis.socket.write(Buffer.concat([framed(oru(ids[MAX_IN_FLIGHT - 1] as string)), last.subarray(0, half)]));
      await allRead(lis);
      // Several bounds while the gateway reads nothing; the rest of the frame comes meanwhile and
      // waits unread (in the kernel, or the socket's buffer of a paused stream).
      await sleep(2 * FRAME_TIMEOUT_MS);
      lis.socket.write(last.subarray(half));
      await sleep(3 * FRAME_TIMEOUT_MS);
      expect(cutWarnings(lis), 'the frame was cut while the gateway did not read').toEqual([]);
      expect(lis.socket.destroyed).toBe(false);
      expect(lis.received().length, 'nothing is answered while the store holds every commit').toBe(0);

      // The store catches up: every message is answered, in order, the begun one included.
      hold.release();
      released = true;
      await expect.poll(() => acks(lis.received()).length, { timeout: 60_000, interval: 50 }).toBe(ids.length);
      expect(acks(lis.received())).toEqual(ids.map((id) => ['AA', id]));
      expect(lis.socket.destroyed).toBe(false);
      expect(cutWarnings(lis)).toEqual([]);
      const kept = await (rig.gateway.store as EventStore).listMessages({ endpoint: 'lis', limit: 2_000 });
      expect(kept.filter((m) => m.remoteAddress === lis.address && m.status === 'rejected')).toEqual([]);
    } finally {
      if (!released) hold.release();
      lis.socket.destroy();
    }
  }, 120_000);

  it('a slow store: once reading resumes the bound applies again to a frame that does not end', async () => {
    const lis = await connect('lis');
    const hold = await holdCommits();
    let released = false;
    try {
      const ids = Array.from({ length: MAX_IN_FLIGHT }, (_, i) => `SLOWCUT-${i}`);
      lis.socket.write(Buffer.concat(ids.slice(0, -1).map((id) => framed(oru(id)))));
      await allRead(lis);
      const open = Buffer.concat([Buffer.of(VT), Buffer.from(oru('SLOWCUT-OPEN'), 'latin1')]);
      lis.socket.write(Buffer.concat([framed(oru(ids.at(-1) as string)), open]));
      await allRead(lis);
      await sleep(4 * FRAME_TIMEOUT_MS);
      expect(cutWarnings(lis)).toEqual([]);
      expect(lis.socket.destroyed).toBe(false);

      hold.release();
      released = true;
      // Every message is answered; the frame left open is cut once the bound has run again.
      await lis.closed;
      expect(acks(lis.received())).toEqual(ids.map((id) => ['AA', id]));
      const [warning] = cutWarnings(lis);
      expect(warning, `log: ${JSON.stringify(warningsAbout(lis.address))}`).toMatchObject({ endpoint: 'lis', bytes: open.length - 1 });
      const kept = (await (rig.gateway.store as EventStore).listMessages({ endpoint: 'lis', limit: 2_000 })).filter((m) => m.remoteAddress === lis.address && m.status === 'rejected');
      expect(kept).toHaveLength(1);
      expect(kept[0]?.rejectReason).toMatch(/incomplete message \(frame-timeout\)/);
    } finally {
      if (!released) hold.release();
    }
  }, 120_000);

  it('a slow store: HL7 without framing begun when reading paused is not cut by the bound while the gateway does not read; its rest, sent meanwhile, is kept with it', async () => {
    const lis = await connect('lis');
    const hold = await holdCommits();
    let released = false;
    try {
      const ids = Array.from({ length: MAX_IN_FLIGHT }, (_, i) => `SLOWPLAIN-${i}`);
      lis.socket.write(Buffer.concat(ids.slice(0, -1).map((id) => framed(oru(id)))));
      await allRead(lis);
      // The message that reaches maxInFlight, then plain HL7 (a LIS switched to no framing midway).
      const plain = Buffer.from(oru('SLOWPLAIN-PLAIN', 6), 'latin1');
      const half = Math.floor(plain.length / 2);
      lis.socket.write(Buffer.concat([framed(oru(ids.at(-1) as string)), plain.subarray(0, half)]));
      await allRead(lis);
      // Several bounds (and several of the unframed quiet timer) while the gateway reads nothing;
      // the rest comes meanwhile and waits unread.
      await sleep(2 * FRAME_TIMEOUT_MS);
      lis.socket.write(plain.subarray(half));
      await sleep(4 * FRAME_TIMEOUT_MS);
      expect(lis.socket.destroyed, 'the connection was cut while the gateway did not read').toBe(false);

      hold.release();
      released = true;
      await lis.closed;
      expect(acks(lis.received())).toEqual(ids.map((id) => ['AA', id]));
      const kept = (await (rig.gateway.store as EventStore).listMessages({ endpoint: 'lis', limit: 2_000 })).filter((m) => m.remoteAddress === lis.address && m.status === 'rejected');
      expect(kept).toHaveLength(1);
      expect(kept[0]?.rejectReason).toMatch(/unframed/);
      const [whole] = await keptFrom('lis', lis.address).then((k) => k.filter((m) => m.status === 'rejected'));
      expect(whole?.raw.toString('latin1'), 'the plain message kept whole, not cut at the pause').toBe(plain.toString('latin1'));
    } finally {
      if (!released) hold.release();
    }
  }, 120_000);

  /**
   * A LIS that pipelines its messages and reads none of its ACKs, and has begun a frame when the
   * gateway stops reading. To have the gateway read that frame's start before it stops, the store
   * holds every commit meanwhile, and the frame's start comes with the message that reaches
   * maxInFlight (reading pauses there, with the frame begun). Once the store catches up, the first
   * messages' ACKs (~64 KiB each) fill the kernels' buffers and REPLY_BACKLOG_BYTES long before
   * half the frames are answered: reading stays paused, now because the LIS reads nothing.
   */
  async function unreadRepliesWithOpenFrame(prefix: string, open: Buffer): Promise<{ lis: LinkLis; ids: string[] }> {
    const lis = await connect('lis');
    lis.socket.pause();
    const pad = 64 * 1024;
    const large = Math.ceil((24 * 1024 * 1024 + REPLY_BACKLOG_BYTES) / pad);
    expect(large).toBeLessThan(MAX_IN_FLIGHT / 2);
    const ids = Array.from({ length: MAX_IN_FLIGHT }, (_, i) => `${prefix}-${i}`);
    const frameOf = (i: number): Buffer => (i < large ? framed(adt(ids[i] as string, pad)) : framed(oru(ids[i] as string)));
    const hold = await holdCommits();
    try {
      for (let i = 0; i < MAX_IN_FLIGHT - 1; i++) lis.socket.write(frameOf(i));
      await allRead(lis);
      lis.socket.write(Buffer.concat([frameOf(MAX_IN_FLIGHT - 1), open]));
      await allRead(lis);
    } finally {
      hold.release();
    }
    const paused = (): boolean => warningsAbout(lis.address).some((l) => /reads none of its replies/.test(String(l.msg)));
    await expect.poll(paused, { timeout: 120_000, interval: 50 }).toBe(true);
    return { lis, ids };
  }

  it('a LIS that does not read its ACKs: the frame it began is not cut while the gateway does not read, and is answered once the LIS reads', async () => {
    const last = framed(oru('UNREAD-LAST'));
    const half = Math.floor(last.length / 2);
    const { lis, ids } = await unreadRepliesWithOpenFrame('UNREAD', last.subarray(0, half));
    try {
      await sleep(2 * FRAME_TIMEOUT_MS);
      // The rest of the frame comes while the gateway does not read: it waits in the kernel.
      lis.socket.write(last.subarray(half));
      await sleep(3 * FRAME_TIMEOUT_MS);
      expect(cutWarnings(lis), 'the frame was cut while the gateway did not read').toEqual([]);
      expect(lis.socket.destroyed).toBe(false);

      lis.socket.resume();
      await expect.poll(() => acks(lis.received()).length, { timeout: 120_000, interval: 100 }).toBe(ids.length + 1);
      expect(acks(lis.received())).toEqual([...ids, 'UNREAD-LAST'].map((id) => ['AA', id]));
      expect(lis.socket.destroyed).toBe(false);
      expect(cutWarnings(lis)).toEqual([]);
    } finally {
      lis.socket.destroy();
    }
  }, 240_000);

  it('a LIS that does not read its ACKs: once it reads and the gateway reads again, the bound applies to a frame that does not end, and the warning counts only the time the gateway read', async () => {
    const open = Buffer.concat([Buffer.of(VT), Buffer.from(oru('UNREAD-OPEN'), 'latin1')]);
    const { lis, ids } = await unreadRepliesWithOpenFrame('UNREADCUT', open);
    await sleep(4 * FRAME_TIMEOUT_MS);
    expect(cutWarnings(lis)).toEqual([]);
    expect(lis.socket.destroyed).toBe(false);

    lis.socket.resume();
    await lis.closed;
    expect(acks(lis.received())).toEqual(ids.map((id) => ['AA', id]));
    expect(logLines.some((l) => l.remote === lis.address && /reading resumed/.test(String(l.msg)))).toBe(true);
    const [warning] = cutWarnings(lis);
    expect(warning, `log: ${JSON.stringify(warningsAbout(lis.address))}`).toMatchObject({ endpoint: 'lis', bytes: open.length - 1 });
    // What the warning says was silence is silence while the gateway read: the frame's bytes came
    // before the pause, and the pause was not the LIS's.
    expect(Number(warning?.quietMs)).toBeLessThanOrEqual(Number(warning?.openMs));
    const kept = await keptFrom('lis', lis.address);
    const rejected = kept.filter((k) => k.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.raw.toString('latin1')).toBe(open.subarray(1).toString('latin1'));
    expect(rejected[0]?.rejectReason).toMatch(/incomplete message \(frame-timeout\)/);
  }, 240_000);
});
