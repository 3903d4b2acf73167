/**
 * TLS_CERT_EXPIRY on a certificate's last day, in the lab's time: its last 24 hours straddle the
 * gateway's local midnight more often than not. The status model on a real store in a temp dir, a
 * real certificate made with the openssl CLI, the gateway's zone set with TZ, its clock given.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

const HOUR = 3_600_000;
const cleanups: Array<() => Promise<void> | void> = [];
const savedTz = process.env.TZ;
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe('TLS_CERT_EXPIRY on the certificate\'s last day', () => {
  /**
   * User sees: at 23:10 the banner read "MQTT: certificate mqtt.tls.cert expires today at 7 Mar
   * 12:40 (UTC+05:00)": "today", and tomorrow's date. Whoever reads "today" late in the evening
   * thinks it is too late to act, or that it is for tonight; the date says tomorrow.
   * Promise: "today" only for the lab's today; another day is named by its date (status/README.md,
   * "Times in the reasons' words").
   */
  it('says "today" only on the lab\'s today, and names the day when the last 24 h cross midnight', async () => {
    const t = tempDir('status-cert-day-');
    cleanups.push(t.cleanup);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'mqtt.key', '-out', 'mqtt.crt', '-days', '1', '-subj', '/CN=lab-gw'], { cwd: t.dir, stdio: 'pipe' });
    const cert = path.join(t.dir, 'mqtt.crt');
    const validTo = new Date(new X509Certificate(readFileSync(cert)).validTo).getTime();
    // The gateway's zone puts the expiry at 12:xx local time: Etc/GMT-N is UTC+N.
    const offsetHours = 12 - new Date(validTo).getUTCHours();
    process.env.TZ = `Etc/GMT${offsetHours > 0 ? '-' : '+'}${Math.abs(offsetHours)}`;
    const zone = `UTC${offsetHours < 0 ? '-' : '+'}${String(Math.abs(offsetHours)).padStart(2, '0')}:00`;
    const clock = `12:${String(new Date(validTo).getUTCMinutes()).padStart(2, '0')}`;

    const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-cert', mqtt: { tls: { cert, key: path.join(t.dir, 'mqtt.key') } } });
    const store = await openStore(config.gateway.dataDir);
    cleanups.push(() => store.close());
    let now = validTo - 13 * HOUR; // 23:xx the evening before, local time
    const model = new StatusModel({ config, store, telemetry: new Telemetry(), version: 't', startedAt: new Date(now).toISOString(), now: () => now, readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }) });
    await model.start();
    cleanups.push(() => model.stop());
    const reason = (): string => model.health().reasons.find((r) => r.code === 'TLS_CERT_EXPIRY')?.message ?? '';

    const day = new Date(validTo + offsetHours * HOUR);
    const date = `${day.getUTCDate()} ${['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][day.getUTCMonth()]}`;
    expect(reason()).toContain(`certificate mqtt.tls.cert expires at ${date} ${clock} (${zone})`);
    expect(reason()).not.toContain('today');

    now = validTo - HOUR; // 11:xx that day
    model.refreshCertificates();
    expect(reason()).toContain(`certificate mqtt.tls.cert expires today at ${clock} (${zone})`);
  });
});
