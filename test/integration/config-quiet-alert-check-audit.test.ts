/**
 * `analyzers[].quietAlert` and `hl7[].quietAlert` (ENDPOINT_QUIET) as IT staff write them while
 * commissioning. The real `check` CLI as a separate process from the sources; what is asserted is
 * what the IT person reads: the exit code and each issue naming its key.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-quiet-config-');

/** A config with two analyzers and one LIS link, each with the quiet alert given (YAML flow text), or none. */
const config = (q: { xn1?: string; xn2?: string; lis?: string }): Promise<string> =>
  configFile(
    [
      `gateway: { id: site-q, dataDir: ${path.join(dir, 'data')}, timeZone: Europe/Berlin }`,
      `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }${q.lis ? `, quietAlert: ${q.lis}` : ''} } ]`,
      'analyzers:',
      `  - { id: xn-1, profile: sysmex-xn, tcp: { listen: { host: 127.0.0.1, port: 0 } }${q.xn1 ? `, quietAlert: ${q.xn1}` : ''} }`,
      `  - { id: xn-2, profile: sysmex-xn, tcp: { listen: { host: 127.0.0.1, port: 0 } }${q.xn2 ? `, quietAlert: ${q.xn2}` : ''} }`,
      'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
      'status: { listen: { host: 127.0.0.1, port: 0 } }',
      '',
    ].join('\n'),
  );

const check = async (file: string) => runCli(cliSource, ['check', '--config', file], { TZ: 'Europe/Berlin' });

describe('check: quietAlert', () => {
  it('a lab rhythm written as documented passes without a word about it', async () => {
    const r = await check(
      await config({
        xn1: "{ afterMinutes: 90, between: '07:00-19:00', days: 'Mon-Fri' }",
        xn2: "{ afterMinutes: 240, between: '22:00-06:00', days: 'Tue,Fri' }",
        lis: '{ afterMinutes: 120 }',
      }),
    );
    expect(r.code, r.out).toBe(0);
    expect(r.out).not.toMatch(/quietAlert/);
  }, 30_000);

  /**
   * Each mistake is an error at its own key (the entry's index in the path), all of them in one
   * run, so the IT person mends the file once.
   */
  it('every malformed part is an error naming its key', async () => {
    const r = await check(
      await config({
        xn1: "{ afterMinutes: 90, between: '7-19', days: 'Mon-Fry' }",
        xn2: "{ between: '07:00-19:00' }",
        lis: "{ afterMinutes: 0, after: 5, between: '25:00-06:00' }",
      }),
    );
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+analyzers\[0\]\.quietAlert\.between: "7-19" is not a time range: .*HH:MM-HH:MM.*07:00-19:00/);
    expect(r.out).toMatch(/error\s+analyzers\[0\]\.quietAlert\.days: "Fry" in "Mon-Fry" is not a day: .*Mon-Fri/);
    expect(r.out).toMatch(/error\s+analyzers\[1\]\.quietAlert\.afterMinutes: is required/);
    expect(r.out).toMatch(/error\s+hl7\[0\]\.quietAlert\.afterMinutes: must be between 1 and 43200 \(found 0\)/);
    expect(r.out).toMatch(/error\s+hl7\[0\]\.quietAlert\.after: unknown key \(allowed: afterMinutes, between, days\)/);
    expect(r.out).toMatch(/error\s+hl7\[0\]\.quietAlert\.between: "25:00-06:00" has a time that does not exist/);
  }, 30_000);

  /**
   * Quiet time counts within one opening of the window (after a weekend, from Monday's opening):
   * a bound longer than the window could never be reached, and the alert would never come.
   */
  it('a bound longer than the window is an error at afterMinutes, saying how long the window is', async () => {
    const r = await check(await config({ xn2: "{ afterMinutes: 800, between: '07:00-19:00', days: 'Mon-Fri' }", xn1: "{ afterMinutes: 90, between: '08:00-08:00' }" }));
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+analyzers\[1\]\.quietAlert\.afterMinutes: 800 min is longer than the window stays open \(720 min at most\)/);
    expect(r.out).toMatch(/error\s+analyzers\[0\]\.quietAlert\.between: "08:00-08:00" opens and closes at the same time: leave between out for all day/);
  }, 30_000);

  it('start refuses the same file, naming the key', async () => {
    const r = await runCli(cliSource, ['start', '--config', await config({ xn1: "{ afterMinutes: 90, days: 'weekdays' }" })], { TZ: 'Europe/Berlin' });
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/analyzers\[0\]\.quietAlert\.days: "weekdays" in "weekdays" is not a day/);
  }, 30_000);
});
