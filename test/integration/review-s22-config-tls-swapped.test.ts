/**
 * Commissioning day, a TLS certificate and key written into each other's keys (`cert: server.key`,
 * `key: server.crt`). The real CLI runs as a separate process; the pair is made with openssl.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22-tls-swapped-');

describe('check: hl7[].tls.cert and .key swapped', () => {
  /**
   * User saw: `hl7[0].tls.cert: is not a usable PEM certificate: error:0480006C:PEM routines::no
   * start line` and `hl7[0].tls.key: … error:1E08010C:DECODER routines::unsupported`: OpenSSL's
   * codes, nothing saying that each file is the other's. Broke: a clear error naming the key.
   */
  it('says each file holds the other, and to swap them', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.crt', '-days', '400', '-subj', '/CN=localhost'], { cwd: dir, stdio: 'pipe' });
    const file = await configFile(
      [
        'gateway: { id: swapped-1, timeZone: UTC }',
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: server.key, key: server.crt } } ]',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.cert: .*server\.key holds a private key, not a certificate: cert and key are swapped/);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.key: .*server\.crt holds a certificate, not a private key: cert and key are swapped/);
  });
});
