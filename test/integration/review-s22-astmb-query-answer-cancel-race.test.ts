/**
 * An analyzer that both asks for its tubes (host query) and gets orders pushed (pushOrders): the
 * order waits in the outbox (its download refused), the analyzer asks for the tube, and the LIS
 * cancels the test while the answer is on the wire (the analyzer has not yet acknowledged its
 * last frame). Real gateway (real LevelDB in a temp dir), the LIS over real MLLP, the analyzer
 * simulated over a real TCP socket.
 *
 * The cancel found the test still to download and dropped it (never sent: nothing to take back),
 * then the analyzer took the answer: it held a cancelled test and ran it, and no cancel followed.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORDER_DOWNLOAD_NS, type OrderDownloadDoc } from '../../gateway/src/astm/order-download.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { ACK, ENQ, EOT, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderLines, orm, refuseSession } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

/** The next frame's text (after STX, up to its LF). */
async function frameText(sim: AnalyzerSim): Promise<string> {
  let b = await sim.nextByte(5_000);
  while (b !== STX) b = await sim.nextByte(5_000);
  let text = '';
  for (let c = await sim.nextByte(5_000); c !== 0x0a; c = await sim.nextByte(5_000)) text += String.fromCharCode(c);
  return text;
}

describe('a test the LIS cancels while its host query answer is on the wire', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-query-cancel-race', { analyzers: [CHEM] }));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('is cancelled on the analyzer once it took the answer', { timeout: 60_000 }, async () => {
    const { sim } = analyzer;
    expect(msa(await lis.send(orm('RC-1', 'ACC-RC-1', ['ALT'])))).toBe('MSA|AA|RC-1');
    await refuseSession(sim);
    await sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', 'Q|1|^ACC-RC-1||ALL||||||||O', 'L|1|N']);
    // The answer: every frame taken but the last, whose acknowledgement waits for the cancel.
    expect(await sim.nextByte(40_000)).toBe(ENQ);
    sim.write([ACK]);
    const texts: string[] = [];
    for (;;) {
      const text = await frameText(sim);
      texts.push(text);
      if (/^\dL\|/.test(text)) break;
      sim.write([ACK]);
    }
    expect(texts.join('\n')).toContain('^^^ALT');
    expect(msa(await lis.send(orm('RC-2', 'ACC-RC-1', ['ALT'], 'CA')))).toBe('MSA|AA|RC-2');
    // The cancel is recorded: the test left the outbox (never downloaded, as far as it knew).
    const key = `${CHEM.id}\u0000ACC-RC-1`;
    for (let doc = await gateway.store!.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, key); !doc?.cancelled.includes('ALT'); doc = await gateway.store!.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, key)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    sim.write([ACK]);
    expect(await sim.nextByte(5_000)).toBe(EOT);
    // The analyzer holds the ALT from the answer: its cancel follows. Before: nothing.
    expect(orderLines(await nextSession(sim, 20_000))).toEqual([['ACC-RC-1', '^^^ALT', 'C']]);
  });
});
