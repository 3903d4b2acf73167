import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { connectTcpSim, type Cleanups } from '../fixtures/astm-link/sim-wires.ts';
import { waitFor } from '../fixtures/status/harness.ts';

/**
 * Names in the raw view of an analyzer message that came in E1381 frames. The gateway keeps the
 * exact bytes of the link (ENQ, STX, frame numbers, ETB/ETX, checksums, EOT), and an instrument
 * cuts its text into frames of up to 240 characters wherever the cut falls — the Roche cobas e411
 * packs a whole batch of records into frames and cuts mid-record (corpus
 * astm/roche_cobas-e411_multiframe_capture.bin: `…|^^^7/1/no` ETB, next frame `t|9.61|…`).
 */
describe('the raw view of a framed ASTM message masks the names of a P record cut across frames', () => {
  const cleanups: Cleanups = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  // What the user saw: on the status page (GET /api/messages/:id, no admin token) a cobas e411
  // batch showed one patient's name in clear text and the other's first name: where the frame
  // cut fell inside the P record, the rest of the record (`2|PAT-1||SMITHSON^JOANNA||…`, the
  // next frame's text) was shown as it came.
  // Promise broken: status/README.md "Names": raw ASTM shows P-record fields 6–7 as *** unless an
  // administrator reveals them (an audited action).
  it('masks both patients of a batch whose frames cut one P record before its name and the other inside it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mask-frames-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config = testGatewayConfig('mask-frames', dir, {
      analyzers: [{ id: 'e411', profile: 'roche-cobas-e411', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
    });
    const gateway = new Gateway({ config, log: silentLogger });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const base = addresses.status.url.replace(/\/$/, '');

    const text =
      'H|\\^&|||cobas-e411^1|||||host|RSUPL^BATCH|P|1\r' +
      'P|1||PAT-1||SMITHSON^JOANNA||19800412|F\r' +
      'O|1|000002327|159^0^1^^S1^SC|^^^8^1|R||20190110155445||||N||||1|||||||20190110163045|||F\r' +
      'R|1|^^^8/1/not|1.95|uIU/ml||N||F||pathof|||E1\r' +
      'P|2||PAT-2||KOWALCZYK^BARTHOLOMEW||19750101|M\r' +
      'O|1|000002328|160^0^1^^S1^SC|^^^8^1|R||20190110155445||||N||||1|||||||20190110163045|||F\r' +
      'R|1|^^^8/1/not|2.10|uIU/ml||N||F||pathof|||E1\r' +
      'L|1|N\r';
    // Frame cuts as the instrument makes them (each frame ≤ 240 characters): inside the first P
    // record before its name, inside the second patient's surname.
    const cuts = [text.indexOf('P|1|') + 2, text.indexOf('KOWAL') + 5];
    const pieces: string[] = [];
    let from = 0;
    for (const at of [...cuts, text.length]) {
      for (let i = from; i < at; i += 240) pieces.push(text.slice(i, Math.min(at, i + 240)));
      from = at;
    }
    const frames = pieces.map((p, i) => buildFrame((i + 1) % 8, Buffer.from(p, 'latin1'), i === pieces.length - 1));

    const { sim } = await connectTcpSim(addresses.analyzers['e411']!.port!, cleanups);
    const { replies } = await sim.sendMessage(frames);
    expect(replies).not.toContain('NAK');

    const id = await waitFor(async () => {
      const r = (await (await fetch(`${base}/api/messages?endpoint=e411`)).json()) as { messages: Array<{ id: string }> };
      return r.messages[0]?.id;
    }, 'the message stored');
    const detail = (await (await fetch(`${base}/api/messages/${encodeURIComponent(id)}`)).json()) as { raw: string; namesMasked: boolean };
    expect(detail.namesMasked).toBe(true);
    // The view is the stored link bytes: the frames are still there.
    expect(detail.raw).toContain('\x17');
    for (const name of ['SMITHSON', 'JOANNA', 'KOWAL', 'CZYK', 'BARTHOLOMEW']) expect.soft(detail.raw, name).not.toContain(name);
    // Everything else is shown as it came.
    expect(detail.raw).toContain('PAT-1');
    expect(detail.raw).toContain('19750101');
    expect(detail.raw).toContain('000002328');
  }, 30_000);

  // What the user saw: on a noisy serial line (the LINE_ERRORS case) the analyzer sent the frame
  // that starts a P record, the gateway refused it (checksum), and the analyzer sent it again as
  // E1381 asks. The raw view keeps both copies, and read the refused copy's text glued onto the
  // good one: `P|1||PAT-1||SMIP|1||PAT-1||SMI` then `TH^ANNA…`, so the patient's name was shown.
  // Promise broken: as above (P fields 6–7 as *** without the admin token).
  it('masks the name when the frame that starts the P record was refused and sent again', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mask-frames-retry-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config = testGatewayConfig('mask-frames-retry', dir, {
      analyzers: [{ id: 'e411', profile: 'roche-cobas-e411', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
    });
    const gateway = new Gateway({ config, log: silentLogger });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const base = addresses.status.url.replace(/\/$/, '');

    const header = buildFrame(1, Buffer.from('H|\\^&|||cobas-e411^1|||||host|RSUPL^BATCH|P|1\r', 'latin1'), true);
    const first = buildFrame(2, Buffer.from('P|1||PAT-1||SMI', 'latin1'), false);
    const garbled = Buffer.from(first);
    garbled[garbled.length - 4] = garbled[garbled.length - 4] === 0x30 ? 0x31 : 0x30; // a checksum digit hit by noise
    const rest = buildFrame(3, Buffer.from('THSON^JOANNA||19800412|F\rO|1|000002327|159^0^1^^S1^SC|^^^8^1|R\rR|1|^^^8/1/not|1.95|uIU/ml||N||F\rL|1|N\r', 'latin1'), true);

    const { sim } = await connectTcpSim(addresses.analyzers['e411']!.port!, cleanups);
    sim.write([0x05]);
    expect(await sim.nextByte()).toBe(0x06);
    sim.write(header);
    expect(await sim.nextByte()).toBe(0x06);
    sim.write(garbled);
    expect(await sim.nextByte(), 'the garbled frame is refused').toBe(0x15);
    sim.write(first);
    expect(await sim.nextByte()).toBe(0x06);
    sim.write(rest);
    expect(await sim.nextByte()).toBe(0x06);
    sim.write([0x04]);

    const id = await waitFor(async () => {
      const r = (await (await fetch(`${base}/api/messages?endpoint=e411`)).json()) as { messages: Array<{ id: string }> };
      return r.messages[0]?.id;
    }, 'the message stored');
    const detail = (await (await fetch(`${base}/api/messages/${encodeURIComponent(id)}`)).json()) as { raw: string };
    // Both copies of the first frame are in the view.
    expect(detail.raw.split('PAT-1').length - 1).toBe(2);
    for (const name of ['SMI', 'THSON', 'JOANNA']) expect.soft(detail.raw, name).not.toContain(name);
    expect(detail.raw).toContain('19800412');
  }, 30_000);
});
