/**
 * Commissioning: the key `lab-gateway start` names for an analyzer it refuses, against the key
 * `lab-gateway check` names (the README's configuration reference writes `analyzers[1].serial.path`,
 * the entry's place in the list). The real CLI from the sources, a real TCP port held by another
 * program.
 */
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-commissioning-analyzer-key-');
const held: net.Server[] = [];
afterAll(async () => {
  for (const s of held) await new Promise<void>((r) => s.close(() => r()));
});

async function holdPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  held.push(server);
  return (server.address() as net.AddressInfo).port;
}

describe('an analyzer start refuses is named as check names it', () => {
  /**
   * User sees (was): start: `analyzers[xp-2].tcp.listen cannot listen on 127.0.0.1:…: EADDRINUSE`
   * (the analyzer's id in the brackets), while check names the same entry `analyzers[1].…` (its
   * place in the list): IT searched the config for "analyzers[xp-2]", or counted to entry "xp-2".
   */
  it('a tcp.listen port another program holds: start names analyzers[1].tcp.listen, the form check uses', async () => {
    const port = await holdPort();
    const cfg = await configFile(
      [
        `gateway: { id: key-1, dataDir: ${path.join(dir, 'key-1-data')} }`,
        TEST_LISTENERS,
        'analyzers:',
        '  - { id: xp-1, profile: sysmex-xp, tcp: { listen: { host: 127.0.0.1, port: 0 } } }',
        `  - { id: xp-2, profile: sysmex-xp, tcp: { listen: { host: 127.0.0.1, port: ${port} } } }`,
        '',
      ].join('\n'),
    );
    const started = await runCli(cliSource, ['start', '--config', cfg]);
    expect(started.code).toBe(1);
    expect(started.err).toContain(`analyzers[1].tcp.listen cannot listen on 127.0.0.1:${port}`);
    expect(started.err).not.toContain('analyzers[xp-2]');

    // check names a problem of the same entry by the same form.
    const dup = await configFile(
      [
        `gateway: { id: key-2, dataDir: ${path.join(dir, 'key-2-data')} }`,
        TEST_LISTENERS,
        'analyzers:',
        `  - { id: xp-1, profile: sysmex-xp, tcp: { listen: { host: 127.0.0.1, port: ${port} } } }`,
        `  - { id: xp-2, profile: sysmex-xp, tcp: { listen: { host: 127.0.0.1, port: ${port} } } }`,
        '',
      ].join('\n'),
    );
    const checked = await runCli(cliSource, ['check', '--config', dup]);
    expect(checked.code).toBe(1);
    expect(checked.out).toMatch(/error\s+analyzers\[1\]\.tcp\.listen\.port: .* is already used by analyzers\[0\]/);
  }, 60_000);

  /**
   * User sees (was): for an analyzer that speaks HL7 (Mindray BS), whose port is an MLLP listener,
   * `hl7[bs-1].listen cannot listen on …`: a key that is not in the file at all (the analyzer is
   * under analyzers[]); for a second LIS link, `hl7[outreach].listen` where check writes `hl7[1]`.
   */
  it('an HL7 analyzer\'s port and a second LIS link\'s port: analyzers[1].tcp.listen and hl7[1].listen', async () => {
    const port = await holdPort();
    const hl7Analyzer = await configFile(
      [
        `gateway: { id: key-3, dataDir: ${path.join(dir, 'key-3-data')} }`,
        TEST_LISTENERS,
        'analyzers:',
        '  - { id: xp-1, profile: sysmex-xp, tcp: { listen: { host: 127.0.0.1, port: 0 } } }',
        `  - { id: bs-1, profile: mindray-bs-series, tcp: { listen: { host: 127.0.0.1, port: ${port} } } }`,
        '',
      ].join('\n'),
    );
    const analyzer = await runCli(cliSource, ['start', '--config', hl7Analyzer]);
    expect(analyzer.code).toBe(1);
    expect(analyzer.err).toContain(`analyzers[1].tcp.listen cannot listen on 127.0.0.1:${port}`);
    expect(analyzer.err).not.toContain('hl7[bs-1]');

    const secondLis = await configFile(
      [
        `gateway: { id: key-4, dataDir: ${path.join(dir, 'key-4-data')} }`,
        'hl7:',
        '  - { id: lis, listen: { host: 127.0.0.1, port: 0 } }',
        `  - { id: outreach, listen: { host: 127.0.0.1, port: ${port} }, accessionPrefix: OUT }`,
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const lis = await runCli(cliSource, ['start', '--config', secondLis]);
    expect(lis.code).toBe(1);
    expect(lis.err).toContain(`hl7[1].listen cannot listen on 127.0.0.1:${port}`);
    expect(lis.err).not.toContain('hl7[outreach]');
  }, 60_000);
});
