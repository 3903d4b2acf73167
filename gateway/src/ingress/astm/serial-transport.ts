import { read, readFileSync, statSync, writeSync } from 'node:fs';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';
import { SerialPort } from 'serialport';
import type { SerialConfig } from '../../config/types.ts';
import { describeError } from '../../errors.ts';
import { type Backoff, backoffDelay, type Transport, type TransportHost, type Wire, type WireHandlers, wasWorking } from './transport.ts';

export interface SerialSettings {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits: 1 | 1.5 | 2;
  rtscts: boolean;
  xon: boolean;
  xoff: boolean;
}

/**
 * Serial settings: LIS1-A §5.2 defaults (9600 baud preferred, 8 data bits, no parity, 1 stop bit,
 * no flow control — Table 1 wires only TxD/RxD/GND), then the profile's defaults, then the site.
 */
export function serialSettings(site: SerialConfig, profile?: Partial<Omit<SerialSettings, 'path'>>): SerialSettings {
  return {
    path: site.path,
    baudRate: site.baudRate ?? profile?.baudRate ?? 9600,
    dataBits: site.dataBits ?? profile?.dataBits ?? 8,
    parity: site.parity ?? profile?.parity ?? 'none',
    stopBits: site.stopBits ?? profile?.stopBits ?? 1,
    rtscts: site.rtscts ?? profile?.rtscts ?? false,
    xon: site.xon ?? profile?.xon ?? false,
    xoff: site.xoff ?? profile?.xoff ?? false,
  };
}

const readAsync = promisify(read);

/** What `endOfFileIsHangup` needs of serialport's port binding on Linux and macOS (bindings-cpp). */
interface UnixPortBinding {
  fd: number | null;
  readonly isOpen: boolean;
  poller: { once(event: 'readable', listener: (err: Error | null) => void): unknown };
  read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }>;
}

function isUnixPortBinding(b: unknown): b is UnixPortBinding {
  const c = b as Partial<UnixPortBinding> | null | undefined;
  return typeof c?.fd === 'number' && typeof c.poller?.once === 'function' && typeof c.read === 'function';
}

/**
 * Make a read that returns 0 bytes end the port, as the device is gone. A tty that was hung up
 * (the USB-serial adapter unplugged, a pty whose other end closed) reads as end of file when the
 * read starts after the hang-up — a port unplugged just as it was opened, or while a read was
 * being set up. serialport 13 reads again at once on 0 bytes, forever: no 'close' ever came, the
 * link stayed "connected" and was never reopened, and a thread of Node's pool spun on the dead
 * descriptor. The port is non-blocking with VMIN 1, so a live line with nothing to read answers
 * EAGAIN, never 0: this read waits for it as serialport does (its poller), and throws on 0, which
 * the stream turns into a close with a disconnect error (the transport then reopens with backoff).
 * Windows' binding is left as it is (it reads differently and has no poller).
 */
function endOfFileIsHangup(binding: unknown, path: string): void {
  if (!isUnixPortBinding(binding)) return;
  const b = binding;
  const notOpen = (): Error => Object.assign(new Error('Port is not open'), { canceled: true });
  b.read = async (buffer, offset, length) => {
    for (;;) {
      if (!b.isOpen || b.fd === null) throw notOpen();
      let bytesRead: number;
      try {
        ({ bytesRead } = await readAsync(b.fd, buffer, offset, length, null));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw err;
        if (!b.isOpen) throw notOpen();
        await new Promise<void>((resolve, reject) => b.poller.once('readable', (e) => (e ? reject(e) : resolve())));
        continue;
      }
      if (bytesRead === 0) throw Object.assign(new Error(`${path}: end of file (the device was hung up)`), { code: 'ENXIO', disconnect: true });
      return { buffer, bytesRead };
    }
  };
}

/**
 * One serial port through `serialport`. When the port disappears (USB adapter unplugged, pty
 * closed) or cannot be opened, it is reopened with backoff until `stop()`.
 *
 * States: `connecting` while opening at start, `connected`, `disconnected` when an open port
 * closed (kept through the reopen attempts: not `connecting`, which the status reads as up), and
 * `error` with the path and the reason when an attempt fails — reported again after every failed
 * reopen, and not replaced by `connecting` while the gateway tries again: the status keeps saying
 * why (ENDPOINT_DOWN names the path). Before, every reopen showed `connecting` and the error was
 * reported only when its text changed, so a missing adapter read "connecting", health OK, forever.
 *
 * A read of 0 bytes (a hung-up tty) ends the port like any disconnect (`endOfFileIsHangup`).
 *
 * The backoff starts over after a port that worked (bytes arrived, or it stayed open
 * STABLE_CONNECTION_MS), not at every successful open: an adapter that drops right after opening
 * is retried with growing delays.
 */
/**
 * Why a port did not open, in the words the status shows a technician. A port another program
 * holds (serialport's lock, or a program that set it exclusive) is said so, with what to do:
 * serialport's own words ("Error Resource temporarily unavailable Cannot lock port") sent IT to
 * swap cables and adapters (test/integration/commissioning-serial-busy-audit.test.ts).
 */
export function openFailure(portPath: string, err: unknown): string {
  const msg = describeError(err);
  if (/Cannot lock port|EBUSY|Device or resource busy/i.test(msg)) {
    return `cannot open ${portPath}: it is in use by another program (a terminal such as minicom or screen, another gateway, a vendor tool): close it, and the port opens at the next attempt`;
  }
  if (/Permission denied|EACCES/i.test(msg)) return `cannot open ${portPath}: ${permissionDenied(portPath)}`;
  return `cannot open ${portPath}: ${msg}`;
}

/**
 * A port the gateway's user may not open (EACCES): the service runs as a user of its own, and
 * serial devices are opened through their group (`dialout` on Debian and Ubuntu: udev makes
 * `/dev/ttyUSB*` root:dialout 660). Names the user, the group to add it to (the device's own when
 * its group may read and write it), and the restart: groups are read when a process starts. A
 * device no group may open (mode 600) is said so too. Before, serialport's words ("Error:
 * Permission denied, cannot open …") named neither the user nor the group
 * (test/integration/commissioning-serial-permission-audit.test.ts).
 */
function permissionDenied(portPath: string): string {
  const user = nameOf('/etc/passwd', process.getuid?.() ?? -1) ?? safeUserName();
  let group = 'dialout';
  let device = '';
  try {
    const st = statSync(portPath);
    const owner = nameOf('/etc/group', st.gid);
    if ((st.mode & 0o060) === 0o060 && owner !== undefined && owner !== 'root') group = owner;
    else if ((st.mode & 0o060) !== 0o060) {
      device = `; the device is mode ${(st.mode & 0o777).toString(8)}, owner ${nameOf('/etc/passwd', st.uid) ?? st.uid}: no group may open it, so its group and mode must be set too (a serial adapter's device is group dialout, mode 660, set by udev)`;
    }
  } catch {
    /* the path as it was named: the group most systems use */
  }
  return `the gateway's user (${user}) may not open it (permission denied): add ${user} to the ${group} group (usermod -aG ${group} ${user}) and restart the gateway${device}`;
}

/** The name of a user or group id from /etc/passwd or /etc/group (undefined when not listed). */
function nameOf(file: '/etc/passwd' | '/etc/group', id: number): string | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , num] = line.split(':');
      if (name && num !== undefined && Number(num) === id) return name;
    }
  } catch {
    /* not readable: the caller falls back */
  }
  return undefined;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

export class SerialTransport implements Transport {
  readonly #settings: SerialSettings;
  readonly #host: TransportHost;
  readonly #backoff: Backoff;
  #port: SerialPort | undefined;
  #handlers: WireHandlers | undefined;
  #stopped = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  /**
   * The port is down: the last open attempt failed, or the open port closed. Its state (`error`
   * with the reason, or `disconnected`) stays until an attempt succeeds; a reopen does not report
   * `connecting`, which the status reads as not down (it cleared ENDPOINT_DOWN, a false
   * "Resolved", between the unplugged adapter's `disconnected` and the failed reopen's `error`).
   */
  #down = false;

  constructor(settings: SerialSettings, host: TransportHost, backoff: Backoff) {
    this.#settings = settings;
    this.#host = host;
    this.#backoff = backoff;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    // The first open is awaited so that start() reports a wrong path; later failures retry.
    await new Promise<void>((resolve) => this.#open(resolve));
  }

  #open(done?: () => void): void {
    if (this.#stopped) {
      done?.();
      return;
    }
    if (!this.#down) this.#host.state('connecting', this.#settings.path);
    const s = this.#settings;
    const port = new SerialPort({
      path: s.path,
      baudRate: s.baudRate,
      dataBits: s.dataBits,
      parity: s.parity,
      stopBits: s.stopBits,
      rtscts: s.rtscts,
      xon: s.xon,
      xoff: s.xoff,
      autoOpen: false,
    });
    port.open((err) => {
      if (err) {
        this.#down = true;
        this.#host.state('error', openFailure(s.path, err));
        this.#scheduleReopen();
        done?.();
        return;
      }
      if (this.#stopped) {
        port.close(() => undefined);
        done?.();
        return;
      }
      this.#down = false;
      this.#port = port;
      endOfFileIsHangup(port.port, s.path);
      const openedAt = Date.now();
      let heard = false;
      let queued = 0;
      const wire: Wire = {
        remote: `serial:${s.path}`,
        write: (bytes) => {
          if (!port.isOpen) return;
          // Fast path for replies: when nothing is queued in the stream, write straight to the
          // tty fd (non-blocking). serialport's own path goes through the libuv thread pool,
          // where a LevelDB fsync can delay a one-byte ACK. Order is kept: once anything is
          // queued, every write goes through the stream until it drains.
          const fd = (port.port as { fd?: number | null } | undefined)?.fd;
          if (queued === 0 && typeof fd === 'number') {
            try {
              const n = writeSync(fd, bytes);
              if (n === bytes.length) return;
              bytes = bytes.subarray(n);
            } catch {
              // EAGAIN (tty buffer full) and real errors alike: the stream path retries or reports.
            }
          }
          queued++;
          port.write(bytes, () => queued--);
        },
        close: () => {
          if (port.isOpen) port.close(() => undefined);
        },
        // Only with RTS/CTS does a port that is not read hold the analyzer (the adapter drops RTS
        // as its buffer fills); without it, the bytes would be lost there. Not with XON/XOFF alone:
        // the kernel sends XOFF for a throttled port on a UART, but the generic USB-serial driver
        // most cheap adapters use only stops reading them, and they drop what overflows, uncounted.
        // Such a line is read on (E1381_MAX_QUEUED_BYTES), which loses nothing short of the cap.
        ...(s.rtscts ? { pause: () => void port.pause(), resume: () => void port.resume() } : {}),
      };
      const handlers = this.#host.attach(wire);
      this.#handlers = handlers;
      port.on('data', (chunk: Buffer) => {
        heard = true;
        handlers.data(chunk);
      });
      // Errors while open are followed by 'close' when fatal (reported there); the listener keeps
      // the others from being thrown.
      port.on('error', () => undefined);
      port.once('close', (e?: Error & { disconnected?: boolean }) => {
        this.#port = undefined;
        this.#handlers = undefined;
        handlers.closed(e ? describeError(e) : 'closed');
        if (!this.#stopped) {
          // The backoff starts over only after a port that worked (transport.ts).
          if (wasWorking(openedAt, heard)) this.#attempt = 0;
          this.#down = true;
          this.#host.state('disconnected', e?.disconnected ? `${s.path} disconnected` : `${s.path} closed`);
          this.#scheduleReopen();
        }
      });
      this.#host.state('connected', s.path);
      done?.();
    });
  }

  #scheduleReopen(): void {
    if (this.#stopped) return;
    const delay = backoffDelay(this.#backoff, this.#attempt++);
    this.#retry = setTimeout(() => this.#open(), delay);
    this.#retry.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    this.#handlers?.closed('stopped');
    this.#handlers = undefined;
  }
}
