/**
 * The tray handed a retained status published long before it arrived: the gateway died without
 * its Last Will reaching the broker (the site's Mosquitto, with persistence, went down with it and
 * came back with the gateway's last retained topics), and the tray starts an hour after. The
 * tray's main process (desktop/src/main.ts) with its real MQTT client, a real Mosquitto, a real
 * gateway process. Only Electron is stood in.
 */
import { describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startGatewayProcess, until, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { freePort, mosquittoSubLines } from '../fixtures/status/harness.ts';
import { screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('tray-retained-age-');

/**
 * The site's Mosquitto on `port`, keeping its retained messages on disk after every change
 * (persistence), as a broker that restarts with them; killed after the test.
 */
async function startPersistentBroker(port: number, brokers: ChildProcess[]): Promise<ChildProcess> {
  const conf = path.join(rig.dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${rig.dir}/\nautosave_interval 1\nautosave_on_changes true\nuser root\n`);
  const proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
  brokers.push(proc);
  await until('mosquitto up', async () => proc.exitCode === null && (await mosquittoSubLines(port, '$SYS/broker/version', ['-C', '1', '-W', '1'])).length > 0, 10_000);
  return proc;
}

async function killed(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await gone;
}

/** The gateway `lab-1` publishing to the broker on `port` (every `publishIntervalMs`). */
async function startGateway(port: number, publishIntervalMs: number): Promise<{ g: GatewayProcess; statusUrl: string }> {
  const config = await rig.file(
    [
      `gateway: { id: lab-1, dataDir: ${path.join(rig.dir, 'data')} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      `mqtt: { broker: "mqtt://127.0.0.1:${port}", publishIntervalMs: ${publishIntervalMs} }`,
      'status: { listen: { host: 127.0.0.1, port: 0 } }',
    ].join('\n') + '\n',
  );
  const g = startGatewayProcess(config);
  rig.gateways.push(g);
  const ready = await g.ready;
  if (!ready) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
  return { g, statusUrl: ready.status.url.replace(/\/$/, '') };
}

/** The retained messages the broker on `port` holds for lab-1 (status, availability). */
async function retained(port: number): Promise<string[]> {
  const lines = await mosquittoSubLines(port, 'lab-gateway/lab-1/#', ['-W', '2']).catch(() => []);
  return lines.filter((l) => l.retained).map((l) => l.topic);
}

/** The tray's state line, once it shows lab-1's status (or its absence) rather than waiting for one. */
const shown = (): string | undefined => {
  const t = screen.tooltips.at(-1) ?? '';
  return /lab-1: (all good|needs attention|DOWN|offline — no status for)/.test(t) ? t : undefined;
};

describe('a retained status published long before the tray received it', () => {
  /**
   * User sees: the gateway box died an hour ago (power cut) together with the site's broker; the
   * broker came back with its persisted retained topics — availability `online`, the last status
   * "all good" — and no Last Will was ever published. The technician starts the tray: green, "all
   * good", for 90 s (the stale bound counted from when the tray received it), then grey; at every
   * tray start, and after every reconnection, green again for 90 s on a dead gateway.
   * Promise: desktop/README.md "What offline means": no status for the stale bound is offline —
   * counted from when the gateway published it (its `generatedAt`) for a status the broker hands
   * out retained, with a tolerance for the two machines' clocks.
   */
  it('a tray started an hour after the gateway\'s last publish shows it grey with its age, never green', async () => {
    const brokers: ChildProcess[] = [];
    try {
      const port = await freePort();
      let broker = await startPersistentBroker(port, brokers);
      const { g, statusUrl } = await startGateway(port, 30_000);
      await until('the gateway\'s retained status on the broker', async () => {
        const topics = await retained(port);
        return topics.includes('lab-gateway/lab-1/status') && topics.includes('lab-gateway/lab-1/availability');
      });
      // Written to the broker's disk (it saves after each change; topics are stored as text).
      const db = path.join(rig.dir, 'mosquitto.db');
      const saved = (): boolean => existsSync(db) && ['status', 'availability'].every((t) => readFileSync(db).includes(`lab-gateway/lab-1/${t}`));
      await until('the retained topics saved', saved, 10_000);
      // Power cut: the broker and the gateway die at once; nobody publishes the Last Will.
      await killed(broker);
      await killed(g.child);
      broker = await startPersistentBroker(port, brokers);
      const back = await mosquittoSubLines(port, 'lab-gateway/lab-1/availability', ['-C', '1', '-W', '2']);
      expect(back.map((l) => JSON.parse(l.payload).state)).toEqual(['online']); // what the broker says of a dead gateway

      // The tray starts an hour later.
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
      await startTrayProcess([`--gateway-url=${statusUrl}`, `--mqtt-url=mqtt://127.0.0.1:${port}`]);
      rig.trayRunning = true;
      const line = await until('the tray shows lab-1', shown, 20_000);
      expect(line).toMatch(/lab-1: offline — no status for 60 min/);
      expect(screen.icons.at(-1)).toBe('offline');
      expect(screen.icons).not.toContain('ok');
    } finally {
      for (const b of brokers) await killed(b);
    }
  }, 90_000);

  /**
   * The other side: a running gateway's retained status, handed to a tray started on a PC whose
   * clock is an hour ahead of the gateway's (the tray cannot tell that from an hour-old status),
   * shows grey only until the gateway's next publish, which arrives live: from then on its age is
   * counted from its arrival on the monotonic clock, as before (tray-clock-step-audit).
   */
  it('a live status after it counts from its arrival: a PC clock an hour ahead turns green at the next publish', async () => {
    const brokers: ChildProcess[] = [];
    try {
      const port = await freePort();
      await startPersistentBroker(port, brokers);
      const { statusUrl } = await startGateway(port, 3_000);
      await until('the gateway\'s retained status on the broker', async () => (await retained(port)).includes('lab-gateway/lab-1/status'));
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
      await startTrayProcess([`--gateway-url=${statusUrl}`, `--mqtt-url=mqtt://127.0.0.1:${port}`]);
      rig.trayRunning = true;
      await until('all good', () => screen.icons.at(-1) === 'ok', 20_000);
      expect(screen.tooltips.at(-1)).toBe('Lab gateway lab-1: all good');
      // The cost: until that publish, the retained one read an hour old (the tray cannot tell).
      const before = screen.tooltips.slice(0, screen.tooltips.lastIndexOf('Lab gateway lab-1: all good'));
      expect(before.filter((t) => /lab-1: (all good|offline — no status for)/.test(t))).toEqual(expect.arrayContaining([expect.stringMatching(/no status for 60 min/)]));
    } finally {
      for (const b of brokers) await killed(b);
    }
  }, 90_000);
});
