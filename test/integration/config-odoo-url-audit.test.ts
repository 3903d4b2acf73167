/**
 * `odoo.url` as IT staff fill it in while commissioning: copied from the browser's address bar
 * while logged in to Odoo. The real CLI as a separate process from the sources; what is asserted
 * is what the IT person reads: the exit code and the issue naming the key.
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-odoo-url-');

const config = (url: string): Promise<string> =>
  configFile([`gateway: { id: site-u, dataDir: ${path.join(dir, 'data')} }`, TEST_LISTENERS, `odoo: { url: '${url}', database: lab, login: gateway, apiKeyFile: ./odoo.key }`, ''].join('\n'));

describe('check: odoo.url copied from the browser', () => {
  beforeAll(async () => {
    await writeFile(path.join(dir, 'odoo.key'), 'a-key\n');
  });

  /**
   * User sees (was): `check` said "0 error(s)" for the address of the page they were on, and
   * `start` ran: the gateway posts to odoo.url + "/jsonrpc", so every request went to
   * `/web#action=12/jsonrpc` (the browser's part after # never reaches the server: a POST to /web),
   * `/odoo/action-12/jsonrpc` or `/?db=lab/jsonrpc`, every event retried until it was a dead letter,
   * and `check --odoo` said only "Odoo answered 404 (HTML): check odoo.url and odoo.database".
   * Promise: DESIGN.md §5 `check` validates the config and prints every issue, exit 1 on any error;
   * README `odoo.url` is the URL of the Odoo server.
   */
  for (const [what, url] of [
    ['a page of the web client (/web#…)', 'https://lab.example.com/web#action=12&cids=1&menu_id=5'],
    ["Odoo 17.2+'s web client (/odoo/…)", 'https://lab.example.com/odoo/action-12'],
    ['the login page', 'https://lab.example.com/web/login'],
    ['a database chosen in the query', 'https://lab.example.com/?db=lab'],
  ] as const) {
    it(`${what} is an error at odoo.url giving the server's address`, async () => {
      const r = await runCli(cliSource, ['check', '--config', await config(url)]);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/error\s+odoo\.url: .*write https:\/\/lab\.example\.com\b/);
    }, 30_000);
  }

  /** The server's address, with or without a slash, and Odoo served by a proxy under a path, pass. */
  for (const url of ['https://lab.example.com', 'https://lab.example.com/', 'https://intranet.example.com/odoo']) {
    it(`${url} passes`, async () => {
      const r = await runCli(cliSource, ['check', '--config', await config(url)]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).not.toMatch(/odoo\.url/);
    }, 30_000);
  }
});
