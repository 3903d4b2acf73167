import { readFileSync } from 'node:fs';
import { sendHl7Files } from '../ingress/mllp/mllp-send.ts';
import { args, UsageError, type CliContext } from './main.ts';

/**
 * `lab-gateway send`: send HL7 files over MLLP, print each acknowledgement (one line per message
 * of a file; an enhanced-mode link's commit and application ACK each on their own); exit 1 if any
 * MSA is not AA/CA. A message that asks for no acknowledgement (MSH-15/16 NE or ER) and gets none
 * is printed as such and counts as sent.
 */
export async function runSend(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = args(
    argv,
    {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', short: 'p' },
      tls: { type: 'boolean' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      servername: { type: 'string' },
      json: { type: 'boolean' },
      'timeout-ms': { type: 'string' },
    },
    true,
  );
  const port = Number(values.port);
  if (!values.port || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError('send needs --port (the gateway\'s MLLP port, e.g. 2575)');
  if (positionals.length === 0) throw new UsageError('send needs at least one HL7 file');
  let timeoutMs: number | undefined;
  if (values['timeout-ms'] !== undefined) {
    timeoutMs = Number(values['timeout-ms']);
    if (values['timeout-ms'].trim() === '' || !Number.isInteger(timeoutMs) || timeoutMs < 1) throw new UsageError(`send --timeout-ms needs a positive whole number of milliseconds (found "${values['timeout-ms']}")`);
  }
  // A client certificate is a pair: --key alone was ignored (the message went in clear text), and
  // --cert alone failed inside the handshake.
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError(values.cert === undefined ? 'send --key needs --cert (the client certificate the key belongs to)' : 'send --cert needs --key (the client certificate\'s private key)');
  // Each TLS option turns TLS on: --servername alone (the name the gateway's certificate is checked
  // against) was ignored and the message went in clear text.
  const useTls = values.tls || values.ca !== undefined || values.cert !== undefined || values.servername !== undefined;
  const tls = useTls
    ? {
        ...(values.ca ? { ca: readFileSync(values.ca) } : {}),
        ...(values.cert ? { cert: readFileSync(values.cert) } : {}),
        ...(values.key ? { key: readFileSync(values.key) } : {}),
        ...(values.servername ? { servername: values.servername } : {}),
      }
    : undefined;
  let failures = 0;
  for await (const r of sendHl7Files({
    host: values.host ?? '127.0.0.1',
    port,
    files: positionals,
    ...(tls ? { tls } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  })) {
    // A file may hold several messages: every one must be accepted.
    if (!r.ok) failures++;
    if (values.json) ctx.out(JSON.stringify(r));
    else if (r.note) ctx.out(`${r.file}: MSH-10 ${r.controlId} → ${r.note}`);
    else {
      // One line per acknowledged message (the first line is the file's first message).
      const lines = r.messages.length > 0 ? r.messages : [{ controlId: r.controlId, ackCode: '', ackControlId: '' }];
      for (const m of lines) ctx.out(`${r.file}: MSH-10 ${m.controlId} → ${m.ackCode || '(no MSA)'} (MSA-2 ${m.ackControlId})`);
      ctx.out(r.ack.split(/\r\n|\r|\n/).filter(Boolean).map((s) => `    ${s}`).join('\n'));
    }
  }
  return failures > 0 ? 1 : 0;
}
