/**
 * Review of 74567ff (a file the user running check may not read is an error): the commands that
 * ask the running gateway (`status`, `events list`) read `--config` for `status.listen` alone, and
 * an operator who may read the configuration but not the admin token file (kept for the gateway's
 * user and the admins) runs them. A real gateway process runs as root; the CLI as the user nobody
 * (`setpriv`), each a separate process.
 */
import { spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliSource, repo, useConfigDir } from '../fixtures/cli.ts';
import { startGatewayProcess, type GatewayProcess } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22b-operator-');
const running: GatewayProcess[] = [];
afterAll(async () => {
  for (const g of running) await g.stop();
});

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

describe('status and events list by an operator who may not read status.adminTokenFile', () => {
  /**
   * User saw: `lab-gateway status --config /etc/lab-gateway/config.yaml`, run by a lab operator,
   * answered "GW_CONFIG_INVALID: … status.adminTokenFile: … cannot be read by the user …" after
   * the upgrade, where it showed the gateway's status the day before: the command needs
   * status.listen only, and the token file is for the admins. Broke: a command that worked is
   * refused over a file it does not read.
   */
  it('asks the running gateway, as before', async () => {
    await chmod(dir, 0o755);
    const tokens = path.join(dir, 'admin.tokens');
    await writeFile(tokens, 'alice 0123456789abcdef0123\n');
    await chmod(tokens, 0o600);
    const body = (port: number): string =>
      [
        `gateway: { id: operator-1, timeZone: UTC, dataDir: ${path.join(dir, 'data')} }`,
        'hl7: []',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        `status: { listen: { host: 127.0.0.1, port: ${port} }, adminTokenFile: admin.tokens }`,
        '',
      ].join('\n');
    const gw = startGatewayProcess(await configFile(body(0), 'gateway.yaml'));
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    // The operator's copy names the port the gateway listens on.
    const cfg = await configFile(body(ready!.status.port), 'config.yaml');
    await chmod(cfg, 0o644);

    const s = await asNobody(['status', '--config', cfg, '--json']);
    expect(s.err).not.toMatch(/GW_CONFIG_INVALID/);
    expect(s.code, s.err).toBe(0);
    expect(JSON.parse(s.out)).toMatchObject({ gatewayId: 'operator-1' });
    const e = await asNobody(['events', 'list', '--config', cfg, '--json']);
    expect(e.err).not.toMatch(/GW_CONFIG_INVALID/);
    expect(e.code, e.err).toBe(0);
    // An admin action still needs the token: said as the file that cannot be read.
    const r = await asNobody(['events', 'replay', 'no-such-event', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/status\.adminTokenFile .*admin\.tokens: cannot read the admin token file \(EACCES\)/);
  });
});
