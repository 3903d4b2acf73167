/**
 * The body of the tray's desktop notifications on Linux, where Electron hands it to libnotify as
 * it is, and the notification server (GNOME Shell, KDE Plasma, xfce4-notifyd, MATE, dunst, mako:
 * those with the `body-markup` capability) reads it as markup (Desktop Notifications
 * Specification, "Markup"): `&`, `<` and `>` are markup there. The alert is the one the gateway
 * raises for a dead letter whose refusal quotes Odoo's words: the real status model on a real
 * store in a temp dir, and the tray's own notification decision (desktop/src/tray-state.ts).
 *
 * Before: the body went as it was. An `&` not starting an entity is a markup error: xfce4-notifyd
 * and MATE showed the notification without its body ("Failed to set text … from markup"), and
 * text between `<` and `>` was taken for a tag and dropped (KDE): the technician read a title and
 * nothing of which sample, or why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { EMPTY_NOTIFY_STATE, decideNotification, normalizeStatus, notificationBody, reasonChanges } from '../../desktop/src/tray-state.ts';
import { makeConfig, makeDeadLetter, openStore, tempDir, waitFor } from '../fixtures/status/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What a server with `body-markup` shows of a body: its text, or null when the body is no valid markup (shown empty). */
function shownByMarkupServer(body: string): string | null {
  // The markup of the specification: <b> <i> <u> <a href> <img>, and XML entities.
  if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(body)) return null;
  const text = body.replace(/<\/?(b|i|u|a|img)(\s[^>]*)?\/?>/g, '');
  if (/[<>]/.test(text)) return null;
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

describe("a notification's body with & and < from the gateway's words", () => {
  it('is shown whole by a Linux notification server, and as it is elsewhere', async () => {
    const t = tempDir('review-s22-tray-markup-');
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
    await makeDeadLetter(store, 'MK-1', "Odoo refused the line: <Fault 2: product 'GLU & HbA1c' not sold>");
    await waitFor(() => (m.poll(), m.toApiStatus().healthReasons.some((r) => r.code === 'DEAD_LETTERS' && r.message.includes('MK-1')) || undefined), 'the dead letter reason');

    // The tray's first status: the alarm is notified (reasonChanges, decideNotification).
    const status = normalizeStatus(JSON.parse(JSON.stringify(m.toApiStatus())))!;
    const alarm = reasonChanges(new Map(), status, new Date().toISOString()).appeared.find((a) => a.code === 'DEAD_LETTERS')!;
    const d = decideNotification(EMPTY_NOTIFY_STATE, alarm, Date.now());
    if (!d.notify) throw new Error('not notified');
    expect(d.body).toContain("<Fault 2: product 'GLU & HbA1c' not sold>");

    expect(shownByMarkupServer(d.body)).toBeNull(); // as it was sent before: shown without its body
    const linux = notificationBody(d.body, 'linux');
    expect(shownByMarkupServer(linux)).toBe(d.body);
    // Windows and macOS show the text as it is.
    expect(notificationBody(d.body, 'win32')).toBe(d.body);
    expect(notificationBody(d.body, 'darwin')).toBe(d.body);
  });
});
