import net from 'node:net';
import tls from 'node:tls';
import { GatewayError } from '../../errors.ts';
import { MllpDecoder } from './mllp-decoder.ts';
import { wrapFrame } from './mllp-encoder.ts';

/**
 * A minimal MLLP sender: one persistent connection, requests may be pipelined, replies are matched
 * to requests in order (an MLLP receiver answers in order). Used by `lab-gateway send`, the
 * benchmark and tests that need to put exact bytes on the wire.
 */
export interface MllpClientOptions {
  host: string;
  port: number;
  /** TLS options (ca, cert, key, servername…); true = system trust store. */
  tls?: tls.ConnectionOptions | boolean;
  /** Give up on a reply after this long (ms); default 30 s. */
  timeoutMs?: number;
  maxFrameBytes?: number;
}

/** What one request waits for (exchange). */
export interface ReplyWait {
  /**
   * After each reply frame, with the frames so far: true while more frames belong to this request
   * (an enhanced-mode receiver answers a commit ACK, then an application ACK, on one connection).
   */
  more: (got: readonly Buffer[]) => boolean;
  /**
   * The message may be due no reply at all (enhanced mode, MSH-15/MSH-16 asking for none): after
   * this long (ms) without a frame the request resolves with none and the connection stays open.
   */
  quietMs?: number;
}

interface Pending {
  more: (got: readonly Buffer[]) => boolean;
  got: Buffer[];
  resolve: (frames: Buffer[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  quiet?: NodeJS.Timeout;
}

export class MllpClient {
  readonly #socket: net.Socket;
  readonly #pending: Pending[] = [];
  readonly #timeoutMs: number;
  #error: Error | undefined;

  private constructor(socket: net.Socket, options: MllpClientOptions) {
    this.#socket = socket;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    const decoder = new MllpDecoder({
      maxFrameBytes: options.maxFrameBytes ?? 64 * 1024 * 1024,
      onFrame: (frame) => this.#onFrame(frame),
      onOversize: () => this.#fail(new GatewayError('GW_HL7_TOO_LARGE', 'reply larger than maxFrameBytes')),
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('connection closed by the peer')));
  }

  /**
   * Connect (and, with `tls`, finish the handshake) within `timeoutMs` (30 s by default; 0 waits
   * as long as the system does). Before, only replies were timed: `send --tls` to a port that took
   * the connection and never started TLS (a plain MLLP port, a stuck proxy) waited forever, and a
   * host behind a firewall dropping packets waited for the system's own connect timeout
   * (test/integration/mllp-client-connect-timeout-audit.test.ts).
   */
  static connect(options: MllpClientOptions): Promise<MllpClient> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      const connected = (): void => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new MllpClient(socket, options));
      };
      let socket: net.Socket;
      if (options.tls) {
        const tlsOptions = options.tls === true ? {} : options.tls;
        socket = tls.connect({ host: options.host, port: options.port, ...tlsOptions }, connected);
      } else {
        socket = net.connect({ host: options.host, port: options.port }, connected);
      }
      socket.once('error', onError);
      const timeoutMs = options.timeoutMs ?? 30_000;
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          const what = options.tls && socket.remoteAddress !== undefined && !socket.connecting ? 'no TLS handshake' : 'no connection';
          socket.off('error', onError);
          socket.on('error', () => undefined);
          socket.destroy();
          reject(new Error(`${what} within ${timeoutMs} ms (${options.host}:${options.port})`));
        }, timeoutMs);
      }
    });
  }

  /** Send one block (its content, unframed) and resolve with the next `frames` reply frames. */
  request(content: Buffer, frames = 1): Promise<Buffer[]> {
    return this.exchange(content, { more: (got) => got.length < frames });
  }

  /** Send one block and resolve with the reply frames that belong to it (ReplyWait). */
  exchange(content: Buffer, wait: ReplyWait): Promise<Buffer[]> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const p: Pending = { more: wait.more, got: [], resolve, reject, timer: undefined };
      if (this.#timeoutMs > 0) {
        p.timer = setTimeout(() => this.#fail(new Error(`no reply within ${this.#timeoutMs} ms`)), this.#timeoutMs);
        p.timer.unref();
      }
      if (wait.quietMs !== undefined) {
        p.quiet = setTimeout(() => {
          const at = this.#pending.indexOf(p);
          if (at === -1 || p.got.length > 0) return;
          this.#pending.splice(at, 1);
          if (p.timer) clearTimeout(p.timer);
          p.resolve([]);
        }, wait.quietMs);
        p.quiet.unref();
      }
      this.#pending.push(p);
      this.#socket.write(wrapFrame(content));
    });
  }

  /** Send one block and resolve with its (first) reply frame. */
  async send(content: Buffer): Promise<Buffer> {
    const [reply] = await this.request(content, 1);
    return reply as Buffer;
  }

  /** Write raw bytes (no framing added): for tests of broken senders. */
  writeRaw(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  /** Wait for the next reply frame without sending anything. */
  expect(frames = 1): Promise<Buffer[]> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#pending.push({ more: (got) => got.length < frames, got: [], resolve, reject, timer: undefined });
    });
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  async close(): Promise<void> {
    if (this.#socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.end();
    });
  }

  #onFrame(frame: Buffer): void {
    const p = this.#pending[0];
    if (!p) return; // unsolicited frame: ignored
    p.got.push(frame);
    if (p.quiet) clearTimeout(p.quiet);
    if (p.more(p.got)) return;
    this.#pending.shift();
    if (p.timer) clearTimeout(p.timer);
    p.resolve(p.got);
  }

  #fail(err: Error): void {
    this.#error ??= err;
    for (const p of this.#pending.splice(0)) {
      if (p.timer) clearTimeout(p.timer);
      if (p.quiet) clearTimeout(p.quiet);
      p.reject(err);
    }
    if (!this.#socket.destroyed) this.#socket.destroy();
  }
}
