/**
 * Commissioning day, a configuration file with nothing in it: a copy that failed half-way, an
 * editor that truncated it, every line commented out. The real CLI runs as a separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-empty-');

describe('check and start on a configuration file that holds no setting', () => {
  /**
   * User saw: `check --config /etc/lab-gateway/config.yaml` on an empty file (or one of comments
   * only) said "0 error(s)" and exited 0, and start ran on the embedded defaults: the local sandbox
   * instead of the site's Odoo (events "delivered" where no one looks), its store in a `var`
   * folder beside the file (/etc/lab-gateway/var), the default LIS listener. Broke: no silent
   * default that surprises; an explicit --config names the settings to use.
   */
  it('an empty file, a file of comments only and a BOM alone are each an error, in check and start', async () => {
    for (const body of ['', '# gateway: { id: lab-1 }\n# odoo: { url: https://odoo.example.com }\n', '\uFEFF\r\n  \r\n']) {
      const file = await configFile(body);
      const r = await runCli(cliSource, ['check', '--config', file]);
      expect(r.code, JSON.stringify(body) + r.out).toBe(1);
      expect(r.out).toMatch(/error +\(file\): holds no setting \(it is empty or all comments\)/);
      const s = await runCli(cliSource, ['start', '--config', file]);
      expect(s.code).toBe(1);
      expect(s.err).toMatch(/holds no setting/);
      expect(s.out).not.toMatch(/"event":"ready"/);
    }
  });
});
