/**
 * A key left with nothing after its colon (`id:`, `host:`), as a template is filled in half-way.
 * The real CLI runs as a separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-no-value-');

describe('check: a text key with no value', () => {
  /**
   * User saw: `gateway: { id: }` and `listen: { host: , port: 2575 }` gave "must be a string
   * (found object)": there is no object in the file; YAML reads a missing value as null. Broke: a
   * clear error naming the key.
   */
  it('says the key has no value, not that an object was found', async () => {
    const file = await configFile(['gateway:', '  id:', '  timeZone: UTC', 'hl7:', '  - id: lis', '    listen: { host: , port: 2575 }', ''].join('\n'));
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).not.toMatch(/found object/);
    expect(r.out).toMatch(/error +gateway\.id: has no value: write one after the colon/);
    expect(r.out).toMatch(/error +hl7\[0\]\.listen\.host: has no value/);
  });
});
