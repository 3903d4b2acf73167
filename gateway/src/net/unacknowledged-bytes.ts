import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { endianness } from 'node:os';
import { performance } from 'node:perf_hooks';

/**
 * A TCP peer that vanished (power cut, cable pulled, its VM stopped: no FIN, no RST) while bytes
 * the gateway sent were still unacknowledged holds its connection until the kernel gives up
 * retransmitting them: about 15 minutes (`tcp_retries2`). TCP keepalive sends no probe while sent
 * bytes wait for their acknowledgement, and Node offers no way to set TCP_USER_TIMEOUT. Meanwhile
 * the link shows the peer connected and its socket holds a connection slot.
 *
 * This module bounds that on Linux (the appliance's system) by reading what the kernel says of the
 * socket in /proc/net/tcp or /proc/net/tcp6: bytes still unacknowledged in its send queue, and the
 * kernel retransmitting them without an answer. A peer whose host is alive acknowledges within
 * milliseconds, however slow its application: its TCP stack answers, not the program. A peer
 * whose application stopped reading gets its window full and the kernel probes it (zero-window
 * probes) instead of retransmitting: its stack answers those probes, and it is not taken for
 * gone. Elsewhere (not Linux, /proc not readable) nothing is watched: the kernel's own limits
 * apply, as before.
 */

/** One socket's line of /proc/net/tcp{,6}: the fields this module reads. */
export interface KernelTcpState {
  /** `st`: 01 established, 04 FIN_WAIT1, 08 CLOSE_WAIT, … */
  state: number;
  /** Bytes written to the socket that the peer has not acknowledged (write_seq − snd_una). */
  txQueue: number;
  /** `tr`: the timer running: 1 retransmission (or loss probe), 2 keepalive, 4 zero-window probe. */
  timer: number;
  /** `retrnsmt`: retransmissions of the oldest unacknowledged segment, reset by any new acknowledgement. */
  retransmits: number;
  /** `timeout`: zero-window (or keepalive) probes sent without an answer, reset by any acknowledgement. */
  probes: number;
}

/**
 * The peer's stack is not answering: bytes wait for its acknowledgement and the kernel has
 * retransmitted them at least once with no answer, or has sent zero-window probes that went
 * unanswered. A live peer with a full window (its application reads slowly) answers every probe:
 * its `probes` never exceeds the one in flight.
 */
export function peerAcknowledgesNothing(s: KernelTcpState): boolean {
  if (s.txQueue === 0) return false;
  return (s.timer === 1 && s.retransmits > 0) || (s.timer === 4 && s.probes > 1);
}

const littleEndian = endianness() === 'LE';

/** An IP address as the kernel prints it in /proc/net/tcp{,6}: 32-bit words in host order, in hex. */
function kernelHex(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = littleEndian ? bytes.readUInt32LE(i) : bytes.readUInt32BE(i);
    out += word.toString(16).toUpperCase().padStart(8, '0');
  }
  return out;
}

function ipv4Bytes(address: string): Buffer | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : Number.NaN));
  if (bytes.some((b) => !(b >= 0 && b <= 255))) return undefined;
  return Buffer.from(bytes);
}

function ipv6Bytes(address: string): Buffer | undefined {
  let text = address.replace(/%.*$/, '');
  // An embedded IPv4 tail (::ffff:192.0.2.7) becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4Bytes(dotted[1] as string);
    if (!v4) return undefined;
    text = `${text.slice(0, dotted.index)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(Math.max(0, missing)).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  }
  return out;
}

/** Which file lists the socket, and its `local_address rem_address` columns as the kernel prints them. */
export function kernelSocketKey(local: { address: string; port: number }, remote: { address: string; port: number }): { file: string; key: string } | undefined {
  const v6 = net.isIPv6(local.address) || net.isIPv6(remote.address);
  const bytes = (a: string): Buffer | undefined => (v6 ? ipv6Bytes(a) : ipv4Bytes(a));
  const l = bytes(local.address);
  const r = bytes(remote.address);
  if (!l || !r) return undefined;
  const port = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  return { file: v6 ? '/proc/net/tcp6' : '/proc/net/tcp', key: `${kernelHex(l)}:${port(local.port)} ${kernelHex(r)}:${port(remote.port)}` };
}

/** The line of `key` in the text of /proc/net/tcp{,6}, parsed; undefined when the socket is not listed. */
export function findKernelTcpState(table: string, key: string): KernelTcpState | undefined {
  const [local, remote] = key.split(' ');
  let at = table.indexOf(` ${local} ${remote} `);
  if (at < 0) return undefined;
  at += local!.length + remote!.length + 3;
  const end = table.indexOf('\n', at);
  // st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
  const f = table.slice(at, end < 0 ? undefined : end).trim().split(/\s+/);
  const [tx] = (f[1] ?? '').split(':');
  const [tr] = (f[2] ?? '').split(':');
  const state = Number.parseInt(f[0] ?? '', 16);
  const txQueue = Number.parseInt(tx ?? '', 16);
  const timer = Number.parseInt(tr ?? '', 16);
  const retransmits = Number.parseInt(f[3] ?? '', 16);
  const probes = Number.parseInt(f[5] ?? '', 10);
  if ([state, txQueue, timer, retransmits, probes].some((n) => !Number.isFinite(n))) return undefined;
  return { state, txQueue, timer, retransmits, probes };
}

/**
 * One read of the file, for one look. Never shared with a look that started before: what the
 * caller noted before its look (`beforeLook`) must be older than what the read shows, and a read
 * already under way may predate it (bytes the caller counted as taken by the kernel would then
 * look acknowledged, and a download never received would not be sent again). Looks are rare (a
 * connection quiet after the gateway's last write), so each costs its own read.
 */
function readTable(file: string): Promise<string | undefined> {
  return readFile(file, 'latin1').then(
    (text) => text,
    () => undefined,
  );
}

/** Where the kernel lists this socket: its addresses, taken while it is connected (a closed socket forgets them). */
export function socketKey(socket: net.Socket): { file: string; key: string } | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (!localAddress || !remoteAddress || localPort === undefined || remotePort === undefined) return undefined;
  return kernelSocketKey({ address: localAddress, port: localPort }, { address: remoteAddress, port: remotePort });
}

/**
 * What the kernel says of a connected TCP socket (a TLS socket included: its addresses are those
 * of the TCP connection under it). Undefined off Linux, when /proc cannot be read, or when the
 * socket is no longer listed.
 */
export async function kernelTcpState(where: { file: string; key: string }): Promise<KernelTcpState | undefined> {
  if (process.platform !== 'linux') return undefined;
  const table = await readTable(where.file);
  return table === undefined ? undefined : findKernelTcpState(table, where.key);
}

/**
 * The same, read at once (synchronously): for the decision to drop a connection only, so that no
 * acknowledgement can come between what the kernel said and the close that acts on it.
 */
export function kernelTcpStateNow(where: { file: string; key: string }): KernelTcpState | undefined {
  if (process.platform !== 'linux') return undefined;
  let table: string;
  try {
    table = readFileSync(where.file, 'latin1');
  } catch {
    return undefined;
  }
  return findKernelTcpState(table, where.key);
}

/**
 * How long after a write that nothing answered the kernel is first asked about the socket, and
 * then how often while its bytes stay unacknowledged (ms, at most: a shorter bound looks sooner).
 * A peer that answers before (every busy link) costs nothing; one that is quiet after the
 * gateway's last reply costs one read of /proc, which finds its bytes acknowledged.
 */
export const LOOK_AFTER_MS = 5_000;

export interface UnacknowledgedWatchOptions {
  socket: net.Socket;
  /** How long the peer may leave the gateway's bytes unacknowledged (ms). */
  boundMs: number;
  /**
   * The peer acknowledged nothing for `seconds` (≥ the bound): the caller closes the connection.
   * Called once, with what the kernel said of the socket at the look that decided it (`txQueue`:
   * the bytes it holds that the peer never acknowledged, the newest the gateway wrote).
   */
  onUnacknowledged(seconds: number, kernel: KernelTcpState): void;
  /**
   * Called right before each read of /proc: what the caller notes then (the bytes the kernel has
   * taken so far) is older than what the read shows, so it may be set against it.
   */
  beforeLook?(): void;
  /** A look found every byte the kernel held acknowledged (what the caller noted before it is: `beforeLook`). */
  onAllAcknowledged?(): void;
}

/**
 * One connection's watch. The connection tells it when it wrote (`wrote`) and when the peer sent
 * something (`heard`); only a connection that wrote and has heard nothing since, for a while, is
 * looked at in /proc. Its peer is taken for gone once the kernel has shown, at every look for
 * `boundMs` since the write, bytes waiting for an acknowledgement that does not come (retransmitted
 * unanswered, `peerAcknowledgesNothing`) and none of them acknowledged meanwhile (the send queue
 * did not shrink). Any acknowledgement, or any byte from the peer, starts it over.
 */
export class UnacknowledgedWatch {
  readonly #boundMs: number;
  readonly #lookMs: number;
  readonly #onUnacknowledged: (seconds: number, kernel: KernelTcpState) => void;
  readonly #beforeLook: (() => void) | undefined;
  readonly #onAllAcknowledged: (() => void) | undefined;
  readonly #where: { file: string; key: string } | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When the write that nothing answered went out (the watch armed; monotonic ms: a clock step changes nothing). */
  #armedAt = 0;
  /** Since when the peer has acknowledged nothing, as far as the looks tell. */
  #since: number | undefined;
  #lastTxQueue = 0;
  /** No look yet since the watch armed. */
  #firstLook = true;
  /**
   * The last look, when it found the peer acknowledging nothing (and nothing heard since): what the
   * kernel said then and for how long the peer had acknowledged nothing (`silentAtLastLook`).
   */
  #lastSilent: { kernel: KernelTcpState; seconds: number } | undefined;
  /** Counts the armings: a look that finishes after the watch was disarmed and armed again is void. */
  #generation = 0;
  #done = false;

  constructor(options: UnacknowledgedWatchOptions) {
    this.#boundMs = options.boundMs;
    this.#lookMs = Math.max(10, Math.min(LOOK_AFTER_MS, options.boundMs / 4));
    this.#onUnacknowledged = options.onUnacknowledged;
    this.#beforeLook = options.beforeLook;
    this.#onAllAcknowledged = options.onAllAcknowledged;
    this.#where = process.platform === 'linux' && options.boundMs > 0 ? socketKey(options.socket) : undefined;
    if (!this.#where) this.#done = true;
  }

  /** The gateway wrote to the socket. */
  wrote(): void {
    if (this.#done || this.#timer !== undefined) return;
    this.#armedAt = performance.now();
    this.#generation++;
    this.#since = undefined;
    this.#firstLook = true;
    this.#schedule(this.#lookMs);
  }

  /** The peer sent something: it is there. */
  heard(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#since = undefined;
    this.#lastSilent = undefined;
  }

  /**
   * What the last look found, when it found the peer acknowledging nothing (retransmitted bytes
   * unanswered) and nothing was heard from it or acknowledged since, as far as the looks tell:
   * the kernel's state then, and for how long (s) it had acknowledged nothing. Read when the
   * connection ends otherwise than by the bound (the peer's reset: it restarted), to place what the
   * gateway wrote against what it never acknowledged. The looks come every LOOK_AFTER_MS at most
   * while bytes wait, so it is at most that old.
   */
  silentAtLastLook(): { kernel: KernelTcpState; seconds: number } | undefined {
    return this.#lastSilent;
  }

  /** The connection closed. */
  stop(): void {
    this.heard();
    this.#done = true;
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => void this.#look(), ms);
    this.#timer.unref();
  }

  async #look(): Promise<void> {
    const generation = this.#generation;
    this.#beforeLook?.();
    const s = this.#where ? await kernelTcpState(this.#where) : undefined;
    // Heard from meanwhile (disarmed), closed, or armed anew by a write after `heard`.
    if (this.#done || this.#timer === undefined || this.#generation !== generation) return;
    this.#timer = undefined;
    const firstLook = this.#firstLook;
    this.#firstLook = false;
    // No longer listed (closed) or /proc not readable: nothing to watch.
    if (!s) return;
    const now = performance.now();
    if (s.txQueue === 0) {
      // Everything acknowledged: the next write arms the watch again.
      this.#since = undefined;
      this.#lastSilent = undefined;
      this.#onAllAcknowledged?.();
      return;
    }
    if (!peerAcknowledgesNothing(s)) this.#since = undefined;
    else if (this.#since === undefined) {
      // The first look counts from the write; after an acknowledgement, from this look.
      this.#since = firstLook ? this.#armedAt : now;
    } else if (s.txQueue < this.#lastTxQueue) this.#since = now;
    this.#lastTxQueue = s.txQueue;
    this.#lastSilent = this.#since !== undefined ? { kernel: s, seconds: Math.round((now - this.#since) / 1000) } : undefined;
    if (this.#since !== undefined && now - this.#since >= this.#boundMs) {
      // Asked again at once, right before the caller acts on it: an acknowledgement may have come
      // while the look's read was under way (a cable plugged back in at that instant), and the
      // caller sets what it wrote against what the kernel holds unacknowledged.
      this.#beforeLook?.();
      const last = this.#where ? kernelTcpStateNow(this.#where) : undefined;
      if (!last) return;
      if (last.txQueue === 0 || !peerAcknowledgesNothing(last) || last.txQueue < s.txQueue) {
        this.#since = undefined;
        this.#lastSilent = undefined;
        if (last.txQueue === 0) this.#onAllAcknowledged?.();
        else this.#schedule(this.#lookMs);
        return;
      }
      this.#done = true;
      this.#onUnacknowledged(Math.round((now - this.#since) / 1000), last);
      return;
    }
    const due = this.#since === undefined ? this.#lookMs : Math.min(this.#lookMs, this.#since + this.#boundMs - now);
    this.#schedule(Math.max(10, due));
  }
}
