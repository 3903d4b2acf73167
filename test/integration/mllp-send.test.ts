import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { sendHl7FilesAll } from '../../gateway/src/ingress/mllp/mllp-send.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';

let h: GatewayHarness;
let dir: string;
beforeAll(async () => {
  h = await GatewayHarness.start();
  dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-send-'));
});
afterAll(async () => {
  await h.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('sendHl7Files (lab-gateway send)', () => {
  it('sends plain, MLLP-wrapped and broken files and reports every acknowledgement', async () => {
    const broken = path.join(dir, 'broken.hl7');
    writeFileSync(broken, 'PID|1||X\r');
    const files = [
      path.join(corpusDir, 'oru_r01_glucose_python-hl7.hl7'),
      path.join(corpusDir, 'oru_r01_mindray-bs200_patient-result_vendor-manual.mllp'),
      path.join(corpusDir, 'batch_bhs-bts_2msgs_adt_a04_python-hl7.hl7'),
      broken,
    ];
    const results = await sendHl7FilesAll({ host: '127.0.0.1', port: h.port, files });
    expect(results.map((r) => [path.basename(r.file), r.controlId, r.ackCode, r.ackControlId])).toEqual([
      ['oru_r01_glucose_python-hl7.hl7', 'CNTRL-3456', 'AA', 'CNTRL-3456'],
      ['oru_r01_mindray-bs200_patient-result_vendor-manual.mllp', '1', 'AA', '1'],
      ['batch_bhs-bts_2msgs_adt_a04_python-hl7.hl7', '12334456778890', 'AA', '12334456778890'],
      ['broken.hl7', '', 'AR', ''],
    ]);
    expect(results[3]?.ack).toMatch(/does not start with an MSH segment/);
  });
});

describe('bytes outside frames', () => {
  it('are ignored, reported once as a count, and do not disturb the next frame', async () => {
    const reports: number[] = [];
    const off = h.telemetry.on('endpoint.ignored-bytes', (e) => reports.push(e.count));
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    const reply = c.expect(1);
    c.writeRaw(Buffer.concat([Buffer.from('\r\n\r\nnoise'), wrapFrame(Buffer.from('MSH|^~\\&|A|B|C|D|2024||ADT^A01|IGN1|P|2.5\r'))]));
    expect((await reply)[0]?.toString('latin1')).toContain('MSA|AA|IGN1');
    await c.close();
    off();
    expect(reports).toEqual([9]);
  });
});
