/**
 * `gateway.timeZone` as IT staff write it while commissioning, and a box left at UTC with nothing
 * saying the lab's zone. The real CLI as a separate process from the sources; what is asserted is
 * what the IT person reads: the exit code and the issue naming the key.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-tz-config-');

const config = (timeZone?: string): Promise<string> =>
  configFile([`gateway: { id: site-z, dataDir: ${path.join(dir, 'data')}${timeZone === undefined ? '' : `, timeZone: ${JSON.stringify(timeZone)}`} }`, TEST_LISTENERS, ''].join('\n'));

/** The zone a process without TZ runs in on this machine: the system's. */
const systemZone = (): string => {
  const env = { ...process.env };
  delete env.TZ;
  return execFileSync(process.execPath, ['-e', 'process.stdout.write(Intl.DateTimeFormat().resolvedOptions().timeZone)'], { env }).toString();
};

/** `check` with TZ set as given (undefined: not set at all). */
const check = (file: string, tz: string | undefined) => runCli(cliSource, ['check', '--config', file], { TZ: tz });

describe('check: gateway.timeZone', () => {
  /**
   * User sees (was): the key did not exist ("unknown key"), and a name mistyped in TZ= on the
   * service was read as UTC without a word. Now a name that is not a zone is an error at the key,
   * saying the form to write, and the zone meant when the name is a city's.
   */
  it('a name that is no zone is an error naming the key and the form to write', async () => {
    const r = await check(await config('Europe/Berln'), 'UTC');
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+gateway\.timeZone: "Europe\/Berln" is not a time zone.*IANA name such as Europe\/Berlin/);
  }, 30_000);

  it('a city without its region names the zone meant', async () => {
    const r = await check(await config('Berlin'), 'UTC');
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+gateway\.timeZone: "Berlin" is not a time zone.*did you mean Europe\/Berlin\?/);
  }, 30_000);

  /** An offset has no summer time: the lab's clock would be an hour off half the year. */
  it('an offset is an error: it has no summer time', async () => {
    const r = await check(await config('+01:00'), 'UTC');
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+gateway\.timeZone: "\+01:00" is an offset, not a time zone.*summer time.*Europe\/Berlin/);
  }, 30_000);

  it('start refuses it too, naming the key', async () => {
    const r = await runCli(cliSource, ['start', '--config', await config('Mars/Olympus_Mons')], { TZ: 'UTC' });
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/gateway\.timeZone: "Mars\/Olympus_Mons" is not a time zone/);
  }, 30_000);

  it('an IANA name passes, with no warning, even on a box at UTC without TZ', async () => {
    const r = await check(await config('Europe/Berlin'), undefined);
    expect(r.code, r.out).toBe(0);
    expect(r.out).not.toMatch(/timeZone|time zone/i);
  }, 30_000);

  /**
   * User sees (was): `check` said nothing on an appliance left at UTC (a container, a fresh
   * install) in a lab at UTC+1: every analyzer run and LIS time without an offset went to Odoo an
   * hour early. Now it warns, naming gateway.timeZone, when nothing says the zone (no key, no TZ)
   * and the system's is UTC.
   */
  it('nothing set on a box at UTC: a warning naming gateway.timeZone', async () => {
    const r = await check(await config(), undefined);
    expect(r.code, r.out).toBe(0);
    const warned = /warning\s+gateway\.timeZone: not set and TZ not set: the system's time zone is UTC.*analyzer and LIS times without an offset are read as UTC.*gateway\.timeZone: Europe\/Berlin/.test(r.out);
    // This machine's zone decides: the warning is for a box at UTC only.
    expect(warned, r.out).toBe(['UTC', 'Etc/UTC'].includes(systemZone()));
  }, 30_000);

  it('TZ set on the service says the zone: no warning, even TZ=UTC', async () => {
    for (const tz of ['UTC', 'Europe/Berlin']) {
      const r = await check(await config(), tz);
      expect(r.code, r.out).toBe(0);
      expect(r.out, tz).not.toMatch(/gateway\.timeZone/);
    }
  }, 30_000);
});
