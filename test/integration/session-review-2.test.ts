/**
 * Review of this session's changes (order download, invoice partition, relay back-off, retention,
 * analyzer results): each test demonstrates a regression or a new bug and fails on the current code.
 * Real gateway, real LevelDB store in a temp dir, real TCP/MLLP sockets.
 */
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ACK, ENQ, EOT, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';

// ------------------------------------------------------------------------------------------------

describe('order download: a cancel racing the download of its test', () => {
  it('a test the LIS cancels while its download is on the wire gets its cancel (O.12 = C) on the open link', async () => {
    const { gateway, stop } = await startTestGateway('review2-cancel-race', { analyzers: [CENTAUR] });
    let analyzer: { sim: AnalyzerSim; socket: net.Socket } | undefined;
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    try {
      analyzer = await connectAnalyzer(gateway, 'centaur-1');
      const { sim } = analyzer;
      expect((await lis.send(orm('RC-1', 'ACC-RC-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|RC-1');
      // The gateway downloads the order; the analyzer acknowledges every frame but holds the ACK
      // of the last one (E1381 allows 15 s) while the LIS cancels the test.
      expect(await sim.nextByte(5_000)).toBe(ENQ);
      sim.write([ACK]);
      let text = '';
      for (;;) {
        const b = await sim.nextByte(5_000);
        if (b !== STX) continue;
        let frame = '';
        for (let c = await sim.nextByte(5_000); c !== 0x0a; c = await sim.nextByte(5_000)) frame += String.fromCharCode(c);
        text += frame;
        if (/^\dL\|/.test(frame) || /\rL\|/.test(frame)) break; // the terminator record: the message's last frame
        sim.write([ACK]);
      }
      expect(text).toContain('ACC-RC-1');
      // The download is on the wire: the LIS cancels TSH now (stored and acknowledged).
      expect((await lis.send(orm('RC-2', 'ACC-RC-1', ['TSH'], 'CA'))).toString('latin1')).toContain('MSA|AA|RC-2');
      await new Promise((r) => setTimeout(r, 300));
      // The analyzer accepts the last frame: it has TSH for ACC-RC-1 now.
      sim.write([ACK]);
      expect(await sim.nextByte(5_000)).toBe(EOT);
      // README: "a test cancelled while its download was on the wire gets its cancel afterwards".
      const cancel = await nextSession(sim, 5_000);
      const o = orderRecords(cancel).find((r) => r[2] === 'ACC-RC-1');
      expect(o, 'the analyzer took TSH for ACC-RC-1 and never got its cancel while the link stays open: it runs a cancelled test').toBeDefined();
      expect(o![11]).toBe('C');
    } finally {
      analyzer?.socket.destroy();
      await lis.close().catch(() => undefined);
      await stop();
    }
  }, 30_000);
});

describe('order download: a test ordered again after its cancellation', () => {
  it('a test the LIS cancels then orders again (billed again by the relay) is downloaded to the analyzer again', async () => {
    const { gateway, stop } = await startTestGateway('review2-reorder', { analyzers: [CENTAUR] });
    let analyzer: { sim: AnalyzerSim; socket: net.Socket } | undefined;
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    try {
      analyzer = await connectAnalyzer(gateway, 'centaur-1');
      const { sim } = analyzer;
      expect((await lis.send(orm('RO-1', 'ACC-RO-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|RO-1');
      expect(orderRecords(await nextSession(sim)).map((o) => o[2])).toEqual(['ACC-RO-1']);
      expect((await lis.send(orm('RO-2', 'ACC-RO-1', ['TSH'], 'CA'))).toString('latin1')).toContain('MSA|AA|RO-2');
      const cancel = orderRecords(await nextSession(sim)).find((r) => r[2] === 'ACC-RO-1');
      expect(cancel?.[11]).toBe('C');
      // The physician orders TSH again on the same tube: a new order (NW), stored and acknowledged;
      // the relay bills it again (events/invoice-eligibility.ts: "ordered again").
      expect((await lis.send(orm('RO-3', 'ACC-RO-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|RO-3');
      const again = orderRecords(await nextSession(sim, 5_000)).find((r) => r[2] === 'ACC-RO-1');
      expect(again, 'the test ordered again never reaches the analyzer (billed, never run)').toBeDefined();
      expect(again![11]).not.toBe('C');
    } finally {
      analyzer?.socket.destroy();
      await lis.close().catch(() => undefined);
      await stop();
    }
  }, 30_000);
});
