/**
 * Every URL the gateway shows (ready line, `check`, logs, errors in /api/status and MQTT) and every
 * URL the tray shows (its panel, "Copy diagnostics", its config errors) goes through a
 * `displayUrl` that drops user name and password. The tray is packaged on its own (only
 * dist/desktop/src goes into it, build/electron-builder.yml), so it keeps its own copy of the
 * function; this test holds both copies to the same answers, so a secret dropped by one is never
 * shown by the other.
 */
import { describe, expect, it } from 'vitest';
import { displayUrl as gatewayDisplayUrl } from '../../gateway/src/config/display-url.ts';
import { displayUrl as trayDisplayUrl } from '../../desktop/src/tray-config.ts';

const cases: Array<[input: string, shown: string]> = [
  ['https://lab.example.com', 'https://lab.example.com'],
  ['https://lab.example.com/odoo?db=lab', 'https://lab.example.com/odoo?db=lab'],
  ['https://gateway:s3cret@lab.example.com/', 'https://lab.example.com/'],
  ['https://:s3cret@lab.example.com', 'https://lab.example.com/'],
  ['https://gateway@lab.example.com:8069', 'https://lab.example.com:8069/'],
  ['mqtts://tray:pw@10.0.0.5:8883', 'mqtts://10.0.0.5:8883'],
  ['mqtt://10.0.0.5:1883', 'mqtt://10.0.0.5:1883'],
  ['http://user:p%40ss@proxy.lab:3128', 'http://proxy.lab:3128/'],
  // Not URLs (typos in a config): nothing before the last '@' is repeated.
  ['tray:pw@10.0.0.5:1883', '***@10.0.0.5:1883'],
  ['mqtt://tray:p w@10.0.0.5:1883', 'mqtt://10.0.0.5:1883'],
  ['mqtt://tray:pw@10.0.0.5:99999', 'mqtt://***@10.0.0.5:99999'],
  ['not a url', 'not a url'],
  ['', ''],
];

describe('displayUrl: the gateway and the tray show the same URL', () => {
  it.each(cases)('%s → %s', (input, shown) => {
    expect(gatewayDisplayUrl(input)).toBe(shown);
    expect(trayDisplayUrl(input)).toBe(shown);
  });

  it('no credential of any case survives either copy', () => {
    for (const [input] of cases) {
      for (const show of [gatewayDisplayUrl, trayDisplayUrl]) {
        const out = show(input);
        for (const secret of ['s3cret', 'pw@', 'p%40ss', 'tray:', 'user:', 'gateway@']) expect(out).not.toContain(secret);
      }
    }
  });
});
