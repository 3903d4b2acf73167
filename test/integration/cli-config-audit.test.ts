/**
 * Commissioning, the way IT staff meet the gateway: `lab-gateway check` on YAML files, `start`
 * refusing bad configurations (ports in use, a data dir that cannot be used, a second gateway on
 * the same store), analyzer profiles, `lab-gateway send` against real and misbehaving MLLP peers,
 * SIGTERM during start-up and during a graceful stop, and the README's reference against what the
 * code accepts. Every command runs as a real separate process from the sources.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useConfigDir } from '../fixtures/cli.ts';
import { refusedPort } from '../fixtures/ports.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repo, 'gateway/src/cli/main.ts');

/** The environment of every child: this process's, without the variable the apiKeyEnv test relies on. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.LGW_AUDIT_UNSET_KEY;
  return env;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { cwd: repo, env: childEnv(env) });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code, signal) => resolve({ code, signal, out, err }));
  });
}

interface Ready {
  hl7: Record<string, { host: string; port: number }>;
  status: { url: string; port: number };
  dataDir: string;
}

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves with the ready line, or undefined when the process exits first. */
  ready: Promise<Ready | undefined>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when stderr contains `text`. */
  waitErr: (text: string) => Promise<void>;
}

function startGateway(configFile: string, env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [cli, 'start', '--config', configFile], { cwd: repo, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const errWaiters: Array<{ text: string; resolve: () => void }> = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const ready = new Promise<Ready | undefined>((resolve) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) resolve(JSON.parse(line) as Ready);
    });
    void exited.then(() => resolve(undefined));
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of errWaiters.splice(0)) {
      if (err.includes(w.text)) w.resolve();
      else errWaiters.push(w);
    }
  });
  return {
    child,
    out: () => out,
    err: () => err,
    ready,
    exited,
    waitErr: (text) => (err.includes(text) ? Promise.resolve() : new Promise<void>((resolve) => errWaiters.push({ text, resolve }))),
  };
}

/** Resolves with the exit, or 'still running' after `ms` (the child is then killed). */
async function exitWithin(r: Running, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([r.exited, new Promise<'still running'>((res) => (timer = setTimeout(() => res('still running'), ms)))]);
  clearTimeout(timer);
  if (outcome === 'still running') {
    r.child.kill('SIGKILL');
    await r.exited;
  }
  return outcome;
}

/** Non-JSON lines of stderr: what a person reads (the JSON log lines are for machines). */
const humanLines = (err: string): string => err.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{')).join('\n');

/** A listening TCP server on an ephemeral loopback port (for ports that must be taken). */
async function occupyPort(onConnection: (s: net.Socket) => void = () => undefined): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const ORDER = (controlId: string, accession: string): string =>
  [
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|${controlId}|P|2.5`,
    `PID|1||MRN-${controlId}^^^LAB^MR||Doe^Jane`,
    `ORC|NW|${accession}||${accession}|SC||||20261125101500`,
    `OBR|1|${accession}||GLU^Glucose^L`,
  ].join('\r');

const { dir, configFile } = useConfigDir('lgw-cli-audit-');
const loopbackListeners = ['hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]', 'mqtt: { listen: { host: 127.0.0.1, port: 0 } }', 'status: { listen: { host: 127.0.0.1, port: 0 } }'].join('\n');

describe('lab-gateway check: every issue at once, each naming its key', () => {
  it('reports configuration errors and analyzer profile errors in the same run', async () => {
    const file = await configFile(['gateway: { id: "bad id" }', 'analyzers: [ { id: a1, profile: sysmex-xn-nope, serial: { path: /dev/ttyUSB9 } } ]', ''].join('\n'));
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('gateway.id');
    // The unknown profile is an error too: a person fixing gateway.id must not find it only on the next run.
    expect(r.out).toContain('analyzers[0].profile');
  });

  it('names profilesDir when that directory does not exist', async () => {
    const file = await configFile(['profilesDir: ./no-such-profiles', 'analyzers: [ { id: a1, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 5001 } } } ]', ''].join('\n'));
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/profilesDir: .*(not found|does not exist|cannot be read)/);
  });

  it('requires the port of analyzers[].tcp.connect', async () => {
    const file = await configFile('analyzers: [ { id: gx-1, profile: cepheid-genexpert, tcp: { connect: { host: 10.0.0.9 } } } ]\n');
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('analyzers[0].tcp.connect.port');
  });

  it('requires the port of analyzers[].tcp.listen (an analyzer cannot find an ephemeral port)', async () => {
    const file = await configFile('analyzers: [ { id: a1, profile: generic-astm, tcp: { listen: { host: 127.0.0.1 } } } ]\n');
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('analyzers[0].tcp.listen.port');
  });

  it('reports a listener clash between 0.0.0.0 and 127.0.0.1 on the same port', async () => {
    const file = await configFile(['hl7: [ { id: lis, listen: { host: 0.0.0.0, port: 42575 } } ]', 'status: { listen: { host: 127.0.0.1, port: 42575 } }', ''].join('\n'));
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error +(status\.listen\.port|hl7\[0\]\.listen\.port): .*42575/);
  });

  it('names the key of a duplicated YAML key', async () => {
    const file = await configFile('gateway:\n  id: lab-a\n  dataDir: ./data\n  id: lab-b\n');
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    const issueLines = r.out.split('\n').slice(1).join('\n');
    expect(issueLines).toMatch(/unique/);
    expect(issueLines).toMatch(/gateway\.id|\bid\b/);
  });

  it('refuses an HL7/MLLP analyzer configured with tcp.connect, as start does', async () => {
    const file = await configFile(
      [`gateway: { id: t-bc, dataDir: ${path.join(dir, 'data-bc')} }`, loopbackListeners, 'analyzers: [ { id: bc-1, profile: mindray-bc-5380, tcp: { connect: { host: 127.0.0.1, port: 5600 } } } ]', ''].join('\n'),
    );
    const start = startGateway(file);
    const started = await start.ready;
    if (started) start.child.kill('SIGTERM');
    await start.exited;
    expect(started).toBeUndefined(); // start refuses it: "needs tcp.listen"
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error +analyzers\[0\]\.tcp/);
  });

  it('agrees with start about an odoo.apiKeyEnv variable that is not set', async () => {
    const file = await configFile(
      [`gateway: { id: t-env, dataDir: ${path.join(dir, 'data-env')} }`, loopbackListeners, 'odoo: { url: "https://127.0.0.1:9", database: lab, login: gw, apiKeyEnv: LGW_AUDIT_UNSET_KEY }', ''].join('\n'),
    );
    const check = await run(['check', '--config', file]);
    const start = startGateway(file);
    const started = await start.ready;
    if (started) start.child.kill('SIGTERM');
    await start.exited;
    // Either check refuses what start refuses, or start runs what check passed.
    expect({ checkExit: check.code, startRefused: started === undefined, startSays: humanLines(start.err()) }).not.toMatchObject({ checkExit: 0, startRefused: true });
  });
});

describe('lab-gateway start refuses what it cannot run, with the key named and no stack trace', () => {
  it('lists every configuration issue and exits 1', async () => {
    const file = await configFile(['gateway: { id: "bad id", dataDir: ./x }', 'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 70000 } } ]', 'odoo: { apiKey: inline }', 'bogus: 1', ''].join('\n'));
    const start = startGateway(file);
    expect(await start.ready).toBeUndefined();
    const { code } = await start.exited;
    expect(code).toBe(1);
    const text = start.err();
    for (const key of ['gateway.id', 'hl7[0].listen.port', 'odoo.apiKey', 'bogus']) expect(text).toContain(key);
    expect(text).not.toMatch(/^\s+at /m);
  });

  it.each(['status', 'mqtt'] as const)('a %s port already in use names its listen key', async (key) => {
    const taken = await occupyPort();
    try {
      const listeners = loopbackListeners.replace(new RegExp(`^(${key}: \\{ listen: \\{ host: 127\\.0\\.0\\.1, port: )0`, 'm'), `$1${taken.port}`);
      const file = await configFile([`gateway: { id: t-port-${key}, dataDir: ${path.join(dir, `data-port-${key}`)} }`, listeners, ''].join('\n'));
      const start = startGateway(file);
      expect(await start.ready).toBeUndefined();
      expect((await start.exited).code).toBe(1);
      const text = humanLines(start.err());
      expect(text).toContain(String(taken.port));
      expect(text).toContain(`${key}.listen`);
      expect(text).not.toMatch(/^\s+at /m);
    } finally {
      await taken.close();
    }
  });

  /**
   * IT staff saw "hl7[lis] cannot listen on 127.0.0.1:2575: …": the endpoint, not the key to fix,
   * where the README promises a port in use names its `listen` key, as an analyzer's does
   * (analyzers[<id>].tcp.listen).
   */
  it('an HL7 port already in use names hl7[].listen', async () => {
    const taken = await occupyPort();
    try {
      const listeners = loopbackListeners.replace(/^(hl7: \[ \{ id: lis, listen: \{ host: 127\.0\.0\.1, port: )0/m, `$1${taken.port}`);
      const file = await configFile([`gateway: { id: t-port-hl7, dataDir: ${path.join(dir, 'data-port-hl7')} }`, listeners, ''].join('\n'));
      const start = startGateway(file);
      expect(await start.ready).toBeUndefined();
      expect((await start.exited).code).toBe(1);
      const text = humanLines(start.err());
      expect(text).toMatch(/hl7\[(0|lis)\]\.listen/);
      expect(text).toContain(`127.0.0.1:${taken.port}`);
      expect(text).not.toMatch(/^\s+at /m);
    } finally {
      await taken.close();
    }
  });

  /**
   * IT staff saw "GW_ASTM_LINK: analyzer a1: cannot start: EADDRINUSE" for an analyzer's port
   * taken by another program: no key to fix, where an HL7 or status port names its key (README:
   * "start refuses what it cannot run, with the key named").
   */
  it("an analyzer's TCP port already in use names analyzers[].tcp.listen", async () => {
    const taken = await occupyPort();
    try {
      const file = await configFile(
        [`gateway: { id: t-port-astm, dataDir: ${path.join(dir, 'data-port-astm')} }`, loopbackListeners, `analyzers: [ { id: a1, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: ${taken.port} } } } ]`, ''].join('\n'),
      );
      const start = startGateway(file);
      expect(await start.ready).toBeUndefined();
      expect((await start.exited).code).toBe(1);
      const text = humanLines(start.err());
      expect(text).toMatch(/analyzers\[(0|a1)\]\.tcp\.listen/);
      expect(text).toContain(`127.0.0.1:${taken.port}`);
      expect(text).not.toMatch(/^\s+at /m);
    } finally {
      await taken.close();
    }
  });

  it('a data dir that cannot be created names gateway.dataDir', async () => {
    const notADir = path.join(dir, 'plain-file');
    await writeFile(notADir, 'not a directory\n');
    const file = await configFile([`gateway: { id: t-data, dataDir: ${path.join(notADir, 'data')} }`, loopbackListeners, ''].join('\n'));
    const start = startGateway(file);
    expect(await start.ready).toBeUndefined();
    expect((await start.exited).code).toBe(1);
    const text = humanLines(start.err());
    expect(text).toContain('gateway.dataDir');
    expect(text).not.toMatch(/^\s+at /m);
  });

  it('an unknown profile is named by its key, analyzers[0].profile, as check names it', async () => {
    const file = await configFile(
      [`gateway: { id: t-prof, dataDir: ${path.join(dir, 'data-prof')} }`, loopbackListeners, 'analyzers: [ { id: xn-1, profile: sysmex-xn-nope, tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]', ''].join('\n'),
    );
    const start = startGateway(file);
    expect(await start.ready).toBeUndefined();
    expect((await start.exited).code).toBe(1);
    const text = humanLines(start.err());
    expect(text).toContain('unknown profile "sysmex-xn-nope"');
    expect(text).toContain('analyzers[0].profile');
  });
});

describe('a running gateway: a second one on the same data dir, and lab-gateway send', () => {
  let gw: Running;
  let ready: Ready;
  let cfg: string;

  beforeAll(async () => {
    cfg = await configFile([`gateway: { id: t-send, dataDir: ${path.join(dir, 'data-send')} }`, loopbackListeners, 'relay: { enabled: false }', ''].join('\n'));
    gw = startGateway(cfg);
    const r = await gw.ready;
    if (!r) throw new Error(`gateway did not start: ${gw.err().slice(-2000)}`);
    ready = r;
  });
  afterAll(async () => {
    if (gw.child.exitCode === null && gw.child.signalCode === null) {
      gw.child.kill('SIGTERM');
      await exitWithin(gw, 20_000);
    }
  });

  it('a second gateway on the same data dir says the store is locked by another process', async () => {
    const second = startGateway(cfg);
    const started = await second.ready;
    if (started) second.child.kill('SIGKILL');
    expect(started).toBeUndefined();
    expect((await second.exited).code).toBe(1);
    const text = humanLines(second.err());
    expect(text).toContain(path.join(dir, 'data-send'));
    expect(text).toMatch(/lock/i);
  });

  it('send exits non-zero when a later message of a multi-message file is rejected', async () => {
    const file = path.join(dir, 'two-second-bad.hl7');
    // The second message has no MSH-10: the gateway answers it AR.
    await writeFile(file, `${ORDER('MIX-1', 'ACC-MIX-1')}\rMSH|^~\\&|LIS|LAB|GW|LAB|20261125101501||ORM^O01||P|2.5\rPID|1||MRN-2\r`);
    const r = await run(['send', '--port', String(ready.hl7.lis!.port), file]);
    expect(r.out).toContain('MSA|AA|MIX-1');
    expect(r.out).toContain('MSA|AR');
    expect(r.code).toBe(1);
  });

  it('send acknowledges every message of a file with LF line ends', async () => {
    const file = path.join(dir, 'two-lf.hl7');
    await writeFile(file, `${ORDER('LF-1', 'ACC-LF-1')}\r${ORDER('LF-2', 'ACC-LF-2')}\r`.replace(/\r/g, '\n'));
    const r = await run(['send', '--port', String(ready.hl7.lis!.port), file]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('MSA|AA|LF-1');
    expect(r.out).toContain('MSA|AA|LF-2');
  });

  it('send to a refused port: a message naming the address, exit 1', async () => {
    const closed = await refusedPort();
    const file = path.join(dir, 'one.hl7');
    await writeFile(file, `${ORDER('REF-1', 'ACC-REF-1')}\r`);
    const r = await run(['send', '--port', String(closed), file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`127.0.0.1:${closed}`);
    expect(r.err).not.toMatch(/^\s+at /m);
  });

  it('send to a server that never answers: a clear message, exit 1', async () => {
    const silent = await occupyPort((s) => s.on('data', () => undefined));
    try {
      const file = path.join(dir, 'silent.hl7');
      await writeFile(file, `${ORDER('SIL-1', 'ACC-SIL-1')}\r`);
      const r = await run(['send', '--port', String(silent.port), '--timeout-ms', '500', file]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/no reply/);
      expect(r.err).not.toMatch(/^\s+at /m);
    } finally {
      await silent.close();
    }
  });
});

describe('SIGTERM', () => {
  it('during start-up: the process stops and exits, opening no listener after it stopped', async () => {
    // An external MQTT broker that accepts and never answers holds start-up inside the MQTT step
    // (after the store and the status API, before the HL7 listener): SIGTERM arrives right there.
    let running: Running | undefined;
    const broker = await occupyPort(() => running?.child.kill('SIGTERM'));
    try {
      const file = await configFile(
        [`gateway: { id: t-sig-start, dataDir: ${path.join(dir, 'data-sig-start')} }`, 'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]', `mqtt: { broker: "mqtt://127.0.0.1:${broker.port}" }`, 'status: { listen: { host: 127.0.0.1, port: 0 } }', 'relay: { enabled: false }', ''].join('\n'),
      );
      running = startGateway(file);
      const outcome = await exitWithin(running, 10_000);
      const log = running.err();
      const stoppedAt = log.indexOf('"msg":"stopped","gateway":"t-sig-start"}');
      expect(stoppedAt).toBeGreaterThan(-1);
      // Nothing may start listening once the gateway reported itself stopped.
      expect(log.slice(stoppedAt)).not.toContain('"msg":"listening"');
      expect(outcome).not.toBe('still running');
    } finally {
      await broker.close();
    }
  });

  it('a second SIGTERM during the graceful stop does not abort it', async () => {
    const file = await configFile([`gateway: { id: t-sig2, dataDir: ${path.join(dir, 'data-sig2')} }`, loopbackListeners, 'relay: { enabled: false }', ''].join('\n'));
    const gw = startGateway(file);
    const ready = await gw.ready;
    if (!ready) throw new Error(`gateway did not start: ${gw.err().slice(-2000)}`);
    // A sender that keeps its side open: the graceful stop waits for it (up to its deadline).
    const client = net.connect({ host: '127.0.0.1', port: ready.hl7.lis!.port, allowHalfOpen: true });
    client.on('error', () => undefined);
    let received = '';
    const acked = new Promise<void>((resolve) =>
      client.on('data', (d: Buffer) => {
        received += d.toString('latin1');
        if (received.includes('MSA|AA|SIG-1')) resolve();
      }),
    );
    const halfClosed = new Promise<void>((resolve) => client.on('end', () => resolve()));
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    client.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(`${ORDER('SIG-1', 'ACC-SIG-1')}\r`, 'latin1'), Buffer.from([0x1c, 0x0d])]));
    await acked;
    try {
      gw.child.kill('SIGTERM');
      await halfClosed; // the gateway is stopping: it has half-closed our connection
      gw.child.kill('SIGTERM');
      // Give the second signal time to land, then let the stop finish.
      await new Promise((r) => setTimeout(r, 1_000));
      client.end();
      const outcome = await exitWithin(gw, 20_000);
      expect(outcome).toEqual({ code: 0, signal: null });
      expect(gw.err()).toContain('lab-gateway stopped');
    } finally {
      client.destroy();
    }
  });
});

describe('firmware profiles and the README reference', () => {
  it('profiles check accepts a documented alias of a valid profile (sysmex-xn)', async () => {
    const aliases = JSON.parse(readFileSync(path.join(repo, 'firmware-profiles/aliases.json'), 'utf8')) as Record<string, string>;
    expect(aliases['sysmex-xn']).toBe('sysmex-xn-l');
    const direct = await run(['profiles', 'check', 'sysmex-xn-l']);
    expect(direct.code).toBe(0);
    const alias = await run(['profiles', 'check', 'sysmex-xn']);
    expect(alias.out).not.toContain('differs from the file name');
    expect(alias.code).toBe(0);
  });

  const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const configReference = readme.slice(readme.indexOf('## Configuration reference'), readme.indexOf('## HTTP status API'));
  const commandLine = readme.slice(readme.indexOf('## Command line'), readme.indexOf('## Configuration reference'));

  it('documents hl7[].analyzer, a key the configuration accepts and the gateway reads', async () => {
    const file = await configFile(`hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 2575 }, analyzer: xn-1 } ]\n`);
    const r = await run(['check', '--config', file]);
    expect(r.code).toBe(0); // accepted, not an unknown key
    expect(configReference).toContain('hl7[].analyzer');
  });

  it('documents the send options the command accepts (--timeout-ms bounds the wait on a silent server)', () => {
    const sendLine = commandLine.split('\n').find((l) => l.startsWith('| `lab-gateway send'));
    expect(sendLine).toBeDefined();
    expect(sendLine).toContain('--timeout-ms');
  });
});
