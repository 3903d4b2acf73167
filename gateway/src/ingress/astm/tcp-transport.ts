import net from 'node:net';
import { describeError } from '../../errors.ts';
import { UnacknowledgedWatch } from '../../net/unacknowledged-bytes.ts';
import { type AcknowledgedBytes, type Backoff, backoffDelay, type Transport, type TransportHost, type Wire, wasWorking } from './transport.ts';

/** Why the gateway dropped a connection itself (`Wire.abort`): the detail of its end. */
const abortReasons = new WeakMap<net.Socket, string>();

function attachSocket(socket: net.Socket, host: TransportHost): void {
  socket.setNoDelay(true);
  // An idle connection whose peer vanished (powered off, cable pulled: no FIN) is closed by the
  // kernel: probes after 30 s of silence, then (libuv's settings) 10 probes 1 s apart, about 40 s
  // in all. Not while sent bytes wait for their acknowledgement: that case is the endpoint's
  // silentPeerMs (link-options.ts), and the watch below.
  socket.setKeepAlive(true, 30_000);
  // An analyzer switched off (or unplugged) before bytes the gateway wrote reached it never
  // acknowledges them, and keepalive is off while they wait: an order download or a host query's
  // answer written to it while it sat idle held the link "connected" for about 15 minutes
  // (tcp_retries2). Once its TCP stack has acknowledged nothing for `peerAckMs` (the link's
  // silentPeerMs), with nothing from it since, the connection is dropped: a live analyzer's stack
  // acknowledges within milliseconds, however busy it is (net/unacknowledged-bytes.ts, Linux only).
  //
  // What it acknowledged is told to the endpoint with the close (`AcknowledgedBytes`): a records-only
  // link marks an order download sent once written, and one the analyzer never received is sent
  // again when it connects (astm-endpoint.ts). Bytes are counted as handed to `write` (`written`)
  // and as taken by the kernel (`inKernel`, at each write's callback); at a look, the kernel holds
  // the unacknowledged ones (`txQueue`), the newest. The connection is then reset, not closed: a
  // close would leave the kernel retransmitting those bytes for minutes, and an analyzer whose
  // cable is plugged back in would get them on its old connection after they were sent again.
  let written = 0;
  let inKernel = 0;
  let inKernelAtLook = 0;
  let writtenAtLook = 0;
  let unacknowledged: AcknowledgedBytes | undefined;
  const acks = new UnacknowledgedWatch({
    socket,
    boundMs: host.peerAckMs ?? 0,
    beforeLook: () => {
      inKernelAtLook = inKernel;
      writtenAtLook = written;
    },
    onAllAcknowledged: () => handlers.acknowledged?.(inKernelAtLook),
    onUnacknowledged: (seconds, kernel) => {
      if (socket.destroyed) return;
      unacknowledged = { atLeast: Math.max(0, inKernelAtLook - kernel.txQueue), atMost: Math.max(0, written - kernel.txQueue), seconds };
      host.peerGone?.(wire.remote, seconds);
      abortReasons.set(socket, `the analyzer acknowledged nothing the gateway sent for ${seconds} s (switched off, or its cable pulled?): connection closed`);
      socket.resetAndDestroy();
    },
  });
  const wire: Wire = {
    remote: `tcp:${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`,
    write: (bytes) => {
      if (socket.destroyed) return;
      written += bytes.length;
      socket.write(bytes, (err) => {
        if (!err) inKernel += bytes.length;
      });
      acks.wrote();
    },
    close: () => socket.end(),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    abort: (reason) => {
      if (socket.destroyed) return;
      abortReasons.set(socket, reason);
      socket.destroy();
    },
  };
  const handlers = host.attach(wire);
  let closedDetail = 'closed by peer';
  socket.on('data', (chunk: Buffer) => {
    acks.heard();
    handlers.data(chunk);
  });
  socket.on('error', (err) => {
    closedDetail = describeError(err);
    // The analyzer reset the connection while the gateway's bytes waited for its acknowledgement:
    // an analyzer (or its serial-to-LAN converter) that restarted within the bound, its new stack
    // answering the kernel's retransmission with RST. Those bytes were dropped with the connection,
    // never received, as at the bound; before, the connection just ended, and an order download
    // written in those seconds stayed sent. Known only when the last look (at most LOOK_AFTER_MS
    // old) found it acknowledging nothing: the bounds are that look's, bytes written since count
    // as never acknowledged (nothing was heard from it since).
    if (unacknowledged || (err as NodeJS.ErrnoException).code !== 'ECONNRESET') return;
    const silent = acks.silentAtLastLook();
    if (!silent) return;
    const txQueue = silent.kernel.txQueue;
    unacknowledged = { atLeast: Math.max(0, inKernelAtLook - txQueue), atMost: Math.max(0, writtenAtLook - txQueue), seconds: silent.seconds, byPeerReset: true };
  });
  socket.once('close', () => {
    acks.stop();
    handlers.closed(abortReasons.get(socket) ?? closedDetail, unacknowledged);
  });
}

/**
 * Connections one analyzer port takes at once. An analyzer holds one connection (two while it
 * reconnects); the cap bounds what a stray LAN client can hold open (each connection may buffer up
 * to maxMessageBytes).
 */
const MAX_SERVER_CONNECTIONS = 8;

/** The analyzer connects to the gateway: one link per accepted connection. */
export class TcpServerTransport implements Transport {
  readonly #listen: { host: string; port: number };
  readonly #host: TransportHost;
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | undefined;

  constructor(listen: { host: string; port: number }, host: TransportHost) {
    this.#listen = listen;
    this.#host = host;
  }

  async start(): Promise<void> {
    const server = net.createServer((socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      attachSocket(socket, this.#host);
    });
    server.maxConnections = MAX_SERVER_CONNECTIONS;
    // Node closes a connection past the cap at once ('drop'); said in the log, or the analyzer's
    // connection closing again and again told IT nothing (astm-server-connection-limit-audit).
    server.on('drop', (d) => this.#host.refused?.(`${d?.remoteAddress ?? '?'}:${d?.remotePort ?? '?'}`, MAX_SERVER_CONNECTIONS));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#listen.port, this.#listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#host.state('error', describeError(err)));
    const a = this.address();
    this.#host.state('listening', a ? `${a.host}:${a.port}` : undefined);
  }

  address(): { host: string; port: number } | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The gateway connects to the analyzer and reconnects with backoff when the connection drops.
 *
 * States as on a serial port: `connecting` while connecting, `connected`, `disconnected` when an
 * open connection closed, and `error` with the address and the reason when an attempt fails
 * ("cannot connect to 192.0.2.7:5000: connect ECONNREFUSED …"), kept through the next attempts
 * until one succeeds. Before, the state went connecting ↔ disconnected ("connect failed"), naming
 * neither the address nor the error. After a connection closed, the reconnect attempts keep
 * `disconnected` (then `error` once one fails), not `connecting`: before, the status read the
 * attempt as up and sent "Resolved: endpoint down" for an analyzer still switched off.
 *
 * The backoff starts over after a connection that worked (the analyzer sent bytes, or it stayed
 * open STABLE_CONNECTION_MS), not at every accepted connection: an analyzer port that accepts
 * and closes at once is retried with growing delays, as a refused one is.
 */
export class TcpClientTransport implements Transport {
  readonly #target: { host: string; port: number };
  readonly #host: TransportHost;
  readonly #backoff: Backoff;
  #socket: net.Socket | undefined;
  #stopped = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  /**
   * The link is down: the last attempt failed, or the open connection closed. Its state (`error`
   * with the reason, or `disconnected`) stays until an attempt succeeds; a reconnect attempt does
   * not report `connecting`, which the status reads as not down (it cleared ENDPOINT_DOWN, a false
   * "Resolved", for as long as the attempt lasted).
   */
  #down = false;

  constructor(target: { host: string; port: number }, host: TransportHost, backoff: Backoff) {
    this.#target = target;
    this.#host = host;
    this.#backoff = backoff;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#connect();
  }

  #connect(): void {
    if (this.#stopped) return;
    const target = `${this.#target.host}:${this.#target.port}`;
    if (!this.#down) this.#host.state('connecting', target);
    const socket = net.connect({ host: this.#target.host, port: this.#target.port });
    this.#socket = socket;
    let connected = false;
    let openedAt = 0;
    let heard = false;
    let failure = 'closed before connecting';
    socket.once('connect', () => {
      connected = true;
      openedAt = Date.now();
      socket.once('data', () => (heard = true));
      this.#down = false;
      this.#host.state('connected', target);
      attachSocket(socket, this.#host);
    });
    socket.on('error', (err) => {
      if (!connected) failure = describeError(err); // reported through 'close'
    });
    socket.once('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
      if (this.#stopped) return;
      if (connected) {
        // The backoff starts over only after a connection that worked (transport.ts).
        if (wasWorking(openedAt, heard)) this.#attempt = 0;
        this.#down = true;
        this.#host.state('disconnected', `${target}: ${abortReasons.get(socket) ?? 'connection closed'}`);
      } else {
        this.#down = true;
        this.#host.state('error', `cannot connect to ${target}: ${failure}`);
      }
      this.#retry = setTimeout(() => this.#connect(), backoffDelay(this.#backoff, this.#attempt++));
      this.#retry.unref();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    const s = this.#socket;
    this.#socket = undefined;
    if (s && !s.destroyed) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    }
  }
}
