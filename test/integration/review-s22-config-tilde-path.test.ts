/**
 * Paths written as a shell writes them, from the home folder (`~/lgw-data`). The configuration is
 * not read by a shell. The real CLI runs as a separate process.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22-tilde-');

describe('check and start: a path beginning with ~', () => {
  /**
   * User saw: `gateway.dataDir: ~/lgw-data` passed check, and start made a folder named "~" beside
   * the config file and kept the store in it (`<config folder>/~/lgw-data`), not in the home
   * folder; `odoo.apiKeyFile: ~/odoo.key` was "file not found: <config folder>/~/odoo.key". Broke:
   * no silent default that surprises; a clear error naming the key.
   */
  it('is an error at the key saying ~ is not expanded, and start makes no ~ folder', async () => {
    const file = await configFile(
      [
        'gateway: { id: tilde-1, timeZone: UTC, dataDir: ~/lgw-data }',
        'hl7: []',
        'profilesDir: ~/profiles',
        'odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyFile: ~/odoo.key }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code).toBe(1);
    for (const key of ['gateway\\.dataDir', 'profilesDir', 'odoo\\.apiKeyFile']) {
      expect(r.out).toMatch(new RegExp(`error +${key}: "~/[a-z.-]+" begins with ~, which is not read as the home folder here \\(the configuration is not read by a shell\\): write the full path`));
    }
    const s = await runCli(cliSource, ['start', '--config', file]);
    expect(s.code).toBe(1);
    expect(existsSync(path.join(dir, '~'))).toBe(false);
  });
});
