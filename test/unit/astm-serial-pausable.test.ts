/**
 * Which serial lines the E1381 link may stop reading while a commit waits (serial-transport.ts,
 * `Wire.pause`; gateway/src/ingress/astm/README.md "The bytes waiting behind a commit are
 * bounded"): only one with RTS/CTS. XON/XOFF alone does not hold an analyzer behind most USB
 * adapters (the generic USB-serial driver stops reading a throttled adapter without sending XOFF,
 * and the adapter drops what overflows, uncounted), so such a line is read on, as one without flow
 * control. A real pty pair (socat), the real SerialTransport.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SerialTransport, serialSettings } from '../../gateway/src/ingress/astm/serial-transport.ts';
import type { Wire } from '../../gateway/src/ingress/astm/transport.ts';
import { startPtyPair, type PtyPair } from '../fixtures/astm-link/pty-pair.ts';

const open: Array<{ transport: SerialTransport; pair: PtyPair; dir: string }> = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.transport.stop();
    await o.pair.kill();
    await rm(o.dir, { recursive: true, force: true });
  }
});

async function wireWith(flow: { rtscts?: boolean; xon?: boolean; xoff?: boolean }): Promise<Wire> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lgw-pausable-'));
  const pair = await startPtyPair(dir);
  let attached: Wire | undefined;
  const transport = new SerialTransport(
    serialSettings({ path: pair.b, ...flow }),
    { attach: (wire) => ((attached = wire), { data: () => undefined, closed: () => undefined }), state: () => undefined },
    { initialMs: 50, maxMs: 200 },
  );
  open.push({ transport, pair, dir });
  await transport.start();
  await expect.poll(() => attached, { timeout: 10_000 }).toBeDefined();
  return attached as Wire;
}

describe('a serial line is paused behind a commit only with RTS/CTS', () => {
  it('RTS/CTS: the wire can be paused and resumed', async () => {
    const wire = await wireWith({ rtscts: true });
    expect(typeof wire.pause).toBe('function');
    expect(typeof wire.resume).toBe('function');
  });

  it('XON/XOFF alone: not paused (read on), as without flow control', async () => {
    expect((await wireWith({ xon: true, xoff: true })).pause).toBeUndefined();
    expect((await wireWith({})).pause).toBeUndefined();
  });
});
