/**
 * The Odoo key from the environment, its variable named as a shell script writes it (`$ODOO_KEY`,
 * `${ODOO_KEY}`). The real CLI runs as a separate process with the variable set.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-env-name-');

describe('check: odoo.apiKeyEnv written with a dollar sign', () => {
  /**
   * User saw: `apiKeyEnv: "$ODOO_KEY"` with ODOO_KEY set in the environment; check said "the
   * environment variable named in odoo.apiKeyEnv … is not set or empty", while it was set: the
   * gateway looked for a variable named "$ODOO_KEY". Broke: a clear error naming the key and what
   * to write. (The config file is not run through a shell; no `$` expansion happens.)
   */
  it('names the variable to write without the dollar sign', async () => {
    for (const written of ['$ODOO_KEY', '${ODOO_KEY}']) {
      const file = await configFile(
        [
          'gateway: { id: env-1, timeZone: UTC }',
          'hl7: []',
          `odoo: { url: https://odoo.example.com, database: lab, login: gateway, apiKeyEnv: "${written}" }`,
          'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
          'status: { listen: { host: 127.0.0.1, port: 0 } }',
          '',
        ].join('\n'),
      );
      const r = await runCli(cliSource, ['check', '--config', file], { ODOO_KEY: 'k'.repeat(40) });
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/error +odoo\.apiKeyEnv: names a variable as a shell writes it: write apiKeyEnv: ODOO_KEY/);
      expect(r.out).not.toMatch(/is not set/);
    }
  });
});
