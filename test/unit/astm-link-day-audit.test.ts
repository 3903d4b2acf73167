import { describe, expect, it } from 'vitest';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { ENQ, EOT } from '../../gateway/src/ingress/astm/control-chars.ts';
import { framesForText } from '../fixtures/astm-link/analyzer-sim.ts';
import { makeHarness, settle } from '../fixtures/astm-link/harness.ts';

/**
 * Where an E1381 message ends when its records are split over frames (the pure state machine on a
 * fake clock; test/integration/astm-link-day-audit.test.ts plays the same on TCP with the whole
 * gateway).
 */
async function receive(frames: Buffer[]): Promise<ReturnType<typeof makeHarness>> {
  const h = makeHarness();
  h.session.push(Buffer.from([ENQ]));
  for (const f of frames) {
    h.session.push(f);
    await settle();
  }
  h.session.push(Buffer.from([EOT]));
  return h;
}

describe('E1381 receiver: the message ends at its L record, whatever the frame layout', () => {
  /*
   * What the user saw: a run whose long result record was cut by the analyzer at 240 characters
   * right before "L|" of its unit (mmol/L) reached the LIS without its later results: the gateway
   * took the end frame of that record ("L||N||F…") for the L record, stored half the message as a
   * whole one and refused the rest (no H record).
   * Promise broken: LIS1-A §6.3.1 (ETB frames carry one record in pieces), LIS2-A2 §5.5 (a message
   * ends with L), DESIGN.md §2 (no acknowledged message lost).
   * Cause: e1381-session.ts #isMessageComplete read the end frame's text alone first.
   */
  it('a record cut at 240 characters right before "L|" does not end the message', async () => {
    const head = 'R|1|^^^GLU^^';
    const r1 = `${head}${'X'.repeat(240 - head.length - '|5.4|mmol/'.length)}|5.4|mmol/L||N||F`;
    const text = ['H|\\^&|||a', 'P|1', 'O|1|S1||^^^GLU|R', r1, 'R|2|^^^NA|140|mmol/L||N||F', 'L|1|N'].join('\r') + '\r';
    const frames = framesForText(text, { maxText: 240 });
    expect(frames[4]?.subarray(2, 4).toString('latin1')).toBe('L|');
    const h = await receive(frames);
    expect(h.messages.map((m) => m.text)).toEqual([text]);
    expect(h.wire()).toBe('<ACK>'.repeat(frames.length + 1));
    expect(h.partials).toHaveLength(0);
  });

  it('an L record split over many small frames ends the message (read from its beginning)', async () => {
    const text = ['H|\\^&|||a', 'P|1', 'O|1|S1||^^^GLU|R', 'R|1|^^^GLU|5.4|mmol/L||N||F', 'L|1|N|some|long|terminator|fields'].join('\r') + '\r';
    const frames = framesForText(text, { maxText: 4 });
    const h = await receive(frames);
    expect(h.messages.map((m) => m.text)).toEqual([text]);
  });

  // Regression guard for the fix above: a sender that leaves out the record's CR inside per-record
  // end frames still has its message end at the L frame (a frame after an end frame begins a record).
  it('per-record end frames without CR still end the message at the L frame', async () => {
    const records = ['H|\\^&|||a', 'P|1', 'O|1|S1||^^^GLU|R', 'R|1|^^^GLU|5.4|mmol/L||N||F', 'L|1|N'];
    const frames = records.map((r, i) => buildFrame((i + 1) % 8, Buffer.from(r, 'latin1'), true));
    const h = await receive(frames);
    expect(h.messages.map((m) => m.text)).toEqual([records.join('')]);
  });
});
