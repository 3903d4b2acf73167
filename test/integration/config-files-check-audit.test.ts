/**
 * Commissioning day, the files a configuration names: IT staff run `lab-gateway check` (also the
 * systemd unit's ExecStartPre) on a YAML file before `start`. check promises every problem at
 * once, each naming its key, and that start refuses nothing check let pass. Every command runs as
 * a real separate process from the sources; certificates are made here with the openssl CLI.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-cfg-files-');

const listeners = ['mqtt: { listen: { host: 127.0.0.1, port: 0 } }', 'status: { listen: { host: 127.0.0.1, port: 0 } }'];
const check = (file: string, ...extra: string[]) => runCli(cliSource, ['check', '--config', file, ...extra]);
const start = (file: string) => runCli(cliSource, ['start', '--config', file]);

/**
 * A site CA and a server certificate it signed (valid now), and a certificate that expired in
 * 2020 (`openssl ca` takes explicit dates; OpenSSL 3.0's x509 has no -not_after).
 */
function makePki(at: string): void {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: at, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '400', '-subj', '/CN=Commissioning Lab CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '400');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'old-ca.key', '-out', 'old-ca.csr', '-subj', '/CN=Retired Lab CA');
  execFileSync('sh', ['-c', ': > index.txt; echo 01 > serial; printf "[ ca ]\\ndefault_ca = site\\n[ site ]\\ndir = .\\ndatabase = index.txt\\nserial = serial\\nnew_certs_dir = .\\ndefault_md = sha256\\npolicy = any\\n[ any ]\\ncommonName = supplied\\n" > ca.cnf'], { cwd: at });
  run('ca', '-config', 'ca.cnf', '-batch', '-notext', '-selfsign', '-keyfile', 'old-ca.key', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-in', 'old-ca.csr', '-out', 'old-ca.crt');
  execFileSync('sh', ['-c', 'cat ca.crt old-ca.crt > bundle.crt; openssl x509 -in ca.crt -outform der -out ca.der'], { cwd: at });
}

beforeAll(async () => {
  makePki(dir);
  await mkdir(path.join(dir, 'certs'));
  await writeFile(path.join(dir, 'odoo.key'), 'k'.repeat(40) + '\n');
});

describe('check: a file key that names a folder', () => {
  /**
   * User saw: `hl7[0].tls.cert` and `.key` pointed at the certificates folder and
   * `odoo.apiKeyFile` at /etc/lab-gateway (the file name left out); check said "0 error(s)" and
   * exited 0, then start refused with GW_CONFIG_INVALID "EISDIR" — one key at a time, after the
   * ExecStartPre had passed. Broke: check reports every problem start refuses, naming its key.
   */
  it('is an error naming each key, as start refuses it', async () => {
    const file = await configFile(
      [
        `gateway: { id: files-1, dataDir: ${path.join(dir, 'data-1')} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${path.join(dir, 'certs')}, key: ${dir} } } ]`,
        `odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyFile: ${dir} }`,
        ...listeners,
        '',
      ].join('\n'),
    );
    const r = await check(file);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.cert: .*is a directory/);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.key: .*is a directory/);
    expect(r.out).toMatch(/error +odoo\.apiKeyFile: .*is a directory/);
    const s = await start(file);
    expect(s.code).toBe(1);
  });
});

describe('check: CA files', () => {
  /**
   * User saw: odoo.caFile named the private CA in DER form (ca.der, as the CA's web page offers
   * it); check passed, start ran, and every post to Odoo failed its TLS handshake ("unable to get
   * local issuer certificate") with nothing pointing at odoo.caFile: Node reads no certificate
   * from it and says nothing. Broke: bad input gets a clear answer naming the key.
   */
  it('odoo.caFile without a PEM certificate is an error naming the key', async () => {
    const file = await configFile(
      [
        `gateway: { id: files-2, dataDir: ${path.join(dir, 'data-2')} }`,
        `odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyFile: ${path.join(dir, 'odoo.key')}, caFile: ${path.join(dir, 'ca.der')} }`,
        ...listeners,
        '',
      ].join('\n'),
    );
    const r = await check(file);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +odoo\.caFile: .*no PEM certificate/);
  });

  /**
   * User saw: hl7[0].tls.ca (the CA that signs the LIS's client certificates, requireClientCert)
   * named the CA's private key file by mistake; check passed, start was ready, and every LIS
   * connection was refused at the handshake. Broke: check names the key that is wrong.
   */
  it('hl7[].tls.ca without a certificate is an error naming the key', async () => {
    const file = await configFile(
      [
        `gateway: { id: files-3, dataDir: ${path.join(dir, 'data-3')} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${path.join(dir, 'server.crt')}, key: ${path.join(dir, 'server.key')}, ca: ${path.join(dir, 'ca.key')}, requireClientCert: true } } ]`,
        ...listeners,
        '',
      ].join('\n'),
    );
    const r = await check(file);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.ca: .*no PEM certificate/);
  });

  /**
   * User saw: a CA bundle (the current CA, then the retired one that expired in 2020) in
   * hl7[0].tls.ca; check warned of nothing, since only the bundle's first certificate was read,
   * and LIS clients still signed by the retired CA were refused. Broke: check warns about an
   * expired certificate (README, hl7[].tls).
   */
  it('a CA bundle with an expired certificate after a valid one is a warning naming the key', async () => {
    const file = await configFile(
      [
        `gateway: { id: files-4, dataDir: ${path.join(dir, 'data-4')} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${path.join(dir, 'server.crt')}, key: ${path.join(dir, 'server.key')}, ca: ${path.join(dir, 'bundle.crt')}, requireClientCert: true } } ]`,
        `odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyFile: ${path.join(dir, 'odoo.key')}, caFile: ${path.join(dir, 'bundle.crt')} }`,
        ...listeners,
        '',
      ].join('\n'),
    );
    const r = await check(file);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning +hl7\[0\]\.tls\.ca: .*Retired Lab CA.*expired.*2020-02-01/);
    expect(r.out).toMatch(/warning +odoo\.caFile: .*Retired Lab CA.*expired.*2020-02-01/);
  });
});
