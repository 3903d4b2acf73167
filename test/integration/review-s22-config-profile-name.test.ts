/**
 * Choosing a firmware profile by name at the command line, as IT staff copy it from the analyzer's
 * manual or its menu (capitals, an underscore, a space). The real CLI runs as a separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';

describe('profiles show / check with a name written as the manual writes it', () => {
  /**
   * User saw: `lab-gateway profiles show Sysmex-XN` answered `"Sysmex-XN" is not a profile name
   * (lower-case letters, digits and dashes)` and nothing more, while `check` on the same name in
   * `analyzers[].profile` said `did you mean "sysmex-xn"?`. Broke: a typo in a profile name gets
   * the nearest name.
   */
  it('names the nearest profile for capitals, an underscore and a trailing space', async () => {
    const show = await runCli(cliSource, ['profiles', 'show', 'Sysmex-XN']);
    expect(show.code).toBe(1);
    expect(show.out + show.err).toMatch(/"Sysmex-XN" is not a profile name .*did you mean "sysmex-xn"\?/);
    const check = await runCli(cliSource, ['profiles', 'check', 'generic_astm', 'Roche-Cobas-E411', 'sysmex-xp ']);
    expect(check.code).toBe(1);
    expect(check.out + check.err).toMatch(/generic_astm:\n +error +\(file\): .*did you mean "generic-astm"\?/);
    expect(check.out + check.err).toMatch(/Roche-Cobas-E411:\n +error +\(file\): .*did you mean "roche-cobas-e411"\?/);
    expect(check.out + check.err).toMatch(/sysmex-xp :\n +error +\(file\): .*did you mean "sysmex-xp"\?/);
  });
});
