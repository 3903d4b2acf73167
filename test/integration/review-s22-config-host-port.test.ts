/**
 * Commissioning day, an address copied as the analyzer's menu or a browser shows it: with its port
 * (`10.0.0.5:4000`) or a scheme (`tcp://10.0.0.6`) in the `host` key. The real CLI runs as a
 * separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-host-port-');

describe('check: a host written with its port or a scheme', () => {
  /**
   * User saw: `tcp: { connect: { host: "10.0.0.5:4000", port: 4000 } }` passed check ("0
   * error(s)"), and the started gateway tried to look up a host named "10.0.0.5:4000" for ever, the
   * analyzer in error with "getaddrinfo ENOTFOUND". A listener's host so written was "cannot listen
   * on 127.0.0.1:2575:2575: ENOTFOUND", the port doubled. Broke: a clear error naming the key, and
   * what to write.
   */
  it('is an error at the host key naming the host and port to write', async () => {
    const file = await configFile(
      [
        'gateway: { id: host-1, timeZone: UTC }',
        'hl7: [ { id: lis, listen: { host: "127.0.0.1:2575", port: 2575 } } ]',
        'analyzers:',
        '  - { id: c-1, profile: generic-astm, tcp: { connect: { host: "10.0.0.5:4000", port: 4000 } } }',
        '  - { id: c-2, profile: generic-astm, tcp: { connect: { host: "tcp://10.0.0.6", port: 4000 } } }',
        '  - { id: c-3, profile: generic-astm, tcp: { connect: { host: "fe80::1", port: 4000 } } }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +hl7\[0\]\.listen\.host: "127\.0\.0\.1:2575" is not a host name or address: write host: 127\.0\.0\.1 and port: 2575/);
    expect(r.out).toMatch(/error +analyzers\[0\]\.tcp\.connect\.host: "10\.0\.0\.5:4000" is not a host name or address: write host: 10\.0\.0\.5 and port: 4000/);
    expect(r.out).toMatch(/error +analyzers\[1\]\.tcp\.connect\.host: "tcp:\/\/10\.0\.0\.6" is not a host name or address: write host: 10\.0\.0\.6/);
    expect(r.out).not.toMatch(/analyzers\[2\]/);
    expect(r.out).not.toMatch(/ENOTFOUND/);
  });
});
