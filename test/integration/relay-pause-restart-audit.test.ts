/**
 * An operator's pause of the relay across a restart of the gateway.
 *
 * What finance saw: sending to Odoo was paused for the month-end close (POST /api/relay/pause,
 * "period close"). The box was updated overnight, or the power went: the gateway came back
 * sending, and the night's orders, results and invoices went into the closing period, with no one
 * having resumed it. The pause lived in memory only; the audit trail still said "relay-pause" with
 * no "relay-resume" after it. Promise broken: an operator's action holds until an operator undoes
 * it (the LIS/Odoo workflow article: governance; status/README.md, admin routes).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { lisOrm } from '../fixtures/lis-rig.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';
import { writeAdminToken } from '../fixtures/status/harness.ts';

const KEY_ENV = 'LGW_PAUSE_RESTART_KEY';
process.env[KEY_ENV] = BOT.key;
const TOKEN = 'pause-restart-admin-token-0123456789';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

describe('a relay paused by an operator', () => {
  it('stays paused across a restart until an operator resumes it', async () => {
    const { emu, url } = await startEmulator(17);
    closers.push(() => emu.close());
    const dir = mkdtempSync(path.join(tmpdir(), 'lgw-pause-restart-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const tokenFile = writeAdminToken(dir, TOKEN);
    const config = testGatewayConfig('pause-restart', path.join(dir, 'data'), {
      odoo: { url, database: 'lab', login: BOT.login, apiKeyEnv: KEY_ENV, timeoutMs: 3000 },
      relay: { enabled: true, invoicing: false, backoff: { initialMs: 20, maxMs: 100, multiplier: 2, jitter: 0 } },
      status: { listen: { host: '127.0.0.1', port: 0 }, adminTokenFile: tokenFile },
    });
    const start = async (): Promise<{ gateway: Gateway; base: string; send(text: string): Promise<string> }> => {
      const gateway = new Gateway({ config, log: silentLogger });
      await gateway.start();
      let client: MllpClient | undefined;
      closers.push(async () => {
        await client?.close().catch(() => undefined);
        await gateway.stop(5_000);
      });
      const base = gateway.addresses().status.url.replace(/\/$/, '');
      return {
        gateway,
        base,
        async send(text) {
          client ??= await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7['lis']!.port });
          return (await client.send(Buffer.from(text, 'latin1'))).toString('latin1');
        },
      };
    };
    const admin = async (base: string, action: 'pause' | 'resume', reason: string): Promise<number> => {
      const r = await fetch(`${base}/api/relay/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ reason }) });
      await r.arrayBuffer();
      return r.status;
    };
    const odooState = async (base: string): Promise<string> => ((await (await fetch(`${base}/api/status`)).json()) as { odoo: { state: string } }).odoo.state;
    const orders = (ref: string): number => emu.count('sale.order', [['client_order_ref', '=', ref]]);

    // Day 1: the relay runs, then finance pauses it for the close.
    let gw = await start();
    await gw.send(lisOrm('PR-1', 'PR-100', ['GLU']));
    await waitFor(() => orders('PR-100') === 1, 15_000);
    expect(await admin(gw.base, 'pause', 'period close')).toBe(200);
    await gw.gateway.stop(5_000);

    // The night's update: the gateway starts again, still paused, and holds what arrives.
    gw = await start();
    expect(await odooState(gw.base)).toBe('paused');
    expect(await gw.send(lisOrm('PR-2', 'PR-200', ['GLU']))).toMatch(/MSA\|AA\|PR-2/);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(orders('PR-200'), 'nothing sent while paused').toBe(0);

    // Finance resumes it: the held order goes, and a later restart no longer pauses.
    expect(await admin(gw.base, 'resume', 'period closed')).toBe(200);
    await waitFor(() => orders('PR-200') === 1, 15_000);
    await gw.gateway.stop(5_000);
    gw = await start();
    expect(await odooState(gw.base)).not.toBe('paused');
    await gw.send(lisOrm('PR-3', 'PR-300', ['GLU']));
    await waitFor(() => orders('PR-300') === 1, 15_000);
  });
});
