/**
 * One LIS link or one analyzer written without the `- ` that makes it an entry of the list. The
 * real CLI runs as a separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-list-entry-');

describe('check: hl7 or analyzers written as one mapping', () => {
  /**
   * User saw: "hl7: must be a list" and "analyzers: must be a list", with nothing saying what a
   * list looks like in YAML, for an entry written without its leading dash. Broke: a clear error
   * naming the key and what to write.
   */
  it('says what was found and how to write the entry as a list', async () => {
    const file = await configFile(
      ['gateway: { id: list-1, timeZone: UTC }', 'hl7:', '  id: lis', '  listen: { host: 127.0.0.1, port: 0 }', 'analyzers:', '  id: xn-1', '  profile: sysmex-xn', '  tcp: { listen: { host: 127.0.0.1, port: 0 } }', 'mqtt: { listen: { host: 127.0.0.1, port: 0 } }', 'status: { listen: { host: 127.0.0.1, port: 0 } }', ''].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error +hl7: must be a list \(found one mapping\): write each entry with "- " before its first key \(- id: lis\)/);
    expect(r.out).toMatch(/error +analyzers: must be a list \(found one mapping\): write each entry with "- " before its first key \(- id: xn-1\)/);
  });
});
