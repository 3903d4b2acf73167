/**
 * A lab technician's day glancing at the tray, and the IT person who installed it: the tray's
 * main process (desktop/src/main.ts) with its real MQTT client, against a real gateway process
 * (`lab-gateway start`, its embedded broker on a fixed port so that a restarted gateway is found
 * again). Only Electron is stood in (test/fixtures/tray/electron-stand-in.ts records the icon,
 * tooltip, menu and notifications): its binary cannot be downloaded on the build machines.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { getJson, startGatewayProcess, until, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { freePort, hl7Message, mosquittoSubLines, openStore, refusedPort, useMosquitto } from '../fixtures/status/harness.ts';
import { clickMenu, powerEvent, screen, useChromium } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';
import { CHROMIUM_FLAGS } from '../fixtures/chromium.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('tray-day-');
const file = rig.file;
const gateways = rig.gateways;

interface Site {
  gatewayUrl: string;
  mqttUrl: string;
  config: string;
}

/** A gateway config on fixed ports (a restart keeps its address), not started yet. */
async function site(id: string, extra: string[] = []): Promise<Site> {
  const [mqttPort, statusPort] = [await freePort(), await freePort()];
  const config = await file(
    [
      `gateway: { id: ${id}, dataDir: ${path.join(rig.dir, 'data')} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      `mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: ${mqttPort} }, publishIntervalMs: 2000 }`,
      ...extra,
    ].join('\n') + (extra.some((l) => l.startsWith('status:')) ? '' : `\nstatus: { listen: { host: 127.0.0.1, port: ${statusPort} } }`) + '\n',
  );
  return { gatewayUrl: `http://127.0.0.1:${statusPort}`, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, config };
}

async function startGateway(s: Site): Promise<GatewayProcess> {
  const g = startGatewayProcess(s.config);
  gateways.push(g);
  const ready = await g.ready;
  if (!ready) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
  return g;
}

/** Start the tray (a fresh main process) as the installer does: the gateway's address on the command line. */
async function startTray(s: Site, argv: string[] = []): Promise<void> {
  await startTrayProcess([`--gateway-url=${s.gatewayUrl}`, `--mqtt-url=${s.mqttUrl}`, ...argv]);
  rig.trayRunning = true;
}

const tooltip = (): string => screen.tooltips.at(-1) ?? '';
const icon = (): string => screen.icons.at(-1) ?? '';
const shown = (): string[] => screen.notifications.filter((n) => n.shown).map((n) => `${n.title}: ${n.body}`);

describe('admin token rotated', () => {
  /**
   * User sees: IT rotates the gateway's admin token by writing a new one into the file the gateway
   * and the tray both name (status.adminTokenFile / the tray's adminTokenFile). The gateway takes
   * it at once (status/README.md "a token written there is accepted at once and the one it
   * replaced is refused, without a restart"). The technician then clicks "Pause sending to Odoo"
   * before an Odoo maintenance: nothing pauses, a notification says "Could not pause sending to
   * Odoo: HTTP 401" — and keeps saying it until somebody restarts the tray on every lab PC.
   * Promise: desktop/README.md "The pause/resume menu entries appear only when adminTokenFile
   * names a file holding the gateway's admin token" — the file, not what it held at login.
   */
  it('pause from the tray works with the token now in the file, without restarting the tray', async () => {
    const tokenFile = await file('token-before-rotation-0123456789\n', 'admin.token');
    const s = await site('tray-token', [`status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${tokenFile} }`]);
    const g = await startGateway(s);
    const base = (await g.ready)!.status.url.replace(/\/$/, '');
    const running: Site = { ...s, gatewayUrl: base };
    await startTray(running, [`--admin-token-file=${tokenFile}`]);
    await until('all good', () => tooltip().endsWith('all good'));

    await writeFile(tokenFile, 'token-after-rotation-9876543210\n'); // the rotation
    clickMenu('Pause sending to Odoo');

    const refused = (): string[] => shown().filter((n) => n.includes('Could not'));
    const status = await until('the relay paused, or the tray saying it could not', async () => {
      const st = await getJson<{ relayPaused: boolean }>(`${base}/api/status`);
      return st.relayPaused || refused().length > 0 ? st : undefined;
    });
    expect(refused()).toEqual([]);
    expect(status.relayPaused).toBe(true);
    // And the tray offers to resume, with the same rotated token.
    await until('resume offered', () => screen.menu.some((i) => i.label === 'Resume sending to Odoo'));
    clickMenu('Resume sending to Odoo');
    await until('the relay resumed, or the tray saying it could not', async () => refused().length > 0 || !(await getJson<{ relayPaused: boolean }>(`${base}/api/status`)).relayPaused);
    expect(refused()).toEqual([]);
  });
});

describe('gateway not running yet at login', () => {
  /**
   * User sees: the lab PC boots faster than the gateway box. The tray starts grey; the gateway
   * comes up with the haematology analyzer unreachable (cable pulled over the weekend). The icon
   * turns amber, but no notification ever says so — the same disconnection while both were
   * running pops one up. The technician who does not hover over the icon never learns it.
   * Promise: desktop/README.md "desktop notifications for new alerts … one per new alarm".
   */
  it('an alarm the gateway raised as it started is notified once the tray sees it', async () => {
    const deadPort = await refusedPort(); // nothing listens there: the analyzer is off
    const s = await site('tray-login', [`analyzers: [ { id: xn-1, profile: sysmex-xn, tcp: { connect: { host: 127.0.0.1, port: ${deadPort} } } } ]`]);
    await startTray(s);
    expect(icon()).toBe('offline');
    await startGateway(s);
    await until('the analyzer shown down', () => /xn-1/.test(tooltip()) && tooltip(), 30_000);
    expect(icon()).toBe('degraded');
    await until('a notification', () => shown().length > 0, 10_000).catch(() => undefined);
    expect(shown()).toEqual([expect.stringMatching(/xn-1/)]);
  });

  /**
   * The other side of the same promise: the alarm was notified, then IT restarts the gateway (an
   * update) with the analyzer still unplugged. The tray must not pop the same alarm up again for
   * each restart, nor for each status the gateway publishes meanwhile.
   */
  it('an alarm still there after a gateway restart is not notified again', async () => {
    const deadPort = await refusedPort();
    const s = await site('tray-restart', [`analyzers: [ { id: xn-1, profile: sysmex-xn, tcp: { connect: { host: 127.0.0.1, port: ${deadPort} } } } ]`]);
    const first = await startGateway(s);
    await startTray(s);
    await until('a notification', () => shown().length > 0, 30_000);
    await until('the analyzer shown down', () => icon() === 'degraded', 10_000); // the gateway's status says so too
    await first.stop();
    await until('offline', () => icon() === 'offline');
    await startGateway(s);
    await until('the analyzer shown down again', () => icon() === 'degraded' && tooltip(), 30_000);
    // A few of its status publishes (every 2 s here).
    const seen = screen.tooltips.length;
    await until('more statuses', () => screen.tooltips.length > seen || undefined, 10_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 5000));
    expect(shown()).toEqual([expect.stringMatching(/xn-1/)]);
  });
});

describe('IT restarts the gateway while an analyzer is unplugged', () => {
  /**
   * User sees: "Analyzer xn-1 in error" popped up in the morning; the cable is still out. At noon IT
   * restarts the gateway (an update). As the gateway stops its links it tells its subscribers
   * "Resolved: endpoint down (xn-1)" and publishes a last running status without the alarm, so
   * the tray closed the notification — nothing was resolved — and forgot it had told the
   * technician, ready to pop the same alarm up again once the restarted gateway finds the
   * analyzer still unreachable.
   * Promise: desktop/README.md "When the gateway reports the alarm cleared, its notification is
   * closed" — an alarm that cleared, not one a stopping gateway stopped looking at; "An alarm that
   * stays through a gateway restart is not notified again".
   */
  it('keeps the notification of an alarm the stopping gateway stops looking at', async () => {
    const deadPort = await refusedPort();
    const s = await site('tray-stopping', [`analyzers: [ { id: xn-1, profile: sysmex-xn, tcp: { connect: { host: 127.0.0.1, port: ${deadPort} } } } ]`]);
    const g = await startGateway(s);
    await startTray(s);
    await until('the alarm notified', () => shown().length > 0, 30_000);
    const iconsBefore = screen.icons.length;
    await g.stop();
    await until('the gateway shown not running', () => /not running|connection to the gateway lost/.test(tooltip()), 20_000);
    expect(screen.notifications.map((n) => ({ body: n.body, closed: n.closed }))).toEqual([{ body: expect.stringMatching(/xn-1/), closed: false }]);
    // Nor was the stopping gateway shown green on the way.
    expect(screen.icons.slice(iconsBefore)).not.toContain('ok');
  });
});

describe('Linux desktop (AppIndicator)', () => {
  /**
   * User sees: on the lab's Ubuntu PCs a click on the tray icon only opens its menu (AppIndicator
   * has no click and often no tooltip), and the menu says nothing about the gateway: the
   * technician sees an amber dot and no reason, short of opening the status window.
   * Promise: desktop/README.md "a coloured dot in the system tray … a one-line tooltip with the
   * reason" — on a desktop without tooltips, that line must be somewhere the technician sees.
   */
  it("the menu starts with the gateway's state, kept current", async () => {
    const s = await site('tray-menu');
    const g = await startGateway(s);
    await startTray(s);
    await until('all good', () => tooltip().endsWith('all good'));
    expect(screen.menu[0]).toMatchObject({ label: 'Lab gateway tray-menu: all good', enabled: false });
    await g.stop();
    await until('offline', () => icon() === 'offline');
    expect(screen.menu[0]).toMatchObject({ label: tooltip(), enabled: false });
    expect(screen.menu[0]!.label).toMatch(/^Lab gateway tray-menu: offline — /);
  });
});

describe('the lab PC wakes from sleep', () => {
  /**
   * User sees: the PC slept over lunch; at 14:00 the technician wakes it and glances at the tray:
   * green "all good" — the state from 12:30 — while the gateway may have been down for an hour. The
   * tray looks again only on its 15 s tick (whose clock stood still while the PC slept), so the
   * icon from before the sleep is shown as current meanwhile.
   * Promise: desktop/README.md "no status arrived for three of the gateway's publish intervals"
   * shows grey — at once when the PC wakes, not a tick later.
   */
  it('the state from before the sleep is not shown as current after it wakes', async () => {
    const s = await site('tray-sleep');
    await startGateway(s);
    await startTray(s);
    await until('all good', () => icon() === 'ok');
    powerEvent('suspend');
    // The PC sleeps for an hour: its wall clock jumps ahead, nothing ran meanwhile.
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    powerEvent('resume');
    expect(icon()).toBe('offline');
    expect(tooltip()).toMatch(/no status for 60 min/);
    // And a fresh status of the running gateway shows it as it is now.
    await until('green again', () => icon() === 'ok', 20_000).catch(() => undefined);
    expect(tooltip()).toBe('Lab gateway tray-sleep: all good');
  });
});

describe('gateway died overnight (external broker)', () => {
  const broker = useMosquitto('tray-mosquitto-');

  /**
   * User sees: the gateway publishes to the site's Mosquitto. It was killed overnight (power cut
   * of its box); the broker published its Last Will `offline`. In the morning the technician logs
   * in: the tray lights up green "all good" from the dead gateway's last retained status before it
   * turns grey. The broker delivers the retained status before the availability when the tray
   * subscribes to them in that order.
   * Promise: desktop/README.md "the retained topic lab-gateway/<id>/availability says offline: …
   * the gateway's Last Will" shows grey — never the green of a gateway that is not running.
   */
  it('the tray starting after the gateway died never shows it green', async () => {
    const statusPort = await freePort();
    const s: Site = {
      gatewayUrl: `http://127.0.0.1:${statusPort}`,
      mqttUrl: `mqtt://127.0.0.1:${broker.port}`,
      config: await file(
        [
          `gateway: { id: tray-night, dataDir: ${path.join(rig.dir, 'data')} }`,
          'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
          `mqtt: { broker: 'mqtt://127.0.0.1:${broker.port}', publishIntervalMs: 2000 }`,
          `status: { listen: { host: 127.0.0.1, port: ${statusPort} } }`,
          '',
        ].join('\n'),
      ),
    };
    const g = await startGateway(s);
    await until('its retained status', async () => (await getJson<{ online?: boolean }>(`${s.gatewayUrl}/api/status`)).online);
    await new Promise((r) => setTimeout(r, 1000)); // the publisher has published its status
    g.child.kill('SIGKILL');
    await g.exited;
    await new Promise((r) => setTimeout(r, 20_000)); // the broker's keep-alive (10 s × 1.5) ran out: the will is out

    await startTray(s);
    await until('the tray read the retained topics', () => /not running/.test(tooltip()) && tooltip(), 10_000);
    expect(icon()).toBe('offline');
    expect(screen.icons).not.toContain('ok');
    expect(shown()).toEqual([]);
  });
});

describe('the status window opened before the gateway is up', () => {
  let browser: Browser;
  beforeAll(async () => {
    // Chromium's own error page reloads itself once the site answers (a feature of the browser
    // layer, switched off by --disable-auto-reload); Electron is built on the content layer
    // without it, and leaves a window whose load failed blank. The window here behaves the same.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_FLAGS, '--disable-auto-reload'] });
  });
  afterAll(async () => {
    useChromium(undefined);
    await browser.close();
  });

  /**
   * User sees: at 7:55 the tray is grey (the gateway box is still booting); the technician clicks
   * "Open status window" to see why and gets an empty window (Electron shows nothing for a page
   * that did not load). At 8:00 the icon turns green, but the window stays empty, and clicking
   * the tray again only brings that same empty window to the front. Only closing it and opening
   * it again shows the status page.
   * Promise: desktop/README.md "a window with the gateway's status page".
   */
  it('shows the status page once the gateway is up, without being closed and opened again', async () => {
    useChromium(browser);
    const s = await site('tray-window');
    await startTray(s);
    clickMenu('Open status window');
    const win = await until('the window', () => screen.windows[0]);
    const page = await until('its page', () => win.page());
    await until('the page could not be loaded', () => page.url().startsWith('chrome-error:'));

    await startGateway(s);
    await until('the tray green', () => icon() === 'ok', 30_000);
    // The window left open, nobody touching it.
    await until('the status page', async () => (await page.title()) === 'Lab gateway status', 20_000).catch(() => undefined);
    expect(await page.title()).toBe('Lab gateway status');
    expect(screen.windows).toHaveLength(1);
    await win.destroy();
  });
});

describe('gateway renamed while restarted', () => {
  /**
   * User sees: IT commissions the gateway with the example id, then gives it its real one
   * (`gateway.id: lab-1` → `haematology`) and restarts it. Every tray stays grey, "no status
   * received yet", for good: it still listens for the old id, though the gateway at the address it
   * was given is up and well — until each lab PC's tray is restarted.
   * Promise: desktop/README.md "The tray follows one gateway: the one its /api/status names" — the
   * gateway at its configured address.
   */
  it('follows the gateway at its address under its new id', async () => {
    const s = await site('lab-1');
    const first = await startGateway(s);
    await startTray(s);
    await until('all good', () => tooltip() === 'Lab gateway lab-1: all good');
    await first.stop();
    await writeFile(s.config, (await readFile(s.config, 'utf8')).replace('id: lab-1,', 'id: haematology,'));
    await startGateway(s);
    await until('the renamed gateway shown', () => /haematology/.test(tooltip()) && icon() === 'ok', 30_000).catch(() => undefined);
    expect(tooltip()).toBe('Lab gateway haematology: all good');
  });
});

describe('two gateways on the site broker', () => {
  const broker = useMosquitto('tray-sites-');

  /** A gateway publishing to the site's Mosquitto, with its own data and status address. */
  async function siteOnBroker(id: string, extra: string[] = []): Promise<Site> {
    const statusPort = await freePort();
    return {
      gatewayUrl: `http://127.0.0.1:${statusPort}`,
      mqttUrl: `mqtt://127.0.0.1:${broker.port}`,
      config: await file(
        [
          `gateway: { id: ${id}, dataDir: ${path.join(rig.dir, `data-${id}`)} }`,
          'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
          `mqtt: { broker: 'mqtt://127.0.0.1:${broker.port}', publishIntervalMs: 2000 }`,
          `status: { listen: { host: 127.0.0.1, port: ${statusPort} } }`,
          ...extra,
          '',
        ].join('\n'),
        `${id}.yaml`,
      ),
    };
  }

  /**
   * User sees: the chemistry and haematology gateways publish to the site's Mosquitto; the tray on
   * the chemistry bench was installed with the chemistry gateway's address. Monday 7:00 the PC
   * starts while the chemistry gateway box is still booting: the tray follows the first status it
   * finds on the broker — haematology's — and shows "Lab gateway haem: all good" in green all
   * day. The chemistry gateway comes up with its analyzer unreachable; the tray never looks at
   * it: the technician at the chemistry bench is told all is well.
   * Promise: desktop/README.md "The tray follows one gateway: the one its /api/status names" —
   * the gateway at the address it was installed with; another site's gateway only until that one
   * answers.
   */
  it('follows the gateway at its address once it answers, not the other one it found first', async () => {
    const haem = await siteOnBroker('haem');
    await startGateway(haem);
    await until('haem published', async () => (await getJson<{ online?: boolean }>(`${haem.gatewayUrl}/api/status`)).online);
    const deadPort = await refusedPort(); // the chemistry analyzer is off
    const chem = await siteOnBroker('chem', [`analyzers: [ { id: au-1, profile: sysmex-xn, tcp: { connect: { host: 127.0.0.1, port: ${deadPort} } } } ]`]);
    await startTray(chem);
    await until('the tray shows a gateway', () => /^Lab gateway haem: /.test(tooltip()) || undefined, 15_000);

    await startGateway(chem);
    await until('the chemistry gateway shown', () => /^Lab gateway chem: /.test(tooltip()) || undefined, 40_000).catch(() => undefined);
    expect(tooltip()).toMatch(/^Lab gateway chem: /);
    await until('its analyzer shown down', () => /au-1/.test(tooltip()) || undefined, 30_000).catch(() => undefined);
    expect(tooltip()).toMatch(/au-1/);
    expect(icon()).toBe('degraded');
  });
});

/** Data stored 400 days before today in the site's store: the gateway's start raises CLOCK_AHEAD_OF_STORED_DATA, a one-off alert. */
async function storedLongAgo(): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() - 400 * 86_400_000 });
  try {
    const store = await openStore(path.join(rig.dir, 'data'));
    await store.commit(hl7Message(undefined, 'BEFORE-REPAIR'), []);
    await store.close();
  } finally {
    vi.useRealTimers();
  }
}

describe('the last alert kept on the alerts topic', () => {
  const broker = useMosquitto('tray-alerts-');

  /**
   * User sees: the alerts topic is retained (DESIGN.md §5), so the site's Mosquitto hands every
   * new subscriber the gateway's last alert — here "the system clock is … past the newest data",
   * raised when the gateway started and long since dealt with, the gateway since stopped for the
   * night. A technician logging in must not get it popped up as news each morning: the tray
   * notifies live alerts (RETAIN 0) only, a retained copy (RETAIN 1) is an old one.
   * Promise: desktop/README.md "desktop notifications for new alerts"; "The last status of a
   * stopped or dead gateway notifies nothing".
   */
  it('a tray connecting after the alert does not notify the retained copy', async () => {
    await storedLongAgo();
    const statusPort = await freePort();
    const s: Site = {
      gatewayUrl: `http://127.0.0.1:${statusPort}`,
      mqttUrl: `mqtt://127.0.0.1:${broker.port}`,
      config: await file(
        [
          'gateway: { id: tray-kept, dataDir: ' + path.join(rig.dir, 'data') + ' }',
          'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
          `mqtt: { broker: 'mqtt://127.0.0.1:${broker.port}', publishIntervalMs: 2000 }`,
          `status: { listen: { host: 127.0.0.1, port: ${statusPort} } }`,
          '',
        ].join('\n'),
      ),
    };
    const g = await startGateway(s);
    // The broker holds the alert retained (what the tray is handed when it subscribes).
    const kept = await until('the clock alert retained on the broker', async () => {
      const lines = await mosquittoSubLines(broker.port, 'lab-gateway/tray-kept/alerts', ['-C', '1', '-W', '2']);
      return lines.find((l) => l.retained && l.payload.includes('CLOCK_AHEAD_OF_STORED_DATA'));
    });
    expect(kept.retained).toBe(true);
    await g.stop(); // graceful: the alert stays retained, availability says offline

    await startTray(s);
    await until('the tray read the retained topics', () => /not running|stopped/.test(tooltip()) && tooltip(), 10_000);
    await new Promise((r) => setTimeout(r, 3000)); // every retained copy has arrived
    expect(icon()).toBe('offline');
    expect(shown()).toEqual([]);
  });
});

describe('a one-off alert of the start-up, the tray started after it', () => {
  /**
   * User sees: the gateway box came back from a repair with its date a year ahead; its start-up
   * said so (CLOCK_AHEAD_OF_STORED_DATA) before any tray could be connected to its embedded
   * broker. The technician's tray, started a minute later, gets that alert twice over: as the
   * alerts topic's retained copy and in the status's `recentAlerts`. It notifies it once, from the
   * status (desktop/README.md "the tray notifies each it was not told of live, once").
   */
  it('is notified once, from the status', async () => {
    await storedLongAgo();
    const s = await site('tray-clock');
    const g = await startGateway(s);
    await until('the clock alert raised', () => g.err().includes('"code":"CLOCK_AHEAD_OF_STORED_DATA"'), 20_000);
    await startTray(s);
    await until('a notification', () => shown().length > 0, 15_000);
    await new Promise((r) => setTimeout(r, 5000)); // a few status publishes (every 2 s) and the retained alert
    expect(shown()).toEqual([expect.stringMatching(/clock/i)]);
  });
});
