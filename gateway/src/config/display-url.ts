/**
 * A URL as the gateway may show it — printed (the ready line, `check`, the demo), logged, or
 * quoted in an error that reaches `/api/status` and MQTT — without its user name and password.
 *
 * Secrets are never written inline (DESIGN.md §5), and `check` refuses credentials in every URL
 * key (`odoo.url`, `odoo.proxy`, `mqtt.broker`); this is the second line: whatever URL reaches
 * the screen or the log goes through here, so a key written into a URL is never repeated.
 *
 * A string that is not a URL (a typo in the configuration) keeps nothing before its last `@`
 * either: `tray:pw@10.0.0.5:1883` is shown as `***@10.0.0.5:1883`.
 */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.host !== '') {
      if (u.username === '' && u.password === '') return url;
      u.username = '';
      u.password = '';
      return u.href;
    }
  } catch {
    // not a URL: fall through to the textual rule
  }
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0] ?? '';
  return `${scheme}***${url.slice(at)}`;
}
