import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerHostQuery } from '../../gateway/src/astm/host-query.ts';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { splitMessages } from '../../gateway/src/astm/records.ts';
import type { AnalyzerConfig } from '../../gateway/src/config/types.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { resolveLinkOptions } from '../../gateway/src/ingress/astm/link-options.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile, profileNames } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { CommitResult, GatewayStore, InboundMessage } from '../../gateway/src/store/types.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { corpusMessages, globMatch } from '../fixtures/astm/corpus.ts';
import { AnalyzerSim, framesForText } from '../fixtures/astm-link/analyzer-sim.ts';
import { type CaptureReplay, captureReplay, corpusAstmDir } from '../fixtures/astm-link/corpus-captures.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';

/**
 * The conformance suite every ASTM firmware profile passes: each profile's transcripts
 * (test/fixtures/astm/<profile>/, every file but the *.expect.json expectations) and the corpus
 * captures its `corpusPatterns` name, sent by a simulated analyzer through a socat pty pair and
 * through TCP to an AstmEndpoint running that profile with the real record layer and a real
 * store. Checked: the bytes on the wire (ACK per ENQ and frame), the exact bytes stored, the
 * events committed (against the record layer and the transcript's expectations), host query
 * answers in a new session.
 */
const repoRoot = path.resolve(import.meta.dirname, '../..');
const profilesDir = path.join(repoRoot, 'firmware-profiles');
const transcriptsDir = path.join(repoRoot, 'test/fixtures/astm');
const profiles: Profile[] = profileNames(profilesDir)
  .map((n) => loadProfile(n, profilesDir))
  .filter((p) => p.protocol !== 'hl7-mllp');

interface ExpectJson {
  messageType?: string;
  events?: Record<string, number>;
}

type Item =
  | { label: string; kind: 'records'; text: string; expect?: ExpectJson }
  | { label: string; kind: 'capture'; replay: CaptureReplay };

function itemsFor(profile: Profile): Item[] {
  const items: Item[] = [];
  const seen = new Set<string>();
  const addText = (label: string, text: string, expect?: ExpectJson) => {
    const key = text.replace(/\r\n|\n/g, '\r');
    if (seen.has(key)) return;
    seen.add(key);
    items.push({ label, kind: 'records', text, ...(expect ? { expect } : {}) });
  };
  const dir = path.join(transcriptsDir, profile.name);
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) {
      if (f.endsWith('.json')) continue;
      const messages = splitMessages(readFileSync(path.join(dir, f), 'latin1')).messages;
      const expectFile = path.join(dir, f.replace(/\.[^.]+$/, '.expect.json'));
      const expect = messages.length === 1 && existsSync(expectFile) ? (JSON.parse(readFileSync(expectFile, 'utf8')) as ExpectJson) : undefined;
      messages.forEach((m, i) => addText(`${f}#${i + 1}`, m, expect));
    }
  }
  const corpus = readdirSync(corpusAstmDir)
    .filter((f) => profile.corpusPatterns.some((p) => globMatch(p, f)))
    .sort();
  for (const f of corpus) {
    if (f.endsWith('.bin')) items.push({ label: f, kind: 'capture', replay: captureReplay(f) });
    else if (/\.(astm|frame|frames)$/.test(f)) corpusMessages(f).forEach((m, i) => addText(`${f}#${i + 1}`, m));
  }
  return items;
}

function countByType(events: DraftEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) out[e.type] = (out[e.type] ?? 0) + 1;
  return out;
}

const nonZero = (o: Record<string, number> | undefined): Record<string, number> => Object.fromEntries(Object.entries(o ?? {}).filter(([, n]) => n > 0));

let dir: string;
let store: EventStore;
let pair: PtyPair;
let simPort: SerialPort;
let ptySim: AnalyzerSim;
const commits: Array<{ message: InboundMessage; events: DraftEvent[]; result: CommitResult }> = [];
let recording: GatewayStore;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'astm-conf-'));
  store = await EventStore.open({ dataDir: path.join(dir, 'data'), pruneIntervalMs: 0 });
  // The real store, with each commit's outcome recorded for the assertions.
  recording = new Proxy(store, {
    get(target, prop) {
      if (prop === 'commit') {
        return async (message: InboundMessage, events: DraftEvent[]) => {
          const result = await target.commit(message, events);
          commits.push({ message, events, result });
          return result;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  pair = await startPtyPair(dir);
  simPort = new SerialPort({ path: pair.a, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => simPort.open((e) => (e ? reject(e) : resolve())));
  ptySim = new AnalyzerSim((b) => simPort.write(b));
  simPort.on('data', (b: Buffer) => ptySim.feed(b));
});

afterAll(async () => {
  await new Promise<void>((r) => (simPort?.isOpen ? simPort.close(() => r()) : r()));
  await pair?.kill();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function withEndpoint(profile: Profile, transport: 'pty' | 'tcp', body: (sim: AnalyzerSim, id: string) => Promise<void>): Promise<void> {
  const id = `${profile.name}-${transport}`;
  const analyzer: AnalyzerConfig =
    transport === 'pty' ? { id, profile: profile.name, serial: { path: pair.b } } : { id, profile: profile.name, tcp: { listen: { host: '127.0.0.1', port: 0 } } };
  const ep = new AstmEndpoint({
    analyzer,
    profile,
    store: recording,
    telemetry: new Telemetry(),
    log: silentLogger,
    normalize: (text, ctx) => normalizeAstmMessage(text, { analyzerId: id, endpoint: id, profile, receivedAt: ctx.receivedAt }),
    answerHostQuery: (query) => answerHostQuery(query, store, profile),
  });
  await ep.start();
  let socket: net.Socket | undefined;
  try {
    let sim = ptySim;
    if (transport === 'tcp') {
      socket = net.connect({ host: '127.0.0.1', port: ep.address()?.port as number });
      await new Promise<void>((resolve, reject) => (socket as net.Socket).once('connect', resolve).once('error', reject));
      const s = socket;
      sim = new AnalyzerSim((b) => s.write(b));
      s.on('data', (b: Buffer) => sim.feed(b));
    } else {
      sim.reset();
    }
    await body(sim, id);
  } finally {
    socket?.destroy();
    await ep.stop(2_000);
  }
}

/** The answer session the gateway opens after a host query, when one is due. */
async function expectAnswer(sim: AnalyzerSim, profile: Profile, text: string): Promise<void> {
  const ref = normalizeAstmMessage(text, { analyzerId: 'ref', endpoint: 'ref', profile, receivedAt: new Date().toISOString() });
  if (!ref.hostQuery || ref.hostQuery.cancel) return;
  const answer = await sim.receiveSession();
  const records = answer.split('\r').filter(Boolean);
  expect(records[0]?.[0]).toBe('H');
  expect(records[records.length - 1]?.[0]).toBe('L');
}

function checkEvents(profile: Profile, text: string, committed: DraftEvent[], expectJson?: ExpectJson): void {
  const ref = normalizeAstmMessage(text, { analyzerId: 'ref', endpoint: 'ref', profile, receivedAt: new Date().toISOString() });
  expect(countByType(committed)).toEqual(countByType(ref.events));
  if (expectJson?.events) expect(nonZero(countByType(committed))).toEqual(nonZero(expectJson.events));
}

describe('ASTM conformance: every profile, every transcript and matching capture, over a pty and TCP', () => {
  it('finds ASTM profiles with transcripts', () => {
    expect(profiles.length).toBeGreaterThan(5);
    expect(profiles.every((p) => itemsFor(p).length > 0)).toBe(true);
  });

  for (const profile of profiles) {
    const items = itemsFor(profile);
    const link = resolveLinkOptions(profile.quirks as unknown as Record<string, unknown>);
    for (const transport of ['pty', 'tcp'] as const) {
      it(`${profile.name} over ${transport} (${items.length} items)`, async () => {
        await withEndpoint(profile, transport, async (sim, id) => {
          for (const item of items) {
            const before = commits.length;
            if (item.kind === 'records') {
              if (link.lowLevel === 'records-only') {
                const bytes = Buffer.from(item.text.split(/\r\n|\r|\n/).filter(Boolean).join('\r') + '\r', 'latin1');
                sim.write(bytes);
                await until(() => commits.length === before + 1);
                const c = commits[before];
                expect(c?.message.raw.equals(bytes), item.label).toBe(true);
                expect(sim.received.length, `${item.label}: nothing is written back without a link protocol`).toBe(0);
                checkEvents(profile, item.text, c?.events ?? [], item.expect);
                continue;
              }
              const frames = framesForText(item.text, { maxText: link.maxFrameText, etbAfterEveryRecord: profile.quirks.etbAfterEveryRecord });
              // A transcript the record layer rejects is kept raw and its last frame NAKed.
              const rejected = normalizeAstmMessage(item.text, { analyzerId: 'ref', endpoint: 'ref', profile, receivedAt: new Date().toISOString() }).reject !== undefined;
              const { replies, sent } = await sim.sendMessage(frames);
              expect(replies, item.label).toBe('<ACK>'.repeat(frames.length) + (rejected && link.rejectedReply === 'nak' ? '<NAK>' : '<ACK>'));
              expect(commits.length, item.label).toBe(before + 1); // committed before the last reply
              const c = commits[before];
              expect(c?.message.endpoint).toBe(id);
              expect(c?.message.status, item.label).toBe(rejected ? 'rejected' : 'accepted');
              expect(c?.result.duplicate, item.label).toBe(false);
              const stored = await store.getMessage(c?.result.messageId as string);
              expect(stored?.raw.equals(sent), `${item.label}: stored raw bytes`).toBe(true);
              expect(stored?.message.eventIds).toEqual(c?.result.eventIds);
              checkEvents(profile, c?.message.raw ? item.text : '', c?.events ?? [], item.expect);
              await expectAnswer(sim, profile, item.text);
            } else {
              if (link.lowLevel === 'records-only') continue; // link-level captures need E1381
              const { replay } = item;
              sim.write(replay.input);
              let wire = '';
              for (let i = 0; i < replay.replies; i++) wire += (await sim.nextByte()) === 0x06 ? '<ACK>' : '<other>';
              expect(wire, item.label).toBe(replay.wire);
              await until(() => commits.length >= before + replay.texts.length);
              const mine = commits.slice(before, before + replay.texts.length);
              for (const [i, c] of mine.entries()) {
                expect(replay.input.indexOf(c.message.raw), `${item.label}: raw is a slice of the capture`).toBeGreaterThanOrEqual(0);
                const framed = [...c.message.raw.toString('latin1').matchAll(/\x02[0-7]([^\x02\x03\x17]*)[\x03\x17][0-9A-Fa-f]{2}\r\n/g)].map((m) => m[1]).join('');
                expect(framed, `${item.label}: the stored bytes hold exactly this message`).toBe(replay.texts[i]);
                // A capture whose text a transcript already sent is a duplicate: kept once.
                if (!c.result.duplicate) checkEvents(profile, replay.texts[i] as string, c.events);
                await expectAnswer(sim, profile, replay.texts[i] as string);
              }
            }
          }
        });
      });
    }
  }
});
