/**
 * `npm start` (the demo) on a machine where one of its ports is already taken. The README's first
 * command is `npm install && npm start`, and its second, `npm run test:ci`, installs Debian's
 * mosquitto, whose service listens on 1883: the next `npm start` failed with
 * "mqtt.listen: cannot listen on 127.0.0.1:1883", a configuration key the demo's user never
 * wrote, with no word of the demo's own --mqtt-port (or --hl7-port, --status-port) that avoids it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';

const STACK = /\n\s+at .+[:(]\d+:\d+/;

describe('demo with a port already taken', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'demo-ports-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const [flag, what] of [
    ['--mqtt-port', 'MQTT'],
    ['--hl7-port', 'HL7'],
    ['--status-port', 'status'],
  ] as const) {
    it(`exits 1 naming the port, what it is for and ${flag}, the option that moves it`, async () => {
      const blocker = net.createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        const ports = { '--hl7-port': '0', '--status-port': '0', '--mqtt-port': '0', [flag]: String(port) };
        const r = await runCli(cliSource, ['demo', '--data-dir', path.join(dir, flag.slice(2)), ...Object.entries(ports).flat()]);
        expect(r.code).toBe(1);
        expect(r.err).toContain(`127.0.0.1:${port}`);
        expect(r.err).toContain(what);
        expect(r.err).toContain(`${flag} `);
        expect(r.err).not.toMatch(STACK);
        expect(r.out).not.toContain('demo is running');
      } finally {
        blocker.close();
      }
    }, 30_000);
  }
});
