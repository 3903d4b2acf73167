/**
 * An RS-232 line glitch inside a frame. A spurious NUL (a noise pulse read as a start bit with
 * eight zero bits, or a break) inserted into the frame's text adds 0 to the LIS1-A §6.3.3 checksum
 * (a sum modulo 256): the frame checks, though one character more arrived than was sent. A glitch
 * that changes a character (a parity-garbage byte in its place) changes the sum and is NAKed.
 *
 * Real gateway (real LevelDB in a temp dir) on a socat pty pair, the analyzer simulated on its
 * other end with serialport.
 */
import { describe, expect, it } from 'vitest';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { useSerialGateway } from '../fixtures/astm-link/serial-gateway.ts';

const line = useSerialGateway('lgw-astm-glitch-');

const RECORDS = ['H|\\^&|||CHEM^1|||||LIS||P|1|20261207101500', 'P|1', 'O|1|ACC-GL-1||^^^GLU|R', 'R|1|^^^GLU|5.4|mmol/L||N||F||||20261207101000', 'L|1|N'];
const frame = (i: number, text: string): Buffer => buildFrame(i % 8, Buffer.from(text + '\r', 'latin1'), true);

describe('a line glitch inside a frame (serial, socat pty pair)', () => {
  it('a NUL inserted in the text of a frame is refused (NAK), and the clean retransmission is what is kept', async () => {
    const { gateway, sim } = await line.start('astm-glitch-nul', { id: 'chem-1', profile: 'generic-astm' });
    // The R frame as it reached the gateway: a NUL between '5' and '.', its checksum unchanged
    // (the analyzer computed it over what it sent; the NUL adds 0).
    const clean = frame(4, RECORDS[3]!);
    const at = clean.indexOf('5.4');
    const glitched = Buffer.concat([clean.subarray(0, at + 1), Buffer.from([0x00]), clean.subarray(at + 1)]);
    expect(glitched.subarray(-4, -2).toString()).toBe(clean.subarray(-4, -2).toString());

    sim.write([0x05]);
    expect(await sim.nextByte()).toBe(0x06);
    for (let i = 0; i < 3; i++) {
      sim.write(frame(i + 1, RECORDS[i]!));
      expect(await sim.nextByte()).toBe(0x06);
    }
    sim.write(glitched);
    // Before: ACK, and the result was kept as "5\0.4".
    expect(await sim.nextByte(), 'the reply to the glitched frame').toBe(0x15);
    sim.write(clean);
    expect(await sim.nextByte()).toBe(0x06);
    sim.write(frame(5, RECORDS[4]!));
    expect(await sim.nextByte()).toBe(0x06);
    sim.write([0x04]);

    const store = gateway.store!;
    await expect.poll(async () => (await store.listMessages({ endpoint: 'chem-1', limit: 10 })).length, { timeout: 5_000 }).toBe(1);
    const [message] = await store.listMessages({ endpoint: 'chem-1', limit: 10 });
    expect(message!.status).toBe('accepted');
    const events = (await Promise.all(message!.eventIds.map((id) => store.getEvent(id)))).flatMap((e) => (e ? [e.event] : []));
    const result = events.find((e) => e.type === 'test.completed');
    expect(result?.type === 'test.completed' ? result.data.value : undefined).toBe('5.4');
  });
});
