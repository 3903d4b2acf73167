/**
 * `lab-gateway check` and the addresses the gateway listens on (`hl7[].listen`,
 * `analyzers[].tcp.listen`, `mqtt.listen` of the embedded broker, `status.listen`), as IT staff meet
 * them while commissioning: a port another program holds (a real TCP server in this test), a host
 * that is not an address of this machine, a port below 1024, and the gateway of this very
 * configuration already running (a real gateway process). The real CLI as a separate process.
 */
import { spawn } from 'node:child_process';
import { chmod, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, repo, runCli } from '../fixtures/cli.ts';
import { startGatewayProcess } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';

const rig = useLineRig('lgw-commissioning-listen-');
const { file, running, cleanups } = rig;

/** A real TCP server on 127.0.0.1 (another program's service), closed after the test; its port. */
async function holdPort(): Promise<number> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on now (bound and released at once). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Ports {
  hl7: number;
  status: number;
  mqtt: number;
  analyzer?: number;
  hl7Host?: string;
}

/** A site's config: one LIS link, the embedded broker, the status API, and an analyzer that connects to the gateway. */
function site(id: string, p: Ports): Promise<string> {
  return file(
    [
      `gateway: { id: ${id}, dataDir: ${path.join(rig.dir, `${id}-data`)} }`,
      `hl7: [ { id: lis, listen: { host: ${p.hl7Host ?? '127.0.0.1'}, port: ${p.hl7} } } ]`,
      `mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: ${p.mqtt} } }`,
      `status: { listen: { host: 127.0.0.1, port: ${p.status} } }`,
      `analyzers: [ { id: gx-1, profile: cepheid-genexpert, tcp: { listen: { host: 127.0.0.1, port: ${p.analyzer ?? 0} } } } ]`,
      'relay: { enabled: false }',
      '',
    ].join('\n'),
  );
}

/** The lines check printed for `key` (`severity key: message`). */
function linesOf(out: string, key: string): string[] {
  return out.split('\n').filter((l) => l.includes(` ${key}:`));
}

describe('check: a listening port another program holds', () => {
  /**
   * User sees (was): Mosquitto installed from Debian on 1883, the port of an old LIS interface
   * engine still running: `check` said "0 error(s)"; `start` then failed with "mqtt.listen: cannot
   * listen on 127.0.0.1:1883: listen EADDRINUSE: address already in use", one listener at a time.
   * Promise: DESIGN.md §5 `check` "validate config and profiles, print every issue, exit 1 on any
   * error"; README `start` "refuses (exit 1) what check refuses, naming the key".
   */
  it('names every listen key whose port is taken, all at once, with the address and how to find the program', async () => {
    const held = { hl7: await holdPort(), status: await holdPort(), mqtt: await holdPort(), analyzer: await holdPort() };
    const r = await runCli(cliSource, ['check', '--config', await site('site-taken', held)]);
    expect(r.code, r.out).toBe(1);
    for (const [key, port] of [
      ['hl7[0].listen', held.hl7],
      ['analyzers[0].tcp.listen', held.analyzer],
      ['mqtt.listen', held.mqtt],
      ['status.listen', held.status],
    ] as const) {
      const lines = linesOf(r.out, key);
      expect(lines, r.out).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^\\s*error\\s+${key.replace(/[[\].]/g, '\\$&')}: cannot listen on 127\\.0\\.0\\.1:${port}: another program listens there \\(EADDRINUSE\\)`));
      expect(lines[0]).toContain('a gateway already running with another configuration');
      expect(lines[0]).toContain(`ss -ltnp 'sport = :${port}'`);
    }
  }, 30_000);

  /** With an error elsewhere in the file: the taken port is named in the same run. */
  it('is named beside the configuration\'s other errors, in the same run', async () => {
    const port = await holdPort();
    const cfg = await site('site-both', { hl7: port, status: 0, mqtt: 0 });
    const r = await runCli(cliSource, ['check', '--config', await file((await readFile(cfg, 'utf8')).replace('id: site-both', 'id: "site both"'))]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+gateway\.id: /);
    expect(r.out).toMatch(new RegExp(`error\\s+hl7\\[0\\]\\.listen: cannot listen on 127\\.0\\.0\\.1:${port}: another program listens there`));
  }, 30_000);

  /** Free ports: nothing said; check leaves them free (the gateway starts on them right after). */
  it('free ports: no issue, and start listens on them after check', async () => {
    const ports = { hl7: await freePort(), status: await freePort(), mqtt: await freePort(), analyzer: await freePort() };
    const cfg = await site('site-free', ports);
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).not.toMatch(/\.listen/);
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    expect(ready!.hl7.lis?.port).toBe(ports.hl7);
  }, 60_000);

  /**
   * Two keys on one address: the error check already gave (validate.ts, "is already used by") and
   * no second one from trying the port.
   */
  it('two keys on one port: the one error naming both, not a second one', async () => {
    const port = await freePort();
    const r = await runCli(cliSource, ['check', '--config', await site('site-twice', { hl7: port, status: port, mqtt: 0 })]);
    expect(r.code, r.out).toBe(1);
    const mentions = r.out.split('\n').filter((l) => l.includes(`:${port}`));
    expect(mentions, r.out).toHaveLength(1);
    expect(mentions[0]).toMatch(new RegExp(`error\\s+status\\.listen\\.port: 127\\.0\\.0\\.1:${port} is already used by hl7\\[0\\]\\.listen`));
  }, 30_000);
});

describe('check of the configuration of a gateway that is running', () => {
  /**
   * IT staff check an edited configuration before restarting the service: its ports are held by
   * the gateway itself. Told as "another program holds it" with exit 1, that would send them
   * looking for a program that is the gateway. The running gateway is recognised by the lock on
   * its store (gateway.dataDir): a warning, exit 0, saying so and what it would mean otherwise.
   */
  it('warns at each listen key that the running gateway of this gateway.dataDir likely holds it; exit 0', async () => {
    const ports = { hl7: await freePort(), status: await freePort(), mqtt: await freePort(), analyzer: await freePort() };
    const cfg = await site('site-running', ports);
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    expect(await gw.ready, gw.err()).toBeDefined();
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    for (const key of ['hl7[0].listen', 'analyzers[0].tcp.listen', 'mqtt.listen', 'status.listen']) {
      const lines = linesOf(r.out, key);
      expect(lines, r.out).toHaveLength(1);
      expect(lines[0]).toMatch(/^\s*warning\s/);
      expect(lines[0]).toContain(`a gateway is running on this configuration's gateway.dataDir (${path.join(rig.dir, 'site-running-data')})`);
      expect(lines[0]).toContain('another program holds it');
    }
  }, 60_000);
});

describe('check: a listen host that is not an address of this machine', () => {
  /**
   * User sees (was): the LIS link set to listen on the LIS server's address (192.0.2.10) instead of
   * the gateway's own: `check` said "0 error(s)"; `start` failed with "listen EADDRNOTAVAIL".
   */
  it('an error at the key, naming the host and how to list this machine\'s addresses', async () => {
    const port = await freePort();
    const r = await runCli(cliSource, ['check', '--config', await site('site-host', { hl7: port, hl7Host: '192.0.2.10', status: 0, mqtt: 0 })]);
    expect(r.code, r.out).toBe(1);
    const lines = linesOf(r.out, 'hl7[0].listen');
    expect(lines, r.out).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^\\s*error\\s+hl7\\[0\\]\\.listen: cannot listen on 192\\.0\\.2\\.10:${port}: 192\\.0\\.2\\.10 is not an address of this machine \\(EADDRNOTAVAIL\\)`));
    expect(lines[0]).toContain('ip -brief address');
  }, 30_000);
});

describe('check: a listening port below 1024', () => {
  /**
   * User sees (was): the analyzer's port set to 104 as its manual shows it: `check` said "0
   * error(s)"; the gateway, run as its own user (systemd `User=lab-gateway`, no capabilities),
   * failed with "listen EACCES: permission denied". Here check is run as the user nobody
   * (`setpriv`, as systemd's `User=` runs it).
   */
  it('check run as a user without the privilege: an error at the key', async () => {
    await chmod(rig.dir, 0o755);
    const cfg = await site('site-low', { hl7: 0, status: 0, mqtt: 0, analyzer: 104 });
    await chmod(cfg, 0o644);
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, cliSource, 'check', '--config', cfg], { cwd: repo });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => resolve({ code, out, err }));
    });
    expect(r.code, r.out + r.err).toBe(1);
    const lines = linesOf(r.out, 'analyzers[0].tcp.listen');
    expect(lines, r.out).toHaveLength(1);
    expect(lines[0]).toMatch(/^\s*error\s+analyzers\[0\]\.tcp\.listen: cannot listen on 127\.0\.0\.1:104: port 104 is below 1024, which needs a privilege the user nobody does not have \(EACCES\)/);
  }, 30_000);

  /**
   * Check run as root (sudo) can listen there; the gateway's service cannot (build/lab-gateway.service:
   * User=lab-gateway, no capabilities). A warning at the key, not silence.
   */
  it('check run as root: a warning that the gateway\'s service cannot listen there', async () => {
    expect(process.getuid?.(), 'this test runs as root, as the serial-permission tests do').toBe(0);
    const cfg = await site('site-low-root', { hl7: 0, status: 0, mqtt: 0, analyzer: 104 });
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    const lines = linesOf(r.out, 'analyzers[0].tcp.listen');
    expect(lines, r.out).toHaveLength(1);
    expect(lines[0]).toMatch(/^\s*warning\s+analyzers\[0\]\.tcp\.listen: port 104 is below 1024/);
    expect(lines[0]).toContain('lab-gateway.service');
  }, 30_000);
});
