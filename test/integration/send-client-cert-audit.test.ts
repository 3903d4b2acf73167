/**
 * `lab-gateway send` with half a client certificate, as IT staff type it while commissioning a
 * mutual-TLS link: the real CLI as a separate process from the sources.
 */
import net from 'node:net';
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

  /**
   * User sees (was, review): `send --servername lis.example` without --tls sent the message in
   * clear text, the name ignored without a word, as --key alone was. --servername is the name the
   * gateway's certificate is checked against: like --ca and --cert it turns TLS on. Here the port
   * takes the connection and never starts TLS, so TLS being tried shows as the handshake's timeout.
   */
  it('--servername alone turns TLS on (the message is not sent in clear text)', async () => {
    const got: Buffer[] = [];
    const peers: net.Socket[] = [];
    const server = net.createServer((socket) => {
      peers.push(socket);
      socket.on('data', (d: Buffer) => got.push(d));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const msg = path.join(dir, 'sni.hl7');
      await writeFile(msg, 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ADT^A01|C2|P|2.5\r');
      const r = await runCli(cliSource, ['send', '--port', String((server.address() as net.AddressInfo).port), '--servername', 'lis.example', '--timeout-ms', '1000', msg]);
      expect(r.code, r.err).toBe(1);
      expect(r.err).toMatch(/no TLS handshake within 1000 ms/);
      expect(Buffer.concat(got).toString('latin1')).not.toContain('MSH|');
    } finally {
      for (const p of peers) p.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 30_000);
});
