/**
 * Review of 2be2dba (a host written with its port, a scheme or brackets): a `tcp.connect.host`
 * pasted with the white space around it, kept by its quotes (`host: "10.0.0.6 "`, copied from a
 * spreadsheet of the lab's addresses). The real CLI runs as a separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22b-host-space-');

describe('check: a host with white space around it', () => {
  /**
   * User saw: check said "0 error(s)" and the analyzer never connected: the gateway looked up a
   * host named "10.0.0.6 " for ever (getaddrinfo ENOTFOUND), the failure 2be2dba names for a host
   * written with its port. Broke: a clear error at the key naming the host to write.
   */
  it('is an error at the key naming the host to write', async () => {
    const file = await configFile(
      [
        'gateway: { id: host-space-1, timeZone: UTC }',
        'hl7: []',
        'analyzers:',
        '  - { id: e411, profile: cobas-e411, tcp: { connect: { host: "10.0.0.6 ", port: 5000 } } }',
        '  - { id: e412, profile: cobas-e411, tcp: { connect: { host: "\\tanalyzer-2.lab.local", port: 5000 } } }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: "127.0.0.1 ", port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +analyzers\[0\]\.tcp\.connect\.host: "10\.0\.0\.6 " has white space around it: write host: 10\.0\.0\.6/);
    expect(r.out).toMatch(/error +analyzers\[1\]\.tcp\.connect\.host: .* has white space around it: write host: analyzer-2\.lab\.local/);
    expect(r.out).toMatch(/error +status\.listen\.host: "127\.0\.0\.1 " has white space around it: write host: 127\.0\.0\.1/);
  });
});
