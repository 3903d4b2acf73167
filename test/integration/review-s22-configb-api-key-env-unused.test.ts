/**
 * Review of f3c5b91 (odoo.apiKeyEnv written as a shell writes it): a site whose key is read from
 * `odoo.apiKeyFile`, with an `apiKeyEnv: $ODOO_KEY` left beside it (the file wins, the variable is
 * never read). The real CLI runs as a separate process.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22b-env-unused-');

describe('check: odoo.apiKeyEnv written with a dollar sign beside odoo.apiKeyFile', () => {
  /**
   * User saw: after the upgrade, check (the unit's ExecStartPre) exited 1 on "odoo.apiKeyEnv: names
   * a variable as a shell writes it", and the gateway did not start, while the key it reads is in
   * odoo.apiKeyFile and the variable is unused; the day before, check warned (unused) and the
   * gateway ran. Broke: a configuration that worked is refused for a key that is never read.
   */
  it('is a warning naming the name to write, not an error: the file is read instead', async () => {
    await writeFile(path.join(dir, 'odoo.key'), `${'k'.repeat(40)}\n`);
    for (const written of ['$ODOO_KEY', '${ODOO_KEY}']) {
      const file = await configFile(
        [
          'gateway: { id: env-unused-1, timeZone: UTC }',
          'hl7: []',
          `odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyFile: odoo.key, apiKeyEnv: "${written}" }`,
          'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
          'status: { listen: { host: 127.0.0.1, port: 0 } }',
          '',
        ].join('\n'),
      );
      const r = await runCli(cliSource, ['check', '--config', file], { ODOO_KEY: '' });
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/warning +odoo\.apiKeyEnv: names a variable as a shell writes it: write apiKeyEnv: ODOO_KEY .*unused: odoo\.apiKeyFile is read instead/);
    }
  });
});
