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

/**
 * Review of the check above: what it may refuse is only an address that cannot be Odoo's. A site
 * that upgrades with a working odoo.url must still pass: Odoo behind a reverse proxy under a path
 * (one segment or more, two instances side by side under /odoo/prod and /odoo/test, a path that
 * begins with /web), a port, IPv6, a trailing slash. A page copied from the browser of Odoo served
 * under such a path is named with that path, not the bare host (which is not Odoo there).
 */
describe('check: odoo.url of a site behind a proxy', () => {
  const issuesAt = async (url: string): Promise<{ severity: string; message: string }[]> => {
    const { validateConfig } = await import('../../gateway/src/config/validate.ts');
    await writeFile(path.join(dir, 'odoo.key'), 'a-key\n');
    const r = validateConfig({ gateway: { id: 'site-u', dataDir: path.join(dir, 'data') }, hl7: [], odoo: { url, database: 'lab', login: 'gateway', apiKeyFile: './odoo.key' } }, dir);
    return r.issues.filter((i) => i.path === 'odoo.url');
  };

  for (const url of [
    'https://intranet.example.com/odoo/prod',
    'https://intranet.example.com/odoo/test/',
    'https://intranet.example.com/erp/',
    'https://intranet.example.com/apps/erp/odoo',
    'https://erp.example.com:8443',
    'https://erp.example.com:8443/erp',
    'https://[2001:db8::10]:8069/',
    'https://[2001:db8::10]/erp',
    'https://intranet.example.com/web/erp',
  ]) {
    it(`${url} is not refused`, async () => {
      expect((await issuesAt(url)).filter((i) => i.severity === 'error')).toEqual([]);
    });
  }

  for (const [url, write] of [
    ['https://intranet.example.com/erp/web#action=12&menu_id=5', 'https://intranet.example.com/erp'],
    ['https://intranet.example.com/erp/web/login', 'https://intranet.example.com/erp'],
    ['https://intranet.example.com/erp/odoo/action-12', 'https://intranet.example.com/erp'],
    ['https://[2001:db8::10]:8443/erp/web/login?redirect=%2Fodoo', 'https://[2001:db8::10]:8443/erp'],
    ['https://intranet.example.com/odoo/odoo/action-12', 'https://intranet.example.com/odoo'],
    ['https://intranet.example.com/odoo/prod/web/login', 'https://intranet.example.com/odoo/prod'],
    ['https://intranet.example.com/erp/?db=lab', 'https://intranet.example.com/erp'],
    ['https://lab.example.com/odoo/res.partner/7', 'https://lab.example.com'],
    ['https://lab.example.com/odoo/sales/42', 'https://lab.example.com'],
    ['https://lab.example.com/web/database/selector', 'https://lab.example.com'],
    ['https://lab.example.com/jsonrpc', 'https://lab.example.com'],
    ['https://lab.example.com/?', 'https://lab.example.com'],
    ['https://lab.example.com/#', 'https://lab.example.com'],
  ] as const) {
    it(`${url} is an error naming ${write}`, async () => {
      const errors = (await issuesAt(url)).filter((i) => i.severity === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toContain(`write ${write} `);
    });
  }

  /** A path that may be a web client page or a proxy's path: said, not refused. */
  for (const url of ['https://lab.example.com/odoo/inventory', 'https://lab.example.com/web']) {
    it(`${url} is a warning naming the host's address`, async () => {
      const issues = await issuesAt(url);
      expect(issues.map((i) => i.severity)).toEqual(['warning']);
      expect(issues[0]?.message).toContain('https://lab.example.com ');
    });
  }
});
