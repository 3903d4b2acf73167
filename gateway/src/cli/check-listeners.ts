import { readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { userInfo } from 'node:os';
import type { ConfigIssue } from '../config/types.ts';
import type { ListenerAt } from '../config/validate.ts';
import { describeError } from '../errors.ts';
import { readStoreAtRest } from '../store/inspect.ts';

/**
 * `check`'s try of every address the gateway would listen on (`hl7[].listen`,
 * `analyzers[].tcp.listen`, the embedded broker's `mqtt.listen`, `status.listen`): each is bound
 * for an instant and closed at once, one after the other, as start binds them. What start would
 * fail on is an error at the key, in start's words (`<key> cannot listen on host:port`) with why:
 *
 * - EADDRINUSE: another program listens there, with `ss` to find it. When a gateway runs on this
 *   configuration's gateway.dataDir (its store locked: store/inspect.ts readStoreAtRest, the store
 *   only looked at when a port is taken), that gateway most likely holds the port: a warning, so
 *   that checking the configuration of a running gateway before its restart passes. A port held
 *   by another program while that gateway runs is then a warning too (which process holds a port is
 *   not ours to see); the warning says so.
 * - EADDRNOTAVAIL: the host is not an address of this machine.
 * - EACCES: a port below the kernel's first unprivileged port (1024), without the privilege.
 *   A check run with the privilege (root, sudo) warns instead: the packaged service runs as its own
 *   user without any capability (build/lab-gateway.service), and would be refused.
 * - anything else (a host name that does not resolve): an error with the system's words.
 */
export async function checkListeners(listeners: readonly ListenerAt[], dataDir: string | undefined): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const firstFree = unprivilegedPortStart();
  let gatewayRunning: boolean | undefined;
  // Each address stays bound until every one was tried, as start holds them all: two keys that
  // name one address in two ways (`localhost` and `127.0.0.1`, a host name and its address) were
  // each free alone, so check passed what start refused with EADDRINUSE
  // (test/integration/review-s22-config-listen-alias.test.ts).
  const held: Array<{ l: ListenerAt; server: net.Server }> = [];
  try {
    for (const l of listeners) {
      const tried = await tryListen(l.host, l.port);
      if (tried.server) held.push({ l, server: tried.server });
      const err = tried.err;
      const at = `cannot listen on ${hostPort(l.host, l.port)}`;
      const ours = err?.code === 'EADDRINUSE' ? await heldAlready(held, l) : undefined;
      if (ours) {
        issues.push({ severity: 'error', path: l.path, message: `${at}: ${l.host} is the same address as ${ours.l.path} (${hostPort(ours.l.host, ours.l.port)}) on this machine, and one port takes one listener (EADDRINUSE): start would fail here. Give one of them another port` });
        continue;
      }
      await issueFor(l, err, at);
    }
  } finally {
    await Promise.all(held.map((h) => new Promise<void>((r) => h.server.close(() => r()))));
  }
  return issues;

  async function issueFor(l: ListenerAt, err: NodeJS.ErrnoException | undefined, at: string): Promise<void> {
    if (err === undefined) {
      if (l.port < firstFree) {
        issues.push({
          severity: 'warning',
          path: l.path,
          message: `port ${l.port} is below ${firstFree}: check, run as ${whoami()}, may listen there, but the gateway's service runs as the user lab-gateway without that privilege (lab-gateway.service) and would fail with EACCES; use a port of ${firstFree} or above (and set the other side to it)`,
        });
      }
      return;
    }
    const ss = `\`ss -ltnp 'sport = :${l.port}'\` names it`;
    switch (err.code) {
      case 'EADDRINUSE':
        gatewayRunning ??= dataDir !== undefined && (await storeHeld(dataDir));
        if (gatewayRunning) {
          issues.push({
            severity: 'warning',
            path: l.path,
            message: `${hostPort(l.host, l.port)} is in use (EADDRINUSE), and a gateway is running on this configuration's gateway.dataDir (${dataDir}): most likely that gateway listens there, and restarting it frees the port for this configuration. If it does not listen there, another program holds it and start would fail here (${ss})`,
          });
        } else {
          issues.push({ severity: 'error', path: l.path, message: `${at}: another program listens there (EADDRINUSE): start would fail here. Another service, or a gateway already running with another configuration; ${ss}` });
        }
        break;
      case 'EADDRNOTAVAIL':
        issues.push({
          severity: 'error',
          path: l.path,
          message: `${at}: ${l.host} is not an address of this machine (EADDRNOTAVAIL): start would fail here. Write the address of this machine's lab LAN interface (\`ip -brief address\` lists them), or 127.0.0.1`,
        });
        break;
      case 'EACCES':
        issues.push({
          severity: 'error',
          path: l.path,
          message: `${at}: port ${l.port} is below ${firstFree}, which needs a privilege the user ${whoami()} does not have (EACCES): start would fail here. Use a port of ${firstFree} or above (and set the other side to it)`,
        });
        break;
      default:
        issues.push({ severity: 'error', path: l.path, message: `${at}: ${describeError(err)}: start would fail here` });
    }
  }
}

/** The address held by an earlier listener of this configuration that `l` names too, if any. */
async function heldAlready(held: ReadonlyArray<{ l: ListenerAt; server: net.Server }>, l: ListenerAt): Promise<{ l: ListenerAt } | undefined> {
  let addresses: string[];
  try {
    addresses = (await lookup(l.host, { all: true })).map((a) => a.address);
  } catch {
    return undefined;
  }
  return held.find((h) => {
    const a = h.server.address();
    return typeof a === 'object' && a !== null && a.port === l.port && (addresses.includes(a.address) || a.address === '0.0.0.0' || a.address === '::');
  });
}

/** Bind `host:port`: the listening server (the caller closes it), else the error. */
function tryListen(host: string, port: number): Promise<{ server?: net.Server; err?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve({ err }));
    server.listen({ host, port, exclusive: true }, () => resolve({ server }));
  });
}

/** True when another process holds the store under `dataDir` (LevelDB's lock: a gateway runs on it). */
async function storeHeld(dataDir: string): Promise<boolean> {
  try {
    return (await readStoreAtRest(dataDir, async () => undefined)).found === 'held';
  } catch {
    return false;
  }
}

/** The first port an unprivileged user may listen on (Linux: net.ipv4.ip_unprivileged_port_start). */
function unprivilegedPortStart(): number {
  try {
    const n = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
    return Number.isInteger(n) && n >= 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

function whoami(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
