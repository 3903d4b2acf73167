import { Gateway } from '../gateway.ts';
import { describeError } from '../errors.ts';
import { args, configFrom, type CliContext } from './main.ts';

/**
 * `lab-gateway start`: run until SIGTERM/SIGINT. Signal handlers are installed before start()
 * (STYLE.md practice 7). Prints one JSON line `{"event":"ready", …addresses}` on stdout when every
 * listener is up; logs go to stderr as JSON lines.
 */
export async function runStart(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, { config: { type: 'string', short: 'c' } });
  const config = configFrom(values.config, ctx);
  const gateway = new Gateway({ config });
  return runUntilSignal(gateway, ctx, (addresses) => {
    ctx.out(JSON.stringify({ event: 'ready', ...addresses }));
  });
}

/** Shared by start and demo: start, report, wait for a signal, stop gracefully. */
export async function runUntilSignal(
  gateway: Gateway,
  ctx: CliContext,
  onReady: (addresses: Awaited<ReturnType<Gateway['start']>>) => void | Promise<void>,
  beforeStop?: () => Promise<void>,
): Promise<number> {
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping = false;
  const stop = (reason: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    gateway.log.info('stopping', { reason });
    void (async () => {
      await beforeStop?.().catch(() => undefined);
      await gateway.stop(15_000);
      resolveDone(code);
    })();
  };
  process.once('SIGTERM', () => stop('SIGTERM', 0));
  process.once('SIGINT', () => stop('SIGINT', 0));
  process.on('unhandledRejection', (err) => gateway.log.error('unhandled rejection (kept running)', { error: describeError(err) }));
  process.on('uncaughtException', (err) => {
    gateway.log.error('uncaught exception: stopping gracefully so the supervisor restarts a clean process', { error: describeError(err) });
    stop('uncaught exception', 1);
  });
  try {
    const addresses = await gateway.start();
    await onReady(addresses);
  } catch (err) {
    ctx.err(`the gateway could not start: ${describeError(err)}`);
    return 1;
  }
  const code = await done;
  ctx.err('lab-gateway stopped');
  return code;
}
