/**
 * `lab-gateway send` with half a client certificate, as IT staff type it while commissioning a
 * mutual-TLS link: the real CLI as a separate process from the sources.
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { refusedPort } from '../fixtures/ports.ts';

const { dir } = useConfigDir('lgw-send-cert-');

describe('send: --cert and --key go together', () => {
  /**
   * User sees (was): `send --key client.key` without --cert sent the message in clear text (only
   * --tls, --ca or --cert turned TLS on), the key ignored without a word; --cert without --key
   * failed inside the TLS handshake.
   * Promise: README `send [--tls --ca F --cert F --key F …]`; DESIGN: a wrong value gets a clear
   * answer (usage error, exit 2).
   */
  for (const [given, missing] of [['--key', '--cert'], ['--cert', '--key']] as const) {
    it(`${given} without ${missing} is a usage error naming ${missing}`, async () => {
      const file = path.join(dir, 'client.pem');
      const msg = path.join(dir, 'm.hl7');
      await writeFile(file, 'not read\n');
      await writeFile(msg, 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ADT^A01|C1|P|2.5\r');
      const r = await runCli(cliSource, ['send', '--port', String(await refusedPort()), given, file, msg]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain(`${given} needs ${missing}`);
    }, 30_000);
  }
});
