/**
 * The text of `status.adminTokenFile`, read one way by `check` (config/validate.ts), by the status
 * server at start and at each re-read (status/admin-audit.ts AdminAuth) and by the CLI
 * (cli/remote.ts).
 *
 * Two forms:
 * - one bare token, the whole file (trimmed) with no white space in it: the format of before,
 *   read exactly as before (no name; actions attributed to `token:<id>`), whatever its length;
 * - named tokens: one `<name> <token>` per line, `#` comment lines and blank lines allowed. A name
 *   is letters, digits, `.`, `_`, `-`, `@` (not `anonymous`, which the trail uses for refusals);
 *   a token is at least ADMIN_TOKEN_MIN_LENGTH characters without white space; each name and each
 *   token once.
 *
 * A problem names its line, and the name when there is one: never the token, nor the text of a
 * line that cannot be read (it may be a token pasted alone).
 */
export interface NamedAdminToken {
  /** Undefined for the one bare token of the format of before. */
  name: string | undefined;
  token: string;
  /** 1-based line of the file. */
  line: number;
}

export interface AdminTokensRead {
  /** The tokens in force: every line without a problem (and the first of a name or token used twice). */
  tokens: NamedAdminToken[];
  /** One per line not in force, each starting with `line <n>: `. */
  problems: string[];
}

export const ADMIN_TOKEN_MIN_LENGTH = 16;
const NAME = /^[A-Za-z0-9._@-]+$/;

export function readAdminTokens(text: string): AdminTokensRead {
  const whole = text.trim();
  if (whole === '') return { tokens: [], problems: [] };
  if (!/\s/.test(whole) && !whole.startsWith('#')) {
    const line = text.split('\n').findIndex((l) => l.trim() !== '') + 1;
    return { tokens: [{ name: undefined, token: whole, line }], problems: [] };
  }
  const tokens: NamedAdminToken[] = [];
  const problems: string[] = [];
  const names = new Map<string, number>();
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const l = raw.trim();
    if (l === '' || l.startsWith('#')) return;
    const fields = l.split(/\s+/);
    if (fields.length !== 2) {
      problems.push(`line ${line}: not "<name> <token>" (${fields.length === 1 ? 'one word' : `${fields.length} words`}; a single bare token is read only when it is all the file holds)`);
      return;
    }
    const [name, token] = fields as [string, string];
    if (!NAME.test(name)) {
      problems.push(`line ${line}: the name may hold letters, digits, ".", "_", "-" and "@" only`);
      return;
    }
    if (name === 'anonymous') {
      problems.push(`line ${line}: "anonymous" is the name the audit trail gives to refused requests: choose another`);
      return;
    }
    const sameName = names.get(name);
    if (sameName !== undefined) {
      problems.push(`line ${line}: the name "${name}" is already used on line ${sameName} (one line per person)`);
      return;
    }
    if (token.length < ADMIN_TOKEN_MIN_LENGTH) {
      problems.push(`line ${line}: the token of "${name}" is ${token.length} characters: at least ${ADMIN_TOKEN_MIN_LENGTH} (e.g. openssl rand -hex 24)`);
      return;
    }
    const sameToken = seen.get(token);
    if (sameToken !== undefined) {
      problems.push(`line ${line}: "${name}" has the same token as line ${sameToken}: each person needs a token of their own`);
      return;
    }
    names.set(name, line);
    seen.set(token, line);
    tokens.push({ name, token, line });
  });
  return { tokens, problems };
}
