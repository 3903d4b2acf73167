/**
 * The tray (desktop/src/main.ts, its real MQTT client) against the embedded broker's connection
 * limit (`mqtt.maxConnections`, a real aedes broker on a real TCP port). Only Electron is stood in
 * (test/fixtures/tray/electron-stand-in.ts records the tooltip and menu).
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { until } from '../fixtures/gateway-process.ts';
import { refusedPort, useMqttStatus } from '../fixtures/status/harness.ts';
import { clickMenu, resetScreen, screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

describe('a tray refused while the broker is full', () => {
  // What the user sees: the tray on a lab PC, started while the gateway's broker had its
  // `mqtt.maxConnections` subscribers (a dashboard script holding connections), stays grey
  // "offline" for the whole day although the script was stopped minutes later and the broker has
  // room again; only restarting the tray on that PC brings it back. The refusal is CONNACK 3,
  // server unavailable — "try again later" (MQTT 3.1.1 §3.2.2.3) — and the tray never tried again:
  // mqtt.js does not reconnect after a refused CONNACK unless told to.
  // Promise broken: status/README.md "Connections" (a refused client gets in once there is room);
  // desktop/README.md, the tray follows the gateway's broker and reconnects on its own.
  const rig = useMqttStatus('tray-mqtt-limit-', { config: { id: 'lab-full', mqtt: { maxConnections: 1 } } });
  let trayRunning = false;
  afterAll(() => {
    if (trayRunning) clickMenu('Quit'); // ends the tray's MQTT client
  });

  it('connects once a place is free, without being restarted', async () => {
    resetScreen(mkdtempSync(path.join(rig.dir, 'user-data-')));
    const script = await mqtt.connectAsync(rig.url, { clientId: 'dashboard-script', reconnectPeriod: 0 });
    await startTrayProcess([`--gateway-url=http://127.0.0.1:${await refusedPort()}`, `--mqtt-url=${rig.url}`]);
    trayRunning = true;
    const tooltip = (): string => screen.tooltips.at(-1) ?? '';
    await until('the tray told of the refusal', () => /unavailable/i.test(tooltip()), 15_000);

    await script.endAsync(); // the script stopped: there is room
    await until('the tray showing the gateway', () => tooltip().startsWith('Lab gateway lab-full:') && !/offline/.test(tooltip()), 30_000);
    expect(tooltip()).not.toMatch(/unavailable|offline/i);
  }, 60_000);
});
