/**
 * Commissioning day, files the gateway's user may not read: IT staff copy the TLS key, the Odoo key
 * and the admin tokens into place as root (mode 600), and run `lab-gateway check` as the service
 * user before `start` (the systemd unit's ExecStartPre does so). The real CLI runs as a separate
 * process as the user nobody (`setpriv`, as systemd's `User=` runs it); certificates are made here
 * with the openssl CLI.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliSource, repo, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22-unreadable-');

/** `lab-gateway ARGS` as the user nobody (group nogroup, no other group). */
function asNobody(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, cliSource, ...args], { cwd: repo });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

beforeAll(async () => {
  await chmod(dir, 0o755);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.crt', '-days', '400', '-subj', '/CN=localhost'], { cwd: dir, stdio: 'pipe' });
  execFileSync('cp', ['server.crt', 'ca.crt'], { cwd: dir });
  await writeFile(path.join(dir, 'odoo.key'), 'k'.repeat(40) + '\n');
  await writeFile(path.join(dir, 'admin.tokens'), 'alice 0123456789abcdef0123\n');
  // As root copies them: readable by root alone; the certificate world-readable.
  for (const f of ['server.key', 'ca.crt', 'odoo.key', 'admin.tokens']) await chmod(path.join(dir, f), 0o600);
  await chmod(path.join(dir, 'server.crt'), 0o644);
  await mkdir(path.join(dir, 'data'), { mode: 0o777 });
  await chmod(path.join(dir, 'data'), 0o777);
});

describe('check and start, run as the gateway\'s user, on files that user may not read', () => {
  /**
   * User saw: check, run as the service user, said "0 error(s), 0 warning(s)" and exited 0; start
   * then refused with "odoo.apiKeyFile: cannot read …", and after that key was fixed with
   * "hl7[lis].tls: EACCES: EACCES: permission denied, open '…/server.key'" (a key not in the file,
   * the reason doubled), one at a time, while ExecStartPre had passed. Broke: check reports every
   * problem start refuses, naming its key.
   */
  it('each unreadable file is an error at its key, in check and in start', async () => {
    const file = await configFile(
      [
        `gateway: { id: unreadable-1, timeZone: UTC, dataDir: ${path.join(dir, 'data')} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: server.crt, key: server.key, ca: ca.crt } } ]',
        'odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyFile: odoo.key, caFile: ca.crt }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: admin.tokens }',
        '',
      ].join('\n'),
    );
    await chmod(file, 0o644);
    const r = await asNobody(['check', '--config', file]);
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.key: .*server\.key cannot be read by the user nobody \(permission denied\)/);
    expect(r.out).toMatch(/error +hl7\[0\]\.tls\.ca: .*ca\.crt cannot be read by the user nobody/);
    expect(r.out).toMatch(/error +odoo\.apiKeyFile: .*cannot be read by the user nobody/);
    expect(r.out).toMatch(/error +odoo\.caFile: .*cannot be read by the user nobody/);
    expect(r.out).toMatch(/error +status\.adminTokenFile: .*cannot be read by the user nobody/);
    expect(r.out).not.toMatch(/hl7\[0\]\.tls\.cert/);

    const s = await asNobody(['start', '--config', file]);
    expect(s.code).toBe(1);
    expect(s.err).toMatch(/hl7\[0\]\.tls\.key: .*cannot be read by the user nobody/);
    expect(s.err).not.toMatch(/EACCES: EACCES/);
  });
});
