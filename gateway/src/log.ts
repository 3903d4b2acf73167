/**
 * Structured JSON logs, one object per line on stderr. Components receive a `Logger` (injected by
 * the composition root) rather than importing one; child loggers carry the endpoint.
 * No patient data at info level: log ids and counts, never names or result values.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Log lines stderr could not take since the process started (`/metrics`: `lab_gateway_log_lines_dropped_total`). */
export interface LogOutputLoss {
  /** Lines lost, in total since the process started. */
  readonly droppedLines: number;
  /** When the last one was lost (ISO), null when none was. */
  readonly lastDroppedAt: string | null;
  /** Why the last one was lost: the write's error (`EPIPE: broken pipe`, `ENOSPC: no space left on device`). */
  readonly lastError: string | null;
  /**
   * When the gap the log has now began (ISO): the first line lost since the last line stderr took.
   * Null while the log takes lines (none lost, or a line written since the last one lost). Told by
   * the order of the writes' outcomes, not by their times: a clock step changes nothing.
   */
  readonly gapSince: string | null;
}

/**
 * The lines written to stderr that it could not take: a pipe whose reader went away (a `tee` or
 * log shipper stopped: EPIPE), a log file on a full disk (ENOSPC). The CLI keeps such an error from
 * stopping the gateway (cli/main.ts) and the line is lost; it is counted here, process-wide like
 * stderr itself, so a gap in the log can be explained: `/metrics` shows the count, and the first
 * line stderr takes again is preceded by one `log lines lost` line saying how many, between when
 * and why.
 */
const loss = {
  dropped: 0,
  /** Of `dropped`, those a `log lines lost` line that was written already told of. */
  told: 0,
  /** A `log lines lost` line is being written (its write's outcome not known yet). */
  telling: false,
  firstUntoldAt: null as string | null,
  /** The first line lost while a `log lines lost` line was on its way (the next one tells of it). */
  firstWhileTelling: null as string | null,
  lastAt: null as string | null,
  lastError: null as string | null,
  /**
   * The first line lost since the last line written (ISO), null once a line is written again: the
   * log is broken while it is set, and the status says so for as long (status-model.ts).
   */
  gapSince: null as string | null,
};

export function logOutputLoss(): LogOutputLoss {
  return { droppedLines: loss.dropped, lastDroppedAt: loss.lastAt, lastError: loss.lastError, gapSince: loss.gapSince };
}

function describeWriteError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
}

function lineLost(err: Error): void {
  const at = new Date().toISOString();
  loss.dropped++;
  loss.firstUntoldAt ??= at;
  if (loss.telling) loss.firstWhileTelling ??= at;
  loss.lastAt = at;
  loss.lastError = describeWriteError(err);
  loss.gapSince ??= at;
}

/** Writes one line to stderr, counting it when stderr cannot take it (see `loss`). */
function writeStderr(line: string, bindings: Record<string, unknown>): void {
  let text = line + '\n';
  let telling: { upTo: number } | undefined;
  if (loss.dropped > loss.told && !loss.telling) {
    // Lines were lost: say so first, on the same write as this line (it goes through or is lost with it).
    telling = { upTo: loss.dropped };
    loss.telling = true;
    const gateway = bindings['gateway'];
    text =
      JSON.stringify({
        time: new Date().toISOString(),
        level: 'warn',
        msg: 'log lines lost',
        ...(gateway === undefined ? {} : { gateway }),
        dropped: loss.dropped - loss.told,
        firstDroppedAt: loss.firstUntoldAt,
        lastDroppedAt: loss.lastAt,
        error: loss.lastError,
        droppedTotal: loss.dropped,
      }) +
      '\n' +
      text;
  }
  const done = (err?: Error | null): void => {
    if (telling) {
      loss.telling = false;
      if (!err) {
        loss.told = Math.max(loss.told, telling.upTo);
        // Lines lost while this note was on its way are told by the next one.
        loss.firstUntoldAt = loss.dropped > loss.told ? loss.firstWhileTelling : null;
      }
      loss.firstWhileTelling = null;
    }
    if (err) lineLost(err);
    // A line written: the log takes lines again (outcomes come in the order of the writes).
    else loss.gapSince = null;
  };
  try {
    process.stderr.write(text, done);
  } catch (err) {
    // A stream that throws (not Node's stdio, which reports through the callback) loses the line too.
    done(err instanceof Error ? err : new Error(String(err)));
  }
}

export function createLogger(options: { level?: LogLevel; bindings?: Record<string, unknown>; write?: (line: string) => void } = {}): Logger {
  const min = LEVELS[options.level ?? 'info'];
  const bindings = options.bindings ?? {};
  const write = options.write ?? ((line: string) => writeStderr(line, bindings));
  const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...bindings, ...fields }));
  };
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (b) => createLogger({ ...options, bindings: { ...bindings, ...b } }),
  };
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
