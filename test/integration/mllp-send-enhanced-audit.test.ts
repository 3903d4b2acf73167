/**
 * `lab-gateway send` (mllp-send.ts) against an HL7 link in enhanced acknowledgement mode
 * (`ack: enhanced`), with messages of the corpus whose MSH-15/MSH-16 ask for a commit and an
 * application acknowledgement, or for none. Real parts: a LevelDB EventStore in a temp dir, the
 * MllpEndpoint on a real TCP port, sendHl7Files as IT staff run it.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sendHl7FilesAll } from '../../gateway/src/ingress/mllp/mllp-send.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** MSH-15 AL, MSH-16 AL: a commit ACK, then an application ACK. */
const AL_AL = path.join(corpusDir, 'oru_r01_v2.2_radiology_hapi-npac.hl7');
/** MSH-15 NE, MSH-16 empty: no acknowledgement at all in enhanced mode. */
const NE = path.join(corpusDir, 'orm_o01_v2.2_hapi-npac.hl7');
/** No MSH-15/16: original mode, one AA. */
const PLAIN = path.join(corpusDir, 'oru_r01_glucose_python-hl7.hl7');

describe('lab-gateway send to an enhanced-mode link', () => {
  /**
   * What the user saw: IT staff commissioning an enhanced-mode LIS link replayed the LIS's captured
   * messages with `lab-gateway send`. A message asking for both acknowledgements was reported "CA"
   * alone (the application ACK, which the gateway sent in the same write, was dropped as
   * unsolicited), and the next file — a message asking for none (MSH-15 NE) — hung for the full
   * 30 s timeout and ended the run with "no reply within 30000 ms": the files after it were never
   * sent, though the gateway had stored the message as asked.
   * Promise broken: issue 2 "`lab-gateway send` (send HL7 files over MLLP and print the ACKs)";
   * enhanced mode "commit ACK … then an application ACK according to MSH-15/MSH-16".
   */
  it('reports the commit and the application ACK, takes a message that asks for none, and goes on', async () => {
    h = await GatewayHarness.start({ ack: 'enhanced' });
    const results = await sendHl7FilesAll({ host: '127.0.0.1', port: h.port, files: [AL_AL, NE, PLAIN], timeoutMs: 30_000 });
    expect(results.map((r) => path.basename(r.file))).toEqual([path.basename(AL_AL), path.basename(NE), path.basename(PLAIN)]);
    const [alAl, ne, plain] = results;
    expect(alAl?.messages.map((m) => [m.ackCode, m.ackControlId])).toEqual([
      ['CA', alAl?.controlId],
      ['AA', alAl?.controlId],
    ]);
    expect(alAl?.ok).toBe(true);
    // Asked for no acknowledgement: none came, and that is what the report says.
    expect(ne?.messages).toEqual([]);
    expect(ne?.ack).toBe('');
    expect(ne?.ok).toBe(true);
    expect(ne?.note).toMatch(/asks for no acknowledgement/);
    // The file after it is sent and gets its own reply.
    expect([plain?.ackCode, plain?.ackControlId]).toEqual(['AA', plain?.controlId]);
    for (const r of results) expect((await h.store.listMessages({ controlId: r.controlId, endpoint: 'lis' })).length, r.file).toBe(1);
  });
});
