#!/usr/bin/env node
/**
 * `lab-gateway` — the command line (DESIGN.md §5):
 *   start [--config FILE]          run the gateway
 *   check [--config FILE] [--odoo] [--json]   validate config and profiles, print every issue, exit 1 on error
 *   demo [--data-dir DIR]          gateway + sandbox Odoo + simulated LIS and analyzer
 *   status [--json]                the running gateway's status
 *   events list|replay|discard     dead letters and the queue, through the running gateway
 *   send --port P FILE...          send HL7 files over MLLP and print the ACKs
 *   profiles list|show|check|fingerprint   firmware profiles
 *   sandbox list [--model M] [--limit N] [--json]   records in the local sandbox Odoo
 *   reconcile [--since DAYS] [--json]   the period's orders: the store against Odoo (exit 1 on a difference, 2 unreadable)
 * Exit codes: 0 ok, 1 failed check or command error, 2 usage error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatIssues, loadConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/types.ts';
import { describeError, GatewayError, isGatewayError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { runCheck } from './check.ts';
import { runEvents, runStatus } from './remote.ts';
import { runProfiles } from './profiles.ts';
import { runReconcile } from './reconcile.ts';
import { runSandbox } from './sandbox.ts';
import { runSend } from './send.ts';
import { runDemo } from './demo.ts';
import { runStart } from './start.ts';

const USAGE = `lab-gateway ${VERSION}

Usage:
  lab-gateway start [--config FILE]
  lab-gateway check [--config FILE] [--odoo] [--json]
  lab-gateway demo [--data-dir DIR] [--duration SECONDS] [--interval SECONDS] [--odoo-version 16|17|18|19] [--hl7-port P] [--status-port P] [--mqtt-port P]
  lab-gateway status [--config FILE] [--url URL] [--json]
  lab-gateway events list [--state pending|inflight|retrying|dead|delivered|discarded] [--limit N] [--json] [--url URL] [--config FILE]
  lab-gateway events replay ID [--reason TEXT] [--state S] [--token-file FILE] [--url URL] [--config FILE]
  lab-gateway events discard ID --reason TEXT [--state S] [--token-file FILE] [--url URL] [--config FILE]
  lab-gateway send [--host H] --port P [--tls] [--ca FILE] [--cert FILE --key FILE] [--servername NAME] [--timeout-ms MS] [--json] FILE...
  lab-gateway profiles list | show NAME | check [NAME|FILE...] | fingerprint [NAME...] [--write]   [--dir DIR] [--json]
  lab-gateway sandbox list [--config FILE] [--model MODEL] [--limit N] [--json]
  lab-gateway reconcile [--config FILE] [--since DAYS] [--json]

Without --config the gateway runs on embedded defaults (listeners on 127.0.0.1, data under ./var).
`;

export class UsageError extends Error {}

export interface CliContext {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Load the config of --config (or the defaults) or throw with every issue listed. */
export function configFrom(file: string | undefined, ctx: CliContext): GatewayConfig {
  const loaded = loadConfig(file);
  const warnings = loaded.issues.filter((i) => i.severity === 'warning');
  if (warnings.length) ctx.err(formatIssues(warnings));
  if (!loaded.config) throw new GatewayError('GW_CONFIG_INVALID', `configuration ${loaded.file ?? ''} is invalid:\n${formatIssues(loaded.issues)}`);
  return loaded.config;
}

export async function main(argv: string[], ctx: CliContext = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') }): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await runStart(rest, ctx);
      case 'check':
        return await runCheck(rest, ctx);
      case 'demo':
        return await runDemo(rest, ctx);
      case 'status':
        return await runStatus(rest, ctx);
      case 'events':
        return await runEvents(rest, ctx);
      case 'send':
        return await runSend(rest, ctx);
      case 'profiles':
        return await runProfiles(rest, ctx);
      case 'sandbox':
        return await runSandbox(rest, ctx);
      case 'reconcile':
        return await runReconcile(rest, ctx);
      case '--version':
      case 'version':
        ctx.out(VERSION);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        ctx.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        ctx.err(`unknown command "${command}"\n`);
        ctx.err(USAGE);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      ctx.err(`${(err as Error).message}\n`);
      ctx.err(USAGE);
      return 2;
    }
    ctx.err(isGatewayError(err) ? `${err.code}: ${err.message}` : describeError(err));
    return 1;
  }
}

/** parseArgs with our conventions: unknown options are usage errors. */
export function args<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, allowPositionals = false) {
  return parseArgs({ args: argv, options, allowPositionals, strict: true as const });
}

/** `--limit` (or `fallback` when not given) as a positive integer; anything else (abc, 0, -1, 1.5) is a usage error. */
export function limitArg(value: string | undefined, fallback: number): number {
  const limit = value ?? String(fallback);
  if (!/^[1-9][0-9]*$/.test(limit) || !Number.isSafeInteger(Number(limit))) throw new UsageError(`--limit must be a positive integer (got "${limit}")`);
  return Number(limit);
}

// Run when executed directly (bin or `node gateway/src/cli/main.ts`).
const invoked = process.argv[1] ?? '';
if (/cli[/\\]main\.(ts|js)$/.test(invoked) || invoked.endsWith('lab-gateway')) {
  // The reader of stdout or stderr may go away (a `tee` or log shipper stopped, a terminal closed,
  // `status | head`): each write then fails with EPIPE. Unhandled, that error was an uncaught
  // exception whose handler logged it, failing again, without end: `start` spun at full CPU, no
  // longer acknowledged messages and ignored SIGTERM. A line that cannot be written is dropped,
  // whatever the error (EPIPE, or ENOSPC for a log file on a full disk); the gateway goes on (its
  // state stays on the status API, the store checks its own free space) and stops when told to.
  // Node's stdio streams are never destroyed by an error: each later line is tried again, so the
  // log resumes once the disk has room.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  main(process.argv.slice(2)).then(
    (code) => {
      // `start` and `demo` keep running until a signal; they resolve only when stopped.
      process.exitCode = code;
      // Everything is closed by now; a handle left open by mistake (e.g. an MQTT client still
      // waiting for a broker that never answered) must not keep the process, and its
      // supervisor's restart, waiting.
      setTimeout(() => {
        process.stderr.write(`lab-gateway: exiting with resources still open: ${process.getActiveResourcesInfo().join(', ')}\n`);
        process.exit();
      }, 2_000).unref();
    },
    (err: unknown) => {
      process.stderr.write(describeError(err) + '\n');
      process.exitCode = 1;
    },
  );
}
