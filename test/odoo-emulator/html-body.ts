/**
 * What `mail.message.body` holds after `message_post`, and what a reader sees of it in the chatter.
 *
 * Odoo (checked against its source):
 * - 16: `mail.thread.message_post` stores `body` as it comes (`'body': body`, docstring "usually raw
 *   HTML that will be sanitized"): a plain-text body is HTML. `<EDTA>` is an unknown tag and is
 *   dropped by the sanitizer, `&lt;` is an entity, and line breaks are whitespace.
 * - 17+: `'body': escape(body)  # escape if text, keep if markup` (markupsafe): a str is escaped, a
 *   Markup is kept. RPC cannot send a Markup, so 17 added `body_is_html` ("to be used only for RPC
 *   calls"), honoured for internal users (17 `user_has_groups('base.group_user')`, 18/19
 *   `env.user._is_internal()`): the body is then wrapped in Markup and kept as HTML. Odoo PRs
 *   #111850 (16.3, "enforce usage of Markup in mail") and #129977 ("allow posting HTML message via
 *   RPC"). Line breaks are never turned into `<br>`: an escaped text keeps its `\n`, which HTML shows
 *   as a space.
 * - Every version: `mail.message.body` is an Html field, sanitized on write (`html_sanitize`): lxml
 *   wraps bare text in `<p>`, unknown tags are dropped (their text kept), script/style are killed,
 *   and text is serialised again (so `&#34;`/`&#39;` come back as `"`/`'`).
 *
 * The sanitizer here is a small model of that, enough for the chatter notes the gateway writes; it is
 * not lxml.
 */

/** markupsafe.escape: `& < > " '` → `&amp; &lt; &gt; &#34; &#39;`. */
export function escapeMarkup(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;');
}

const ALLOWED = new Set([
  'a', 'abbr', 'b', 'blockquote', 'br', 'code', 'div', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'li', 'ol', 'p',
  'pre', 's', 'small', 'span', 'strong', 'sub', 'sup', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'u', 'ul',
]);
const BLOCK = new Set(['blockquote', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'li', 'ol', 'p', 'pre', 'table', 'ul']);
const KILLED = new Set(['script', 'style']);
const VOID = new Set(['br', 'hr']);
const ENTITY = /^&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);/;
const TAG = /^<(\/?)([a-zA-Z][^\s/>]*)((?:\s+[^\s=>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?)*)\s*\/?>/;

/** `html_sanitize` as seen from the chatter: the stored form of an HTML body. */
export function sanitizeHtml(html: string): string {
  if (html.trim() === '') return '';
  let out = '';
  let killed: string | undefined;
  for (let i = 0; i < html.length;) {
    const rest = html.slice(i);
    if (rest[0] === '<') {
      const tag = TAG.exec(rest);
      if (tag) {
        i += tag[0].length;
        const closing = tag[1] === '/';
        const name = tag[2]!.toLowerCase();
        if (killed) {
          if (closing && name === killed) killed = undefined;
          continue;
        }
        if (KILLED.has(name)) {
          if (!closing) killed = name;
          continue;
        }
        if (!ALLOWED.has(name)) continue; // the tag goes, its text stays
        if (closing) out += VOID.has(name) ? '' : `</${name}>`;
        else {
          const href = name === 'a' ? /\shref\s*=\s*("[^"]*"|'[^']*')/i.exec(tag[3] ?? '') : null;
          out += VOID.has(name) ? `<${name}>` : `<${name}${href ? ` href=${href[1]}` : ''}>`;
        }
        continue;
      }
      i += 1;
      if (!killed) out += '&lt;';
      continue;
    }
    if (killed) {
      i += 1;
      continue;
    }
    if (rest[0] === '&') {
      const ent = ENTITY.exec(rest);
      if (ent) {
        const decoded = decodeEntity(ent[0]);
        out += decoded === '"' || decoded === "'" ? decoded : ent[0];
        i += ent[0].length;
      } else {
        out += '&amp;';
        i += 1;
      }
      continue;
    }
    out += rest[0] === '>' ? '&gt;' : rest[0];
    i += 1;
  }
  const first = /^\s*<([a-z0-9]+)/.exec(out);
  return first && BLOCK.has(first[1]!) ? out : `<p>${out}</p>`;
}

/**
 * The text a reader sees of a stored body in the chatter: tags gone, `<br>` a line break, a block a
 * line of its own, every other run of whitespace (line breaks in the source included) one space.
 */
export function chatterText(html: string): string {
  const lines: string[] = [];
  let line = '';
  const flush = (block: boolean): void => {
    const text = line.replace(/[ \t\r\n\f]+/g, ' ').trim();
    // A block boundary ends a line that has text; an empty <br> line is a blank line.
    if (!block || text !== '') lines.push(text);
    line = '';
  };
  for (const part of html.split(/(<[^>]*>)/)) {
    if (part.startsWith('<')) {
      const name = /^<\/?([a-zA-Z0-9]+)/.exec(part)?.[1]?.toLowerCase();
      if (name === 'br') flush(false);
      else if (name && BLOCK.has(name)) flush(true);
      continue;
    }
    line += part.replace(/&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);/g, (e) => decodeEntity(e));
  }
  flush(true);
  return lines.join('\n');
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

function decodeEntity(entity: string): string {
  const body = entity.slice(1, -1);
  if (body.startsWith('#x') || body.startsWith('#X')) return String.fromCodePoint(parseInt(body.slice(2), 16));
  if (body.startsWith('#')) return String.fromCodePoint(parseInt(body.slice(1), 10));
  return NAMED[body] ?? entity;
}
