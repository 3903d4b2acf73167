/**
 * Commissioning day, two listeners written with different names for one address: `localhost` for
 * the analyzer, `127.0.0.1` for the LIS, on one port. The real CLI runs as a separate process.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-listen-alias-');

/** A port free at this instant (bound on 127.0.0.1 and closed). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('check: two listeners on one address written two ways', () => {
  /**
   * User saw: `hl7[0].listen: { host: 127.0.0.1, port: P }` and `analyzers[0].tcp.listen:
   * { host: localhost, port: P }`; check said "0 error(s)" (the file compares the words, and each
   * address was tried alone, free), and start refused: "analyzers[0].tcp.listen cannot listen on
   * localhost:P: EADDRINUSE". Broke: check reports what start refuses, at the key.
   */
  it('is an error at the second key naming the first, in check as start refuses it', async () => {
    const port = await freePort();
    const file = await configFile(
      [
        'gateway: { id: alias-1, timeZone: UTC }',
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: ${port} } } ]`,
        `analyzers: [ { id: g-1, profile: generic-astm, tcp: { listen: { host: localhost, port: ${port} } } } ]`,
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(new RegExp(`error +analyzers\\[0\\]\\.tcp\\.listen: cannot listen on localhost:${port}: .*the same address as hl7\\[0\\]\\.listen \\(127\\.0\\.0\\.1:${port}\\)`));
    expect(r.out).not.toMatch(/another program/);
  });
});
