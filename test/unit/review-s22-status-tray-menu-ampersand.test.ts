/**
 * The tray menu's state line when the gateway's words hold an `&`: Electron's Menu reads a single
 * `&` in a label as the mark of an access key (the letter after it, underlined; Windows, and as
 * `_` on Linux) and does not show it; `&&` shows one (electron/electron#9584, #27770). The status
 * is a real status model's, with a dead letter whose refusal quotes Odoo's words
 * ("product 'GLU & HbA1c'"); the label is the one desktop/src/main.ts gives Electron's Menu.
 *
 * Before: the label went as it was, and the menu read "product 'GLU  HbA1c'".
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { menuLabel, normalizeStatus, trayMenu } from '../../desktop/src/tray-state.ts';
import { makeConfig, makeDeadLetter, openStore, tempDir, waitFor } from '../fixtures/status/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What Electron's Menu shows of a label: `&&` is one `&`, a single `&` marks the next letter and is not shown. */
const shownByElectron = (label: string): string => label.replace(/&(&?)/g, (_m, second: string) => second);

describe("the menu's state line with an & in the gateway's words", () => {
  it('shows the &', async () => {
    const t = tempDir('review-s22-tray-menu-amp-');
    cleanups.push(t.cleanup);
    const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-1' });
    const store = await openStore(config.gateway.dataDir);
    cleanups.push(() => store.close());
    const m = new StatusModel({
      config,
      store,
      telemetry: new Telemetry(),
      version: 't',
      startedAt: new Date().toISOString(),
      pollIntervalMs: 3_600_000,
      diskIntervalMs: 3_600_000,
      readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }),
    });
    await m.start();
    cleanups.push(() => m.stop());
    await makeDeadLetter(store, 'AMP-1', "product 'GLU & HbA1c' not sold");
    await waitFor(() => (m.poll(), m.toApiStatus().healthReasons.some((r) => r.code === 'DEAD_LETTERS' && r.message.includes('AMP-1')) || undefined), 'the dead letter reason');
    const status = normalizeStatus(JSON.parse(JSON.stringify(m.toApiStatus())))!;
    const line = trayMenu({ connection: 'connected', availability: 'online', status, statusAt: Date.now(), now: Date.now() }, { isAdmin: false })[0]!.label;
    expect(line).toContain("'GLU & HbA1c'");
    expect(shownByElectron(line)).not.toContain("'GLU & HbA1c'"); // as the label went before
    expect(shownByElectron(menuLabel(line))).toBe(line);
    expect(menuLabel('Open status window')).toBe('Open status window');
  });
});
