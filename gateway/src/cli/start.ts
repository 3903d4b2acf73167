import { Gateway } from '../gateway.ts';
import { describeError, GatewayError } from '../errors.ts';
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
    if (stopping) {
      // A repeated signal (an impatient operator, a supervisor) must not cut the graceful stop short.
      gateway.log.info('already stopping', { reason });
      return;
    }
    stopping = true;
    gateway.log.info('stopping', { reason });
    void (async () => {
      await beforeStop?.().catch(() => undefined);
      await gateway.stop(15_000).catch((err: unknown) => gateway.log.error('stop failed', { error: describeError(err) }));
      resolveDone(code);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('unhandledRejection', (err) => gateway.log.error('unhandled rejection (kept running)', { error: describeError(err) }));
  process.on('uncaughtException', (err) => {
    gateway.log.error('uncaught exception: stopping gracefully so the supervisor restarts a clean process', { error: describeError(err) });
    gateway.noteCrash(err);
    stop('uncaught exception', 1);
  });
  try {
    const starting = gateway.start();
    // A signal during start-up: the stop may finish before the start step under way gives up.
    const first = await Promise.race([starting, done.then(() => 'stopped' as const)]);
    if (first === 'stopped') {
      starting.catch(() => undefined);
      throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway was stopped during start-up');
    }
    if (stopping) throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway was stopped during start-up');
    await onReady(first);
  } catch (err) {
    if (stopping) {
      // A signal during start-up: start-up gave up and the gateway stopped what it had opened.
      const code = await done;
      ctx.err('lab-gateway stopped during start-up');
      return code;
    }
    ctx.err(`the gateway could not start: ${describeError(err)}`);
    // start() stops what it opened before it rejects; make sure of it before returning.
    await gateway.stop(5_000).catch(() => undefined);
    return 1;
  }
  const code = await done;
  ctx.err('lab-gateway stopped');
  return code;
}
