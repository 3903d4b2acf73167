/**
 * HL7 sent without MLLP framing (gateway/src/ingress/mllp/README.md "HL7 without MLLP framing").
 *
 * What the user saw: a LIS set up to send plain HL7 over TCP (no start block VT, no end block
 * FS CR: `MSH|…\rPID|…\rOBR|…\r`), one of the most common commissioning mistakes, got nothing
 * back: the listener counted the bytes as "ignored outside frames" (a metric, and a debug line
 * nobody reads) and did nothing else. The LIS waited for an ACK that never came and resent; the
 * message browser showed nothing; the log said nothing at info or warn.
 *
 * Now HL7 outside frames (MSH, FHS or BHS at a line's start, after blanks) is kept as a rejected
 * message with its raw bytes (reason `unframed`), a warning names the endpoint, the LIS's
 * address and the cause in plain words, the link's state says it, and the connection is closed so
 * that the LIS reports a failure instead of waiting. Identical bytes sent again (a LIS that
 * reconnects and resends) are not kept twice. Bytes outside frames that are not HL7 (a browser
 * pointed at the port) are still ignored, and now named in a warning with a preview.
 *
 * A whole gateway in this process (configuration validated like a config file, a real LevelDB
 * store in a temp dir), real TCP sockets, the gateway's own JSON log lines. No timed assertion:
 * the tests wait for the socket's 'close', for replies, for log lines and the store's contents.
 */
import { describe, expect, it } from 'vitest';
import { acks, CR, FS, oru, useLinkRig, VT } from '../fixtures/hl7/link-rig.ts';

/** maxMessageBytes of the link `small` (the smallest allowed). */
const SMALL_MAX = 1024;

const rig = useLinkRig('unframed', [
  // The idle close and the frame bound at their defaults: neither cuts anything here.
  { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
  { id: 'small', listen: { host: '127.0.0.1', port: 0 }, maxMessageBytes: SMALL_MAX },
]);
const { connect, keptFrom, warningsAbout, logLines, states } = rig;

const framed = (message: string): Buffer => Buffer.concat([Buffer.of(VT), Buffer.from(message, 'latin1'), Buffer.of(FS, CR)]);

describe('MLLP: HL7 sent without MLLP framing', () => {
  it('a LIS that sends plain HL7 (no VT, no FS CR) and waits: kept as rejected, warned in plain words, the connection closed, no answer', async () => {
    const lis = await connect('lis');
    const message = oru('PLAIN-1');
    lis.socket.write(Buffer.from(message, 'latin1'));
    // It waits for its ACK; the gateway closes the connection.
    await lis.closed;

    expect(lis.endedByGateway(), 'the gateway closed the connection').toBe(true);
    expect(lis.received().length, 'no answer: a framed NAK means nothing to a sender that does not speak MLLP').toBe(0);

    const warning = warningsAbout(lis.address).find((l) => String(l.msg).includes('without MLLP framing'));
    expect(warning, `a warning naming the cause; log: ${JSON.stringify(warningsAbout(lis.address))}`).toBeDefined();
    expect(warning).toMatchObject({ endpoint: 'lis', remote: lis.address, bytes: message.length });
    expect(String(warning?.msg)).toMatch(/no start block VT 0x0B/);
    expect(String(warning?.msg)).toMatch(/set the LIS to MLLP framing \(VT, message, FS CR\)/);
    expect(warningsAbout(lis.address).filter((l) => String(l.msg).includes('without MLLP framing')), 'once per connection').toHaveLength(1);

    // Kept for the operator, raw, rejected, with the cause; its MSH read (control id in the browser).
    await expect.poll(() => keptFrom('lis', lis.address).then((k) => k.length), { timeout: 10_000 }).toBe(1);
    const [kept] = await keptFrom('lis', lis.address);
    expect(kept?.status).toBe('rejected');
    expect(kept?.raw.toString('latin1')).toBe(message);
    expect(kept?.rejectReason).toMatch(/unframed/);
    expect(kept?.controlId).toBe('PLAIN-1');

    // The link's state says why its connection was closed.
    expect(states.some((s) => s.endpoint === 'lis' && s.detail?.includes('without MLLP framing') === true)).toBe(true);
  });

  it('blank lines before the MSH and an FS CR at the end (only the start block missing): kept from the MSH on, the connection closed', async () => {
    const lis = await connect('lis');
    const message = oru('NOVT-1', 3);
    lis.socket.write(Buffer.concat([Buffer.from('\r\n  \r\n', 'latin1'), Buffer.from(message, 'latin1'), Buffer.of(FS, CR)]));
    await lis.closed;
    expect(lis.received().length).toBe(0);
    expect(warningsAbout(lis.address).some((l) => String(l.msg).includes('without MLLP framing'))).toBe(true);
    await expect.poll(() => keptFrom('lis', lis.address).then((k) => k.length), { timeout: 10_000 }).toBe(1);
    const [kept] = await keptFrom('lis', lis.address);
    expect(kept?.status).toBe('rejected');
    expect(kept?.raw.toString('latin1').startsWith(message)).toBe(true);
    expect(kept?.controlId).toBe('NOVT-1');
  });

  it('a sender that half-closes after its plain HL7 (nc -N): kept, unanswered, closed', async () => {
    const lis = await connect('lis');
    const message = oru('FIN-1');
    lis.socket.end(Buffer.from(message, 'latin1'));
    await lis.closed;
    expect(lis.received().length).toBe(0);
    await expect.poll(() => keptFrom('lis', lis.address).then((k) => k.length), { timeout: 10_000 }).toBe(1);
    const [kept] = await keptFrom('lis', lis.address);
    expect(kept?.raw.toString('latin1')).toBe(message);
    expect(kept?.rejectReason).toMatch(/unframed/);
    expect(warningsAbout(lis.address).some((l) => String(l.msg).includes('without MLLP framing'))).toBe(true);
  });

  it('a LIS that reconnects and sends the same bytes again: warned and closed each time, kept once; another message is kept', async () => {
    const message = oru('AGAIN-1');
    const first = await connect('lis');
    first.socket.write(Buffer.from(message, 'latin1'));
    await first.closed;
    await expect.poll(() => keptFrom('lis', first.address).then((k) => k.length), { timeout: 10_000 }).toBe(1);

    const second = await connect('lis');
    second.socket.write(Buffer.from(message, 'latin1'));
    await second.closed;
    // Warned like the first; the note that the bytes were not kept again comes once the intake is done.
    expect(warningsAbout(second.address).find((l) => String(l.msg).includes('without MLLP framing'))).toMatchObject({ endpoint: 'lis' });
    await expect.poll(() => logLines.some((l) => l.remote === second.address && String(l.reason ?? l.msg).includes('same bytes')), { timeout: 10_000 }).toBe(true);
    expect(await keptFrom('lis', second.address), 'the same bytes are not kept twice').toEqual([]);

    const third = await connect('lis');
    const other = oru('AGAIN-2');
    third.socket.write(Buffer.from(other, 'latin1'));
    await third.closed;
    await expect.poll(() => keptFrom('lis', third.address).then((k) => k.map((m) => m.raw.toString('latin1'))), { timeout: 10_000 }).toEqual([other]);
  });

  it('plain HL7 larger than maxMessageBytes: its first bytes kept, the connection closed at once', async () => {
    const lis = await connect('small');
    const message = oru('BIG-1', 60);
    expect(message.length).toBeGreaterThan(SMALL_MAX);
    lis.socket.write(Buffer.from(message, 'latin1'));
    await lis.closed;
    expect(lis.received().length).toBe(0);
    await expect.poll(() => keptFrom('small', lis.address).then((k) => k.length), { timeout: 10_000 }).toBe(1);
    const [kept] = await keptFrom('small', lis.address);
    expect(kept?.raw.toString('latin1')).toBe(message.slice(0, SMALL_MAX));
    expect(kept?.rejectReason).toMatch(/unframed/);
    expect(kept?.rejectReason).toContain(`only the first ${SMALL_MAX} bytes were kept`);
  });

  it('bytes outside frames that are not HL7 (a browser at the port) are ignored, named in a warning with a preview; the connection goes on', async () => {
    const lis = await connect('lis');
    lis.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: gateway:2575\r\n\r\n', 'latin1'));
    await expect.poll(() => warningsAbout(lis.address).find((l) => String(l.msg).includes('not HL7')), { timeout: 10_000 }).toBeDefined();
    const warning = warningsAbout(lis.address).find((l) => String(l.msg).includes('not HL7'));
    expect(warning).toMatchObject({ endpoint: 'lis', remote: lis.address });
    expect(String(warning?.preview)).toContain('GET / HTTP/1.1');
    // Nothing kept, the connection open: a framed message after it is answered as usual.
    lis.socket.write(framed(oru('AFTER-GARBAGE-1')));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([['AA', 'AFTER-GARBAGE-1']]);
    lis.socket.write(Buffer.from('more noise\r', 'latin1'));
    lis.socket.write(framed(oru('AFTER-GARBAGE-2')));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([
      ['AA', 'AFTER-GARBAGE-1'],
      ['AA', 'AFTER-GARBAGE-2'],
    ]);
    expect(lis.socket.destroyed).toBe(false);
    expect(warningsAbout(lis.address).filter((l) => String(l.msg).includes('not HL7')), 'once per connection').toHaveLength(1);
    expect((await keptFrom('lis', lis.address)).map((k) => k.status)).toEqual(['accepted', 'accepted']);
  });

  it('keep-alive CRs between framed messages are neither kept nor warned about', async () => {
    const lis = await connect('lis');
    lis.socket.write(Buffer.concat([Buffer.from('\r\n\r', 'latin1'), framed(oru('KEEPALIVE-1')), Buffer.from('\r\r\n', 'latin1')]));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([['AA', 'KEEPALIVE-1']]);
    lis.socket.write(Buffer.concat([Buffer.from('\r\n', 'latin1'), framed(oru('KEEPALIVE-2'))]));
    await expect.poll(() => acks(lis.received()), { timeout: 10_000 }).toEqual([
      ['AA', 'KEEPALIVE-1'],
      ['AA', 'KEEPALIVE-2'],
    ]);
    expect(lis.socket.destroyed).toBe(false);
    expect(warningsAbout(lis.address)).toEqual([]);
  });
});
