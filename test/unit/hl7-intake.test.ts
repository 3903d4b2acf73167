import { describe, expect, it } from 'vitest';
import { Hl7Intake } from '../../gateway/src/ingress/mllp/hl7-intake.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';
import { MemoryIntakeStore } from '../fixtures/hl7/memory-store.ts';

const meta = { receivedAt: '2024-03-01T10:00:00.000Z', remoteAddress: '127.0.0.1:5000' };
const oru = (id: string) => `MSH|^~\\&|LIS|LAB|GW|LAB|20240301||ORU^R01|${id}|P|2.5\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU\rOBX|1|NM|GLU||5|mmol/L|||||F\r`;

function setup(overrides = {}) {
  const store = new MemoryIntakeStore();
  const intake = new Hl7Intake({ config: endpointConfig(overrides), store: store.asStore(), log: silentLogger });
  return { store, intake };
}

describe('Hl7Intake', () => {
  it('a failing normalizer gives AE 207 and the raw message is kept as rejected', async () => {
    const store = new MemoryIntakeStore();
    const intake = new Hl7Intake({
      config: endpointConfig(),
      store: store.asStore(),
      log: silentLogger,
      normalize: () => {
        throw new Error('mapping bug');
      },
    });
    const r = await intake.handleFrame(Buffer.from(oru('N1')), meta);
    const ack = framesOf(r.reply)[0];
    expect(field(ack, 'MSA', 1)).toBe('AE');
    expect(field(ack, 'ERR', 8)).toMatch(/mapping bug/);
    expect(store.messages[0]?.message.status).toBe('rejected');
    expect(store.messages[0]?.message.raw.toString()).toBe(oru('N1'));
  });

  it('store down: AE "store unavailable", counted without commit, nothing kept', async () => {
    const { store, intake } = setup();
    store.failing = true;
    const r = await intake.handleFrame(Buffer.from(oru('F1')), meta);
    expect(field(framesOf(r.reply)[0], 'MSA', 1)).toBe('AE');
    expect(field(framesOf(r.reply)[0], 'ERR', 8)).toBe('store unavailable');
    expect(store.rejectedWithoutCommit).toBe(1);
    expect(store.messages).toHaveLength(0);
    expect(r.results[0]).toMatchObject({ outcome: 'rejected', reason: 'store unavailable', controlId: 'F1' });
  });

  it('an oversize frame is answered AR with the MSH-10 read from its head', async () => {
    const { store, intake } = setup({ maxMessageBytes: 1000 });
    const head = Buffer.from(oru('BIG').slice(0, 120));
    const r = await intake.handleOversize({ size: 5_000_000, head }, meta);
    const ack = framesOf(r.reply)[0];
    expect([field(ack, 'MSA', 1), field(ack, 'MSA', 2)]).toEqual(['AR', 'BIG']);
    expect(store.messages[0]?.message.rejectReason).toBe(`message of 5000000 bytes exceeds the maximum of 1000 bytes; only the first ${head.length} bytes were kept`);
    expect(store.messages[0]?.message.raw.equals(head)).toBe(true);
  });

  it('a file batch (FHS/BHS … BTS/FTS) is answered with FHS/BHS, one ACK per message, BTS/FTS', async () => {
    const { store, intake } = setup();
    const block = `FHS|^~\\&|LIS|LAB\rBHS|^~\\&|LIS|LAB|GW|LAB|2024||||B1\r${oru('B-1')}${oru('B-2')}BTS|2\rFTS|1\r`;
    const r = await intake.handleFrame(Buffer.from(block), meta);
    const reply = framesOf(r.reply)[0] ?? [];
    expect(reply.map((s) => s[0])).toEqual(['FHS', 'BHS', 'MSH', 'MSA', 'MSH', 'MSA', 'BTS', 'FTS']);
    expect(store.messages.map((m) => m.message.controlId)).toEqual(['B-1', 'B-2']);
    expect(store.messages.map((m) => m.message.raw.toString())).toEqual([oru('B-1'), oru('B-2')]);
    expect(store.messages.flatMap((m) => m.events.map((e) => e.correlationId))).toEqual(['ACC-B-1', 'ACC-B-2']);
  });

  it('a batch resent as a whole: every message is a duplicate and gets its stored ACK', async () => {
    const { store, intake } = setup();
    const block = Buffer.from(`BHS|^~\\&|LIS|LAB\r${oru('R-1')}${oru('R-2')}BTS|2\r`);
    const first = framesOf((await intake.handleFrame(block, meta)).reply)[0] ?? [];
    const again = await intake.handleFrame(block, meta);
    expect(again.results.map((x) => x.outcome)).toEqual(['duplicate', 'duplicate']);
    const second = framesOf(again.reply)[0] ?? [];
    // The inner ACKs are replayed byte for byte (same MSH-10s); only the BHS is new.
    expect(second.filter((s) => s[0] === 'MSH')).toEqual(first.filter((s) => s[0] === 'MSH'));
    expect(store.counters.duplicates).toBe(2);
  });

  it('a resend whose segments end with CRLF instead of CR is a duplicate: no second message, no second event', async () => {
    const { store, intake } = setup();
    await intake.handleFrame(Buffer.from(oru('LE-1')), meta);
    const again = await intake.handleFrame(Buffer.from(oru('LE-1').replace(/\r/g, '\r\n')), meta);
    expect(again.results.map((x) => x.outcome)).toEqual(['duplicate']);
    expect(store.messages).toHaveLength(1);
    expect(store.messages.flatMap((m) => m.events)).toHaveLength(1);
  });

  it('unknown message types are stored and acknowledged AA by default, without events', async () => {
    const { store, intake } = setup();
    const r = await intake.handleFrame(Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|2024||QRY^Q02|Q1|P|2.3.1\rQRD|1\r'), meta);
    expect(field(framesOf(r.reply)[0], 'MSA', 1)).toBe('AA');
    expect(store.messages[0]?.events).toEqual([]);
    expect(store.messages[0]?.message.messageType).toBe('QRY^Q02');
  });

  it('enhanced mode with MSH-15 NE and MSH-16 NE sends no reply at all, but still stores', async () => {
    const { store, intake } = setup({ ack: 'enhanced' });
    const r = await intake.handleFrame(Buffer.from(oru('E1').replace('|P|2.5\r', '|P|2.5|||NE|NE\r')), meta);
    expect(r.reply).toBeUndefined();
    expect(store.messages).toHaveLength(1);
  });

  it('enhanced mode: a rejected message gets CR (MSH-15 ER) and AR (MSH-16 ER)', async () => {
    const { intake } = setup({ ack: 'enhanced', unknownMessageTypes: 'reject' });
    const r = await intake.handleFrame(Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|2024||ZZZ^Z01|Z1|P|2.5|||ER|ER\r'), meta);
    expect(framesOf(r.reply).map((f) => field(f, 'MSA', 1))).toEqual(['CR', 'AR']);
  });

  it('enhanced endpoint: MSH-16 values outside table 0155 (Mindray BS run type) get an original-mode ACK', async () => {
    const { intake } = setup({ ack: 'enhanced' });
    const r = await intake.handleFrame(Buffer.from(oru('MB1').replace('|P|2.5\r', '|P|2.5||||2\r')), meta);
    expect(framesOf(r.reply).map((f) => field(f, 'MSA', 1))).toEqual(['AA']);
  });

  it('records where the message came from and the charset used', async () => {
    const { store, intake } = setup();
    await intake.handleFrame(Buffer.from(oru('W1')), meta);
    expect(store.messages[0]?.message).toMatchObject({ kind: 'hl7', endpoint: 'lis', remoteAddress: '127.0.0.1:5000', sender: 'LIS^LAB', encoding: 'ascii' });
    // endpoint | sender | MSH-10 | content fingerprint (MSH-7 left out)
    expect(store.messages[0]?.message.dedupKey).toMatch(/^lis\|LIS\^LAB\|W1\|[0-9a-f]{16}$/);
    expect(store.messages[0]?.message.searchTerms).toEqual(expect.arrayContaining(['W1', 'ACC-W1']));
  });
});
