/**
 * Electron main process of the tray app: thin glue between Electron, an MQTT subscription and the
 * pure logic in tray-state.ts / tray-config.ts / navigation.ts. It never opens the gateway's store;
 * it only reads the MQTT status topics and the gateway's HTTP status page.
 *
 * Started by desktop/main.cjs (`npm run desktop`, or the packaged app).
 */
import { app, BrowserWindow, clipboard, Menu, nativeImage, Notification, session, Tray, type MenuItemConstructorOptions } from 'electron';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import {
  EMPTY_NOTIFY_STATE,
  decideNotification,
  diagnostics,
  parseJson,
  trayIcon,
  trayMenu,
  trayTooltip,
  type NotifyState,
  type TrayAlert,
  type TrayInput,
  type TrayStatus,
} from './tray-state.ts';
import { resolveTrayConfig, statusTopics, type TrayConfig } from './tray-config.ts';
import { navigationDecision } from './navigation.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
/** desktop/ (source checkout: dist/desktop/src → ../../../desktop; packaged: same layout in app.asar). */
const desktopDir = path.resolve(here, '../../../desktop');
const assetsDir = path.join(desktopDir, 'assets');

function readText(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function loadConfig(): TrayConfig {
  const installerFile = process.platform === 'win32' ? path.join(process.resourcesPath ?? '', 'tray-config.json') : '/etc/lab-gateway/tray.json';
  const userFile = path.join(app.getPath('userData'), 'tray-config.json');
  return resolveTrayConfig({
    argv: process.argv,
    env: process.env,
    files: [
      { path: userFile, text: readText(userFile) },
      { path: installerFile, text: readText(installerFile) },
    ],
  });
}

class TrayApp {
  readonly #config: TrayConfig;
  readonly #adminToken: string | undefined;
  #tray: Tray | undefined;
  #window: BrowserWindow | undefined;
  #client: MqttClient | undefined;
  #gatewayId: string | undefined;
  #state: TrayInput = { connection: 'connecting', now: Date.now() };
  #notify: NotifyState = EMPTY_NOTIFY_STATE;
  #lastRendered = '';

  constructor(config: TrayConfig) {
    this.#config = config;
    this.#adminToken = readText(config.adminTokenFile)?.trim() || undefined;
  }

  async start(): Promise<void> {
    this.#tray = new Tray(this.#icon('offline'));
    this.#tray.on('click', () => this.openWindow());
    this.#render();
    this.#gatewayId = await this.#learnGatewayId();
    this.#connect();
    // Re-evaluate staleness even when nothing arrives.
    setInterval(() => this.#render(), 15_000).unref();
  }

  #icon(name: string): Electron.NativeImage {
    const img = nativeImage.createFromPath(path.join(assetsDir, `${name}-32.png`));
    img.addRepresentation({ scaleFactor: 2, buffer: readFileSync(path.join(assetsDir, `${name}-64.png`)) });
    return img;
  }

  async #learnGatewayId(): Promise<string | undefined> {
    try {
      const res = await fetch(`${this.#config.gatewayUrl}/api/status`, { signal: AbortSignal.timeout(3000) });
      const body = (await res.json()) as { gatewayId?: string };
      return typeof body.gatewayId === 'string' ? body.gatewayId : undefined;
    } catch {
      return undefined; // subscribe with a wildcard; the first status names the gateway
    }
  }

  #connect(): void {
    const username = readText(this.#config.mqttUsernameFile)?.trim();
    const password = readText(this.#config.mqttPasswordFile)?.trim();
    const client = mqtt.connect(this.#config.mqttUrl, {
      reconnectPeriod: 5000,
      connectTimeout: 10_000,
      keepalive: 15,
      clean: true,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
    });
    this.#client = client;
    const t = statusTopics(this.#gatewayId);
    client.on('connect', () => {
      this.#update({ connection: 'connected' });
      client.subscribe([t.status, t.availability, t.alerts], { qos: 1 });
    });
    // With the embedded broker a dead gateway takes its broker along: a lost connection is "offline".
    client.on('close', () => this.#update({ connection: 'lost' }));
    client.on('offline', () => this.#update({ connection: 'lost' }));
    client.on('error', () => this.#update({ connection: 'lost' }));
    client.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/status')) {
        const status = parseJson<TrayStatus>(payload);
        if (status && (!this.#gatewayId || status.gatewayId === this.#gatewayId)) {
          this.#gatewayId ??= status.gatewayId;
          this.#update({ status, statusAt: Date.now() });
        }
      } else if (topic.endsWith('/availability')) {
        const a = parseJson<{ state?: string }>(payload);
        if (a?.state === 'online' || a?.state === 'offline') this.#update({ availability: a.state });
      } else if (topic.endsWith('/alerts') && !packet.retain) {
        const alert = parseJson<TrayAlert>(payload);
        if (alert) this.#onAlert(alert);
      }
    });
  }

  #update(patch: Partial<TrayInput>): void {
    this.#state = { ...this.#state, ...patch };
    this.#render();
  }

  #render(): void {
    const tray = this.#tray;
    if (!tray) return;
    const input = { ...this.#state, now: Date.now() };
    const icon = trayIcon(input);
    const tooltip = trayTooltip(input);
    const items = trayMenu(input, { isAdmin: this.#adminToken !== undefined });
    const key = JSON.stringify([icon, tooltip, items]);
    if (key === this.#lastRendered) return;
    this.#lastRendered = key;
    tray.setImage(this.#icon(icon));
    tray.setToolTip(tooltip);
    const template: MenuItemConstructorOptions[] = items.map((item) =>
      item.id === 'separator' ? { type: 'separator' } : { label: item.label, enabled: item.enabled, click: () => void this.#onMenu(item.id) },
    );
    tray.setContextMenu(Menu.buildFromTemplate(template));
  }

  async #onMenu(id: string): Promise<void> {
    switch (id) {
      case 'open':
        return this.openWindow();
      case 'pause-relay':
      case 'resume-relay':
        return this.#relay(id === 'pause-relay' ? 'pause' : 'resume');
      case 'copy-diagnostics':
        clipboard.writeText(diagnostics({ ...this.#state, now: Date.now() }, { gatewayUrl: this.#config.gatewayUrl, mqttUrl: this.#config.mqttUrl, appVersion: app.getVersion() }));
        return;
      case 'quit':
        this.#client?.end(true);
        app.quit();
        return;
    }
  }

  async #relay(action: 'pause' | 'resume'): Promise<void> {
    try {
      const res = await fetch(`${this.#config.gatewayUrl}/api/relay/${action}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.#adminToken ?? ''}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: `from the tray of ${process.env.USERNAME ?? process.env.USER ?? 'a technician'}` }),
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    } catch (err) {
      new Notification({ title: 'Lab gateway', body: `Could not ${action} sending to Odoo: ${(err as Error).message}` }).show();
    }
  }

  #onAlert(alert: TrayAlert): void {
    const d = decideNotification(this.#notify, alert, Date.now());
    this.#notify = d.state;
    if (d.notify && Notification.isSupported()) {
      const n = new Notification({ title: d.title, body: d.body, urgency: d.urgency });
      n.on('click', () => this.openWindow());
      n.show();
    }
  }

  openWindow(): void {
    if (this.#window && !this.#window.isDestroyed()) {
      this.#window.show();
      this.#window.focus();
      return;
    }
    const gatewayUrl = this.#config.gatewayUrl;
    const win = new BrowserWindow({
      width: 1024,
      height: 600,
      minWidth: 800,
      minHeight: 500,
      title: 'Lab gateway status',
      icon: path.join(assetsDir, 'app-icon-256.png'),
      autoHideMenuBar: true,
      webPreferences: {
        contextIsolation: true,
        nodeIntegration: false,
        sandbox: true,
        webSecurity: true,
        preload: path.join(desktopDir, 'preload.cjs'),
      },
    });
    // The window shows the gateway's page only: other origins are refused, new windows denied.
    win.webContents.on('will-navigate', (event, url) => {
      if (navigationDecision(url, gatewayUrl) === 'deny') event.preventDefault();
    });
    win.webContents.on('will-redirect', (event, url) => {
      if (navigationDecision(url, gatewayUrl) === 'deny') event.preventDefault();
    });
    win.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
    void win.loadURL(gatewayUrl + '/');
    this.#window = win;
  }
}

// One tray per desktop session.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  let trayApp: TrayApp | undefined;
  app.on('second-instance', () => trayApp?.openWindow());
  // A tray app keeps running with no window open.
  app.on('window-all-closed', () => {});
  void app.whenReady().then(async () => {
    // The page needs no permission (camera, notifications, geolocation…): refuse them all.
    session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
    trayApp = new TrayApp(loadConfig());
    await trayApp.start();
  });
}
