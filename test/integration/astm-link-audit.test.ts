import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyzerConfig } from '../../gateway/src/config/types.ts';
import { escapeAstm } from '../../gateway/src/astm/escape.ts';
import { buildOrderDownload } from '../../gateway/src/astm/host-query.ts';
import { buildRecord } from '../../gateway/src/astm/records.ts';
import { AstmEndpoint, type AstmNormalizeResult } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { ACK, describeBytes, ENQ, EOT, ETX, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { ManualScheduler } from '../../gateway/src/ingress/astm/scheduler.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { applyOverrides, loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { frame, makeHarness, MSG, MSG_TEXT, settle } from '../fixtures/astm-link/harness.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { connectTcpSim, openSerialSim } from '../fixtures/astm-link/sim-wires.ts';

/**
 * Audit of the E1381 state machine (receiver and sender) through the real endpoint: a socat pty
 * pair or real TCP sockets, a real LevelDB store, the analyzer simulated byte by byte. The
 * gateway's clock is a ManualScheduler, so none of its link timers fires unless a test says so;
 * the analyzer's own timers (LIS1-A §6.5.2) are played by the test.
 */
let dir: string;
let store: EventStore;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'astm-link-audit-'));
  store = await EventStore.open({ dataDir: path.join(dir, 'data'), healthCheckIntervalMs: 50, pruneIntervalMs: 0 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** The record layer is not under test: an H…L text is accepted as is. */
function acceptAll(text: string): AstmNormalizeResult<string> {
  if (!text.startsWith('H')) return { events: [], messageType: 'ASTM', searchTerms: [], reject: 'no H record' };
  return { events: [], messageType: 'ASTM', searchTerms: [] };
}

function endpoint(analyzer: AnalyzerConfig, clock: ManualScheduler, quirks: object = {}) {
  const ep = new AstmEndpoint<string>({
    analyzer,
    profile: { name: 'test', quirks, transport: { serial: { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 } } },
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
    normalize: acceptAll,
    scheduler: clock,
    reconnect: { initialMs: 50, maxMs: 200 },
  });
  cleanups.push(() => ep.stop(2_000));
  return ep;
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The gateway's next byte as text (`<ACK>`), or `(no reply)` when none comes within `ms`. */
async function replyOf(sim: AnalyzerSim, ms = 2_000): Promise<string> {
  try {
    return describeBytes(Buffer.from([await sim.nextByte(ms)]));
  } catch {
    return '(no reply)';
  }
}

async function messagesOf(endpointId: string) {
  const list = await store.listMessages({ endpoint: endpointId, limit: 100 });
  return Promise.all(list.map(async (m) => (await store.getMessage(m.id)) as NonNullable<Awaited<ReturnType<EventStore['getMessage']>>>));
}

const recordFrames = (records: string[]): Buffer[] => records.map((r, i) => buildFrame((i + 1) % 8, Buffer.from(r + '\r', 'latin1'), true));

describe('E1381 receiver on a serial line (socat pty pair)', () => {
  let pair: PtyPair;
  beforeAll(async () => {
    pair = await startPtyPair(dir, ['audit-a', 'audit-b']);
  });
  afterAll(async () => {
    await pair.kill();
  });

  /*
   * What the user sees: one character hit by line noise (the ETX of a frame) and the gateway goes
   * deaf to the analyzer. The analyzer gets no reply to the damaged frame, aborts after its 15 s
   * timer with EOT (LIS1-A §6.5.2) and tries again with ENQ — the gateway never answers: it still
   * reads "frame text". Every retry (ENQ, 15 s, EOT, ENQ …) re-arms the gateway's 30 s receiver
   * timer, so as long as the analyzer keeps retrying the line stays dead; the analyzer finally
   * flags the results as not transmitted.
   * Promise broken: LIS1-A §6.6 (protocols.md §1.6 "Restricted characters": EOT, ENQ … may not
   * appear in frame text), §6.4 (EOT is termination: the line is neutral), §6.2 (a ready receiver
   * answers ENQ with ACK); ingress/astm/README.md "Nothing received is dropped".
   * Cause: gateway/src/ingress/astm/e1381-session.ts:295 — in the 'text' state EOT ends the
   * session only when no text was read yet (`this.#textLen === 0`); otherwise EOT and ENQ are
   * swallowed as text (the run at :301-306 stops only at STX/ETX/ETB).
   * Fix: in the 'text' state treat EOT (any textLen) as the sender giving up ('session-end', the
   * cut frame kept in the partial) and ENQ as a restart ('re-establish'); stop the text run at
   * EOT and ENQ as well (LIS1-A §6.6 forbids both in text; no corpus frame contains them).
   */
  it('answers the ENQ of an analyzer that aborted (EOT) a frame whose ETX was lost on the line', async () => {
    const clock = new ManualScheduler();
    const ep = endpoint({ id: 'audit-pty-1', profile: 'test', serial: { path: pair.b } }, clock);
    await ep.start();
    expect(ep.connections).toBe(1);
    const { sim } = await openSerialSim(pair.a, cleanups);

    sim.write([ENQ]);
    expect(await replyOf(sim)).toBe('<ACK>');
    // The first frame, its ETX (0x03) turned into 'C' (0x43: one bit flipped by noise).
    const damaged = Buffer.from(buildFrame(1, Buffer.from(MSG[0] + '\r', 'latin1'), true));
    const etxAt = damaged.indexOf(ETX);
    damaged[etxAt] = 0x43;
    sim.write(damaged);
    await until(() => ep.linkStats().bytesIn === 1 + damaged.length);
    expect(sim.unread()).toBe(''); // no reply to a frame that never ended
    clock.advance(15_000); // the analyzer's reply timer runs out (the gateway's 30 s has not)
    sim.write([EOT]); // LIS1-A §6.5.2: the sender aborts with EOT …
    sim.write([ENQ]); // … and tries the message again
    expect(await replyOf(sim)).toBe('<ACK>');

    // The whole message again, accepted and stored.
    const frames = recordFrames(MSG);
    let replies = '';
    for (const f of frames) {
      sim.write(f);
      replies += await replyOf(sim);
    }
    sim.write([EOT]);
    expect(replies).toBe('<ACK>'.repeat(frames.length));
    await until(async () => (await messagesOf('audit-pty-1')).some((m) => m.message.status === 'accepted'));
    const stored = await messagesOf('audit-pty-1');
    const accepted = stored.filter((m) => m.message.status === 'accepted');
    expect(accepted).toHaveLength(1);
    expect(accepted[0]?.raw.equals(Buffer.concat([Buffer.from([ENQ]), ...frames]))).toBe(true);
  });
});

describe('E1381 receiver: a message cut inside its first frame (socat pty pair, cable pulled)', () => {
  /*
   * What the user sees: an analyzer that sends the whole message in one frame (Afinion, cobas
   * c311 and e411 captures, Yumizen H500 frames of 26 KB that take 27 s at 9600 baud) loses its
   * cable, or is switched off, in the middle of that frame: the gateway keeps nothing — no
   * rejected message for the operator, no "incomplete message" alert, no count. The same message
   * cut after its first frame is kept (test/integration/astm-serial.test.ts "cable pulled").
   * The same happens when the analyzer simply stops mid-frame and the 30 s receiver timer fires.
   * Promise broken: DESIGN.md §2 "Bad input … never vanishes: it is … kept, raw, for an operator";
   * ingress/astm/README.md "Nothing received is dropped. A message cut off before its end (EOT
   * early, receiver timeout, ENQ restart, port or connection closed, too large) is handed to
   * onPartial and stored as a rejected message with its exact bytes".
   * Cause: gateway/src/ingress/astm/e1381-session.ts:503 — #partial() hands bytes over only
   * when #messageStarted is set, and that flag is set only once a frame was evaluated (:391 NAK,
   * :437 accepted) or restarted (:289); reading STX and the text of a frame never sets it, so
   * close() (:844) and the receiver timer (:607) throw the unfinished first frame away.
   * Fix: note that a frame is open (a flag set on STX in the 'between' state, :261, cleared when
   * the frame is evaluated and in #resetMessage) and report a partial when a message was started
   * OR a frame is open. (Setting #messageStarted itself on STX would turn the repeated end frame
   * of an already committed message into a false partial.) A session with no frame at all (ENQ
   * then EOT, a keep-alive) still produces no partial.
   */
  it('keeps a one-frame message cut off by a pulled cable as rejected raw bytes', async () => {
    const sub = path.join(dir, 'pull');
    await import('node:fs/promises').then((fs) => fs.mkdir(sub, { recursive: true }));
    const pair = await startPtyPair(sub);
    cleanups.push(() => pair.kill());
    const clock = new ManualScheduler();
    const ep = endpoint({ id: 'audit-pty-2', profile: 'test', serial: { path: pair.b } }, clock);
    await ep.start();
    const { sim } = await openSerialSim(pair.a, cleanups);

    sim.write([ENQ]);
    expect(await replyOf(sim)).toBe('<ACK>');
    // H…L in one end frame, as the one-frame analyzers send it; the cable goes halfway through.
    const whole = buildFrame(1, Buffer.from(MSG.map((r) => r + '\r').join(''), 'latin1'), true);
    const sentPart = whole.subarray(0, Math.floor(whole.length / 2));
    sim.write(sentPart);
    await until(() => ep.linkStats().bytesIn === 1 + sentPart.length);
    await pair.kill(); // the cable is pulled
    // The port's close reaches the endpoint through the event loop and serialport's poller: on a
    // loaded CI machine (two cores, the suite in parallel) that took more than 5 s once.
    await until(() => ep.connections === 0, 20_000);
    // The partial is committed asynchronously: give it time to land.
    const end = Date.now() + 2_000;
    while (Date.now() < end && (await messagesOf('audit-pty-2')).length === 0) await new Promise((r) => setTimeout(r, 20));

    const stored = await messagesOf('audit-pty-2');
    expect(stored.map((m) => m.message.status)).toEqual(['rejected']);
    expect(stored[0]?.message.rejectReason).toBe('incomplete message (closed)');
    expect(stored[0]?.raw.equals(Buffer.concat([Buffer.from([ENQ]), sentPart]))).toBe(true);
  });
});

describe('E1381 receiver: a frame cut by EOT or ENQ, at any point (state machine, fake clock)', () => {
  /*
   * The same rule as the first test, at the other places a cut can fall (LIS1-A §6.6: EOT and ENQ
   * are never text, frame number or checksum): the sender restarts with ENQ in the middle of a
   * frame, or aborts with EOT where the checksum should be (the ETX arrived, the rest was lost).
   * Either way the line is free at once and the cut frame is kept, as is a first frame cut by the
   * receiver timer.
   */
  it('answers an ENQ inside a frame at once and keeps the cut frame as a partial', async () => {
    const h = makeHarness();
    const f = frame(1, MSG_TEXT);
    const cut = f.subarray(0, 20);
    h.session.push(Buffer.from([ENQ]));
    h.session.push(Buffer.concat([cut, Buffer.from([ENQ])]));
    expect(h.takeWire()).toBe('<ACK><ACK>');
    expect(h.partials.map((p) => p.reason)).toEqual(['re-establishment']);
    expect(h.partials[0]?.raw.equals(Buffer.concat([Buffer.from([ENQ]), cut]))).toBe(true);
    h.session.push(f);
    await settle();
    expect(h.takeWire()).toBe('<ACK>');
    expect(h.messages.map((m) => m.text)).toEqual([MSG_TEXT]);
  });

  it('ends the session at an EOT in place of the checksum and keeps the cut frame', () => {
    const h = makeHarness();
    const f = frame(1, MSG_TEXT);
    const cut = f.subarray(0, f.indexOf(ETX) + 1);
    h.session.push(Buffer.concat([Buffer.from([ENQ]), cut, Buffer.from([EOT])]));
    expect(h.session.state).toBe('neutral');
    expect(h.wire()).toBe('<ACK>');
    expect(h.partials.map((p) => p.reason)).toEqual(['eot-before-end']);
    expect(h.partials[0]?.raw.equals(Buffer.concat([Buffer.from([ENQ]), cut, Buffer.from([EOT])]))).toBe(true);
  });

  it('keeps a first frame cut by the receiver timer, and nothing of a session without a frame', () => {
    const h = makeHarness();
    const f = frame(1, MSG_TEXT);
    h.session.push(Buffer.from([ENQ]));
    h.session.push(f.subarray(0, 30));
    h.clock.advance(30_000);
    expect(h.partials.map((p) => p.reason)).toEqual(['receiver-timeout']);
    h.session.push(Buffer.from([ENQ, EOT])); // a keep-alive (GeneXpert, Yumizen H550)
    h.session.push(Buffer.from([ENQ]));
    h.clock.advance(30_000);
    expect(h.partials).toHaveLength(1);
  });
});

describe('E1381 sender over TCP (order download, host query answers)', () => {
  /*
   * What the user sees: the analyzer answers the last frame of a download with EOT — the receiver
   * interrupt, "accepted, and now let me send" (it has results, or a host query for a tube that
   * the cobas e411 cancels after 15 s). The gateway sends EOT and at once ENQ for the next queued
   * download (order download pushes its outbox accession after accession), so the analyzer's own
   * ENQ meets the gateway's ENQ: it is taken for contention and not answered, and an analyzer that
   * answers the gateway's ENQ instead is fed the rest of the outbox before it may send.
   * Promise broken: LIS1-A §6.3.5 (protocols.md §1.4 "Receiver interrupt": the original sender must
   * not enter the establishment phase for at least 15 s or until the receiver has sent a message);
   * ingress/astm/README.md "a receiver interrupt (EOT in reply) → EOT, 15 s hold-off".
   * Cause: gateway/src/ingress/astm/e1381-session.ts:776-779 — an EOT in reply to the LAST frame
   * goes to #frameAccepted() (:798-815), which terminates and calls #maybeStartSend() (:814)
   * without the 'interrupt' hold-off that the EOT on an earlier frame gets (:786).
   * Fix: when the EOT (honoured interrupt) answers the last frame, resolve the send as accepted
   * but set the 'interrupt' hold-off (interruptHoldoffMs) before #maybeStartSend(); it is already
   * cleared when the analyzer has sent a message (#settleCommit / #toNeutral).
   */
  it('holds off its next download after the analyzer interrupts (EOT) the last frame, and answers the analyzer\'s ENQ', async () => {
    const clock = new ManualScheduler();
    const ep = endpoint({ id: 'audit-tcp-1', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, clock);
    await ep.start();
    const { sim } = await connectTcpSim(ep.address()?.port as number, cleanups);
    await until(() => ep.connections === 1);

    const first = ['H|\\^&|||LIS|||||audit-tcp-1||P|LIS2-A2', 'P|1||PAT-1', 'O|1|ACC-1||^^^GLU|R', 'L|1|N'];
    const sending = ep.sendWorklist(first);
    expect(await replyOf(sim)).toBe('<ENQ>');
    sim.write([ACK]);
    for (let i = 0; i < first.length; i++) {
      const f = await sim.nextFrame();
      expect(f[0]).toBe(STX);
      // The analyzer accepts every frame; the last one with EOT: it wants the line (§6.3.5).
      sim.write([i === first.length - 1 ? EOT : ACK]);
    }
    await sending; // accepted: EOT is a positive acknowledgment of the end frame
    expect(await replyOf(sim)).toBe('<EOT>');

    // The next accession of the outbox is handed to the link right after (as OrderDownload does).
    const next = ep.sendWorklist(['H|\\^&|||LIS|||||audit-tcp-1||P|LIS2-A2', 'P|1||PAT-2', 'O|1|ACC-2||^^^GLU|R', 'L|1|N']);
    next.catch(() => undefined);
    // The analyzer takes the line it asked for.
    sim.write([ENQ]);
    expect(await replyOf(sim)).toBe('<ACK>');

    // Its results go in, then the gateway's next download follows.
    const result = ['H|\\^&|||analyzer', 'P|1', 'O|1|ACC-1||^^^GLU|R', 'R|1|^^^GLU|5.4|mmol/L||N||F', 'L|1|N'];
    const frames = recordFrames(result);
    for (let i = 0; i < frames.length; i++) {
      sim.write(frames[i] as Buffer);
      const r = await replyOf(sim);
      // ACK, or EOT (the gateway's own receiver interrupt) for the end frame of the message.
      expect(i === frames.length - 1 ? ['<ACK>', '<EOT>'] : ['<ACK>']).toContain(r);
    }
    sim.write([EOT]);
    expect(await sim.receiveSession()).toContain('O|1|ACC-2||^^^GLU|R');
    await next;
    expect((await messagesOf('audit-tcp-1')).filter((m) => m.message.status === 'accepted')).toHaveLength(1);
  });
});

describe('E1381 sender: an order download naming letters beyond Latin-1 (TCP)', () => {
  /** Take one session as the analyzer: ACK the ENQ and every frame; the frames as sent. */
  async function takeSession(sim: AnalyzerSim): Promise<Buffer[]> {
    expect(await replyOf(sim)).toBe('<ENQ>');
    sim.write([ACK]);
    const frames: Buffer[] = [];
    for (;;) {
      const b = await sim.nextByte(2_000);
      if (b === EOT) return frames;
      expect(b).toBe(STX);
      const frame = [b];
      do frame.push(await sim.nextByte(2_000));
      while (frame[frame.length - 1] !== 0x0a);
      frames.push(Buffer.from(frame));
      sim.write([ACK]);
    }
  }

  /** LIS1-A §6.6: no restricted character in frame text, and CR only where a record ends. */
  function controlsInText(frames: Buffer[]): string[] {
    const found: string[] = [];
    for (const f of frames) {
      const text = f.subarray(2, f.length - 5);
      text.forEach((b, i) => {
        const restricted = (b >= 0x01 && b <= 0x06) || b === 0x0a || (b >= 0x10 && b <= 0x17);
        if (restricted || (b === 0x0d && i !== text.length - 1)) found.push(describeBytes(f));
      });
    }
    return found;
  }

  const order = { accession: 'ACC-\u010d7', patientId: 'W\u0105sowicz', priority: 'R', orderedAt: '2026-11-25T10:15:00Z' };

  /*
   * What the user sees: a patient id or accession from the LIS (HL7 arrives as UTF-8) with a
   * letter beyond Latin-1 — 'ą' (U+0105), 'č' (U+010D): Polish, Czech, Lithuanian ids — goes into
   * an order download (or a host query answer), and the analyzer refuses the frame or breaks the
   * session. The link wrote the records with Buffer.from(…, 'latin1'), which keeps only the low
   * byte of each character: 'ą' went out as ENQ (0x05) inside the frame text, 'č' as CR (0x0D),
   * splitting the O record in two. escapeAstm looks at the characters before that narrowing, so it
   * saw nothing to escape.
   * Promise broken: LIS1-A §6.6 (protocols.md §1.6 "Restricted characters": ENQ, EOT, … never in
   * frame text); LIS2-A2 §5.4.1 (CR ends a record); the profile's `charset` quirk ("Text encoding
   * of the analyzer"), which the link honoured on receive only.
   * Cause: gateway/src/ingress/astm/e1381-session.ts #beginTransfer (and records-only-session.ts
   * send) encode with 'latin1' whatever the charset; gateway/src/astm/escape.ts escapes the
   * characters, not the bytes that go out.
   * Fix: the record builder replaces what the analyzer's charset cannot carry with '?' before the
   * escape step; the link encodes every record in the charset (UTF-8 for a utf8 profile), with
   * anything Latin-1 cannot carry, and any restricted character, as '?'.
   */
  it('sends the download of a Latin-1 analyzer with "?" for letters beyond Latin-1, and that of a UTF-8 analyzer as UTF-8, never as control characters', async () => {
    const base = loadProfile('siemens-advia-centaur-xp');
    const cases: Array<{ id: string; profile: Profile; patient: string; specimen: string; decode: BufferEncoding }> = [
      { id: 'audit-enc-latin1', profile: base, patient: 'P|1||W?sowicz', specimen: 'O|1|ACC-?7|', decode: 'latin1' },
      { id: 'audit-enc-utf8', profile: applyOverrides(base, { charset: 'utf8' }), patient: 'P|1||W\u0105sowicz', specimen: 'O|1|ACC-\u010d7|', decode: 'utf8' },
    ];
    for (const c of cases) {
      const clock = new ManualScheduler();
      const ep = endpoint({ id: c.id, profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, clock, c.profile.quirks);
      await ep.start();
      const { sim } = await connectTcpSim(ep.address()?.port as number, cleanups);
      await until(() => ep.connections === 1);

      const records = buildOrderDownload(order, { add: [{ code: 'TSH' }], cancel: [] }, c.profile, { receiver: c.id });
      const sending = ep.sendWorklist(records);
      const frames = await takeSession(sim);
      await sending;
      expect(controlsInText(frames)).toEqual([]);
      const text = Buffer.concat(frames.map((f) => f.subarray(2, f.length - 5))).toString(c.decode);
      const lines = text.split('\r');
      expect(lines).toContain(c.patient);
      expect(lines.find((l) => l.startsWith('O|'))?.startsWith(c.specimen)).toBe(true);
      expect(lines).toHaveLength(records.length + 1); // every record whole, each ended by its CR
    }
  });

  it('substitutes before escaping, and the link writes no control character whatever record it is given (both link modes)', async () => {
    const d = { field: '|', repeat: '?', component: '^', escape: '&' }; // '?' is a legal delimiter
    expect(escapeAstm('W\u0105s', d)).toBe('W&R&s'); // the '?' standing for 'ą' is escaped like any '?'
    expect(escapeAstm('W\u0105s', d, 'utf8')).toBe('W\u0105s');
    expect(escapeAstm('caf\u00e9', d, 'ascii')).toBe('caf&R&');
    expect(escapeAstm('a\u0083b', d)).toBe('a&X83&b'); // C1 ETX: 0x03 on a 7-bit line
    expect(buildRecord('P', ['1', '', 'W\u0105sowicz'])).toBe('P|1||W?sowicz');

    // Records that did not come from the builder: restricted characters and CR never reach the wire.
    const raw = ['H|\\^&', 'P|1||a\u0005b\rc\u010dd\u0105', 'L|1|N'];
    const h = makeHarness();
    const sent = h.session.send(raw);
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.push(Buffer.from([ACK]));
    expect(h.takeWire()).toBe(describeBytes(buildFrame(1, Buffer.from('H|\\^&\r', 'latin1'), true)));
    h.session.push(Buffer.from([ACK]));
    expect(h.takeWire()).toBe(describeBytes(buildFrame(2, Buffer.from('P|1||a?b?c?d?\r', 'latin1'), true)));
    h.session.push(Buffer.from([ACK]));
    h.session.push(Buffer.from([ACK]));
    await sent;

    const u = makeHarness({ charset: 'utf8', outgoingFrameLayout: 'message-per-frame' });
    const sentU = u.session.send(raw);
    u.session.push(Buffer.from([ACK]));
    expect(Buffer.concat(u.writes).subarray(1).equals(buildFrame(1, Buffer.from('H|\\^&\rP|1||a?b?c\u010dd\u0105\rL|1|N\r', 'utf8'), true))).toBe(true);
    u.session.push(Buffer.from([ACK]));
    await sentU;

    const r = makeHarness({ lowLevel: 'records-only', charset: 'ascii' });
    await r.session.send(['H|\\^&', 'P|1||Caf\u00e9\u010d\n\u0003', 'L|1|N']);
    expect(Buffer.concat(r.writes).toString('latin1')).toBe('H|\\^&\rP|1||Caf????\rL|1|N\r');

    expect(() => makeHarness({ charset: 'cp1250' })).toThrow(/charset/);
  });
});
