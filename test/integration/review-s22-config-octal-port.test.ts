/**
 * Numbers written in a form YAML reads as something other than their digits: a port with a leading
 * zero (`02575`: 2575 to this YAML 1.2 reader, 1405 to a YAML 1.1 one, and to this reader too
 * under a `%YAML 1.1` line), `0o5017`, `0x0A1F`. The real CLI runs as a separate process.
 */
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { configFile } = useConfigDir('lgw-review-s22-octal-');

describe('check: a number written with a leading zero, 0o or 0x', () => {
  /**
   * User saw: `status: { listen: { port: 01777 } }` under `%YAML 1.1` (copied from an older
   * template) listened on 1023; `port: 0o5017` on 2575, `port: 0x0A1F` on 2591; check said
   * "0 error(s)" for each, the port read differently from the digits written. Broke: no silent
   * default that surprises; a clear error naming the key and the number read.
   */
  it('is an error at the key naming the number it was read as', async () => {
    const file = await configFile(
      [
        'gateway: { id: octal-1, timeZone: UTC }',
        'hl7:',
        '  - { id: lis, listen: { host: 127.0.0.1, port: 0o5017 } }',
        '  - { id: lis-2, listen: { host: 127.0.0.1, port: 0x0A1F } }',
        '  - { id: lis-3, listen: { host: 127.0.0.1, port: 02575 }, maxConnections: 10 }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +hl7\[0\]\.listen\.port: written 0o5017 \(line 3\), which YAML reads as 2575: write the number in decimal digits/);
    expect(r.out).toMatch(/error +hl7\[1\]\.listen\.port: written 0x0A1F \(line 4\), which YAML reads as 2591/);
    expect(r.out).toMatch(/error +hl7\[2\]\.listen\.port: written 02575 \(line 5\), which YAML reads as 2575 .*1405/);
    expect(r.out).not.toMatch(/maxConnections/);

    const y11 = await configFile(['%YAML 1.1', '---', 'gateway: { id: octal-2, timeZone: UTC }', 'hl7: []', 'mqtt: { listen: { host: 127.0.0.1, port: 0 } }', 'status: { listen: { host: 127.0.0.1, port: 01777 } }', ''].join('\n'));
    const r11 = await runCli(cliSource, ['check', '--config', y11]);
    expect(r11.code, r11.out).toBe(1);
    expect(r11.out).toMatch(/error +status\.listen\.port: written 01777 \(line 6\), which YAML reads as 1023/);
  });
});
