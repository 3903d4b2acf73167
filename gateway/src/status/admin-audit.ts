import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { GatewayError } from '../errors.ts';
import { readAdminTokens } from '../config/admin-tokens.ts';

/**
 * Admin bearer tokens and the audit log of admin actions.
 *
 * The tokens come from `status.adminTokenFile` (or one is injected): one bare token (the format of
 * before), or one `<name> <token>` line per person (config/admin-tokens.ts). The file is looked at
 * again before each admin request (a stat; read when its size, time or inode changed): a token
 * written there is accepted at once, and one removed or replaced refused, with no restart; a line
 * with a problem is not in force, the others are. A file found empty or unreadable keeps the tokens
 * in force (an editor between truncating and writing, a file replaced by a rename), so admin
 * actions cannot be switched off that way by accident. A token is never logged; an action is
 * attributed to the token's name and the remote address (`alice@10.0.0.5`), or, for a bare token,
 * to its id (first 12 hex digits of its SHA-256: `token:0123456789ab@10.0.0.5`).
 * Every admin action is appended as one JSON line to `<dataDir>/audit.log` and flushed to disk
 * before the action is answered.
 */
export interface AuditEntry {
  at: string;
  /** `<name>@<remote address>`, or `token:<id>@<remote address>` for a bare token, `anonymous@<remote address>` for a refusal */
  actor: string;
  action: string;
  target?: string;
  reason?: string;
  outcome: 'ok' | 'refused' | 'failed';
  detail?: string;
}

export function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}

/** The token an `Authorization: Bearer <token>` header carries (trimmed), undefined without one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const m = authorization ? /^Bearer\s+(.+)$/i.exec(authorization.trim()) : null;
  return m ? m[1]!.trim() : undefined;
}

/** What identifies a version of the token file: a change to any of these means a new write. */
async function fileVersion(file: string): Promise<string> {
  const s = await stat(file, { bigint: true });
  return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** A token in force, as kept: its digest, never the token. */
interface KeptToken {
  digest: Buffer;
  id: string;
  /** Undefined for a bare token (the format of before). */
  name: string | undefined;
}

/** Who an accepted token is: its name (undefined for a bare token) and its id. */
export interface AdminIdentity {
  name: string | undefined;
  id: string;
}

/** The actor of an accepted request in the trail and the log. */
export function adminActor(who: AdminIdentity, remote: string): string {
  return who.name !== undefined ? `${who.name}@${remote}` : `token:${who.id}@${remote}`;
}

/** How a token is named in the log of a change: its name, else `token:<id>`. */
function label(t: KeptToken): string {
  return t.name ?? `token:${t.id}`;
}

/**
 * What a re-read of the file changed (names and ids only): `single` when both before and after it
 * held one bare token (logged as before, with the ids).
 */
export interface AdminTokensChange {
  added: string[];
  removed: string[];
  /** Names kept whose token was replaced. */
  replaced: string[];
  single?: { previousId: string | undefined; id: string };
  /** The lines of the file not in force (config/admin-tokens.ts), never a token. */
  problems: string[];
}

export class AdminAuth {
  #tokens: KeptToken[] = [];
  /** The token file, when the tokens come from one (not injected), and the version last read. */
  readonly #file: string | undefined;
  #version: string | undefined;
  /** The lines of the file last read that are not in force. */
  #problems: string[] = [];

  constructor(text: string | undefined, file?: string, version?: string, options: { bare?: boolean } = {}) {
    const t = text?.trim();
    if (options.bare) this.#tokens = t ? [keep(undefined, t)] : [];
    else this.#apply(text ?? '');
    this.#file = file;
    this.#version = version;
  }

  static async fromFile(file: string | undefined, injected?: string): Promise<AdminAuth> {
    if (injected !== undefined) return new AdminAuth(injected, undefined, undefined, { bare: true });
    if (!file) return new AdminAuth(undefined);
    try {
      const version = await fileVersion(file);
      return new AdminAuth(await readFile(file, 'utf8'), file, version);
    } catch (err) {
      throw new GatewayError('GW_CONFIG_INVALID', `status.adminTokenFile: cannot read ${file}`, { cause: err, details: { path: 'status.adminTokenFile' } });
    }
  }

  /** Whether the tokens come from a file (status.adminTokenFile), which may hold none in force. */
  get fromFile(): boolean {
    return this.#file !== undefined;
  }

  /** The id of the token in force when the file holds one bare token (the format of before). */
  get id(): string | undefined {
    return this.#tokens.length === 1 && this.#tokens[0]!.name === undefined ? this.#tokens[0]!.id : undefined;
  }

  /** The names in force (named tokens only). */
  get names(): string[] {
    return this.#tokens.flatMap((t) => (t.name === undefined ? [] : [t.name]));
  }

  /** The lines of the file last read that are not in force (`line <n>: …`, never a token). */
  get problems(): readonly string[] {
    return this.#problems;
  }

  /**
   * Look at the token file again: when it holds other tokens, those are in force from now on and
   * the change is returned (names and ids only). An empty or unreadable file changes nothing; it is
   * read again at the next call.
   */
  async refresh(): Promise<AdminTokensChange | undefined> {
    if (!this.#file) return undefined;
    let version: string;
    let text: string;
    try {
      version = await fileVersion(this.#file);
      if (version === this.#version) return undefined;
      text = await readFile(this.#file, 'utf8');
    } catch {
      return undefined;
    }
    if (!text.trim()) return undefined;
    this.#version = version;
    const before = this.#tokens;
    const problemsBefore = this.#problems;
    this.#apply(text);
    const after = this.#tokens;
    const labels = (ts: KeptToken[]) => new Map(ts.map((t) => [label(t), t.id]));
    const was = labels(before);
    const now = labels(after);
    const added = [...now.keys()].filter((k) => !was.has(k));
    const removed = [...was.keys()].filter((k) => !now.has(k));
    const replaced = [...now.keys()].filter((k) => was.has(k) && was.get(k) !== now.get(k));
    const problemsChanged = this.#problems.join('\n') !== problemsBefore.join('\n');
    if (added.length === 0 && removed.length === 0 && replaced.length === 0 && !problemsChanged) return undefined;
    const change: AdminTokensChange = { added, removed, replaced, problems: this.#problems };
    const single = (ts: KeptToken[]) => ts.length === 1 && ts[0]!.name === undefined;
    if (single(after) && (before.length === 0 || single(before))) change.single = { previousId: before[0]?.id, id: after[0]!.id };
    return change;
  }

  #apply(text: string): void {
    const { tokens, problems } = readAdminTokens(text);
    this.#tokens = tokens.map((t) => keep(t.name, t.token));
    this.#problems = problems;
  }

  get enabled(): boolean {
    return this.#tokens.length > 0;
  }

  /** Who the `Authorization: Bearer <token>` header's token is, undefined when it is no admin token. */
  check(authorization: string | undefined): AdminIdentity | undefined {
    const token = bearerToken(authorization);
    if (this.#tokens.length === 0 || token === undefined) return undefined;
    const given = createHash('sha256').update(token).digest();
    // Compare digests in constant time (equal lengths by construction), against every token.
    let found: KeptToken | undefined;
    for (const t of this.#tokens) if (timingSafeEqual(given, t.digest) && !found) found = t;
    return found && { name: found.name, id: found.id };
  }
}

function keep(name: string | undefined, token: string): KeptToken {
  return { digest: createHash('sha256').update(token).digest(), id: tokenId(token), name };
}

/**
 * Size of `audit.log` past which it is moved to `audit.log.1` (replacing the previous one) before
 * the next entry: the trail keeps its newest 8–16 MiB (tens of thousands of entries), and a script
 * polling with a stale token (up to 11 refused lines a minute per address, about 1 GB a year) can
 * no longer fill the data disk. The actions (every entry but a refusal) of the `audit.log.1` so
 * replaced are moved to `audit-actions.log` (itself moved to `audit-actions.log.1` at the same
 * size): refusals no longer push who did what out of the trail. `GET /api/audit` reads them all.
 */
export const AUDIT_LOG_MAX_BYTES = 8 * 1024 * 1024;

export class AuditLog {
  readonly file: string;
  readonly #maxBytes: number;
  #chain: Promise<void> = Promise.resolve();

  constructor(dataDir: string, options: { maxBytes?: number } = {}) {
    this.file = path.join(dataDir, 'audit.log');
    this.#maxBytes = options.maxBytes ?? AUDIT_LOG_MAX_BYTES;
  }

  /** The previous file, kept when `audit.log` reached its size. */
  get previousFile(): string {
    return `${this.file}.1`;
  }

  /**
   * The actions (entries other than refusals) of the previous files dropped at a rotation, in the
   * order written, older than every entry of `audit.log.1`; moved to `.1` at the same size.
   */
  get actionsFile(): string {
    return path.join(path.dirname(this.file), 'audit-actions.log');
  }

  /**
   * Appends one entry and fsyncs; entries are written in call order. A file that does not end
   * with a newline (an entry torn by a crash or a full disk) gets one first, so the new entry is
   * a line of its own rather than glued onto the torn one.
   */
  append(entry: AuditEntry): Promise<void> {
    const line = JSON.stringify(entry) + '\n';
    const run = this.#chain.then(async () => {
      await mkdir(path.dirname(this.file), { recursive: true });
      const current = await stat(this.file).catch(() => undefined);
      if (current && current.size + Buffer.byteLength(line) > this.#maxBytes) {
        // audit.log.1 is about to be replaced: its actions are kept first (a crash in between
        // keeps them twice rather than not at all). Refusals are what the size bound is for.
        await this.#keepActions(await readFile(this.previousFile, 'utf8').catch(() => ''));
        await rename(this.file, this.previousFile);
      }
      await appendLine(this.file, line);
    });
    this.#chain = run.catch(() => {});
    return run;
  }

  /**
   * Appends the lines of `text` that are entries other than refusals to the actions file, unless
   * it already ends with them: a crash (or a power cut, the rename not yet on disk) after they
   * were kept and before the rotation leaves audit.log.1 in place, and the next entry rotates
   * again; before, its actions were kept twice, for good.
   */
  async #keepActions(text: string): Promise<void> {
    const lines = actionLines(text);
    if (lines === '') return;
    const current = await stat(this.actionsFile).catch(() => undefined);
    if (current && (await endsWith(this.actionsFile, current.size, lines))) return;
    if (current && current.size + Buffer.byteLength(lines) > this.#maxBytes) await rename(this.actionsFile, `${this.actionsFile}.1`);
    await appendLine(this.actionsFile, lines);
  }

  /** The entries in the order written. */
  async read(): Promise<AuditEntry[]> {
    return (await this.readAll()).entries;
  }

  /**
   * The entries in the order written, and how many lines could not be read (torn by a crash or a
   * full disk, edited by hand): those are skipped, never the whole trail.
   */
  async readAll(): Promise<{ entries: AuditEntry[]; unreadableLines: number }> {
    // The oldest first: the actions kept from dropped files, the previous file, the current one.
    const texts = await Promise.all([`${this.actionsFile}.1`, this.actionsFile, this.previousFile, this.file].map((f) => readFile(f, 'utf8').catch(() => '')));
    // After a crash between keeping the actions of audit.log.1 and the rotation, they are in both:
    // read once, where they are still in the order written (#keepActions keeps them no more).
    const keptTwice = actionLines(texts[2]!);
    if (keptTwice !== '' && texts[1]!.endsWith(keptTwice)) texts[1] = texts[1]!.slice(0, texts[1]!.length - keptTwice.length);
    // A torn last line of the previous file stays a line of its own.
    const text = texts.join('\n');
    const entries: AuditEntry[] = [];
    let unreadableLines = 0;
    for (const l of text.split('\n')) {
      if (l.trim() === '') continue;
      try {
        const e = JSON.parse(l) as unknown;
        if (e && typeof e === 'object' && typeof (e as AuditEntry).action === 'string') entries.push(e as AuditEntry);
        else unreadableLines++;
      } catch {
        unreadableLines++;
      }
    }
    return { entries, unreadableLines };
  }
}

/** The lines of `text` that are entries other than refusals, each ending with a newline ('' for none). */
function actionLines(text: string): string {
  const kept = text.split('\n').filter((l) => {
    if (l.trim() === '') return false;
    try {
      const e = JSON.parse(l) as Partial<AuditEntry> | null;
      return !!e && typeof e === 'object' && typeof e.action === 'string' && e.outcome !== 'refused';
    } catch {
      return false;
    }
  });
  return kept.length === 0 ? '' : kept.join('\n') + '\n';
}

/** Whether `file` (of `size` bytes) ends with `text`; reads its tail only. */
async function endsWith(file: string, size: number, text: string): Promise<boolean> {
  const want = Buffer.from(text);
  if (size < want.length) return false;
  const fh = await open(file, 'r');
  try {
    const tail = Buffer.alloc(want.length);
    await fh.read(tail, 0, want.length, size - want.length);
    return tail.equals(want);
  } finally {
    await fh.close();
  }
}

/**
 * Appends `line` (one or more whole lines) to `file` and fsyncs. A file that does not end with a
 * newline (an entry torn by a crash or a full disk) gets one first, so the new entry is a line of
 * its own rather than glued onto the torn one.
 */
async function appendLine(file: string, line: string): Promise<void> {
  const fh = await open(file, 'a+', 0o600);
  try {
    const { size } = await fh.stat();
    let torn = false;
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      torn = last[0] !== 0x0a;
    }
    await fh.write(torn ? '\n' + line : line);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** What `GET /api/audit` may ask for: filters (all must match) and the place to continue from. */
export interface AuditQuery {
  /** Entries at most (the newest of those older than `before`). */
  limit: number;
  /** `next` of the previous page: `<position>.<at>` of the oldest entry it showed. */
  before?: string;
  action?: string;
  target?: string;
  outcome?: AuditEntry['outcome'];
  /** A name (whole: `alice`), or part of the actor: a token id (`token:0123456789ab`), an address (`@192.0.2.40`): actorMatches. */
  actor?: string;
}

export const AuditOutcomes = ['ok', 'refused', 'failed'] as const satisfies ReadonlyArray<AuditEntry['outcome']>;

/**
 * Whether an entry's actor is the one asked for: a name alone (`alice`, `anonymous`) is that name
 * whole (the actor's part before its last `@`: `al` is not `alice`); anything with `@` or `:` in it
 * or an IP address (`token:0123456789ab`, `@192.0.2.40`, `alice@192.0.2.40`, `192.0.2.40`) is a
 * part of the actor, as before.
 */
export function actorMatches(actor: string, asked: string): boolean {
  const at = actor.lastIndexOf('@');
  if ((at >= 0 ? actor.slice(0, at) : actor) === asked) return true;
  return (asked.includes('@') || asked.includes(':') || isIP(asked) !== 0) && actor.includes(asked);
}

/** A page of the trail, oldest first; `next` continues towards older entries (null at the oldest). */
export interface AuditPage {
  entries: AuditEntry[];
  /** Entries of the whole trail kept that match the filters. */
  total: number;
  next: string | null;
}

/** A `before` cursor: the entry's position in the trail (oldest kept = 0) and its time. */
export function parseAuditCursor(cursor: string): { position: number; at: string } | undefined {
  const m = /^(\d{1,9})\.(.+)$/.exec(cursor);
  return m ? { position: Number(m[1]), at: m[2]! } : undefined;
}

/**
 * One page of `entries` (the trail in the order written, AuditLog.readAll). The cursor names an
 * entry by its position and time: an entry written since only adds positions after it, and a
 * rotation (audit.log moved to audit.log.1, the previous .1 dropped) only moves positions down,
 * so the entry is looked for at its position or below. An entry rotated out (a refusal dropped)
 * leaves the older actions kept in audit-actions.log: the page goes on from the newest entry
 * written before it; when there is none, the page is empty and `next` null.
 */
export function auditPage(entries: readonly AuditEntry[], query: AuditQuery): AuditPage {
  const matches = (e: AuditEntry): boolean =>
    (query.action === undefined || e.action === query.action) &&
    (query.target === undefined || e.target === query.target) &&
    (query.outcome === undefined || e.outcome === query.outcome) &&
    (query.actor === undefined || (typeof e.actor === 'string' && actorMatches(e.actor, query.actor)));
  let end = entries.length;
  if (query.before !== undefined) {
    const cursor = parseAuditCursor(query.before);
    end = 0;
    if (cursor) {
      let found = false;
      for (let i = Math.min(cursor.position, entries.length - 1); i >= 0; i--) {
        if (entries[i]!.at === cursor.at) {
          end = i;
          found = true;
          break;
        }
      }
      // Rotated out (a refusal of the audit.log.1 dropped): the actions older than it are kept in
      // audit-actions.log. The page goes on from the newest entry at or below its position written
      // before it (entries are written in time order; a clock set back may skip a few).
      if (!found) {
        for (let i = Math.min(cursor.position, entries.length - 1); i >= 0; i--) {
          if (entries[i]!.at < cursor.at) {
            end = i + 1;
            break;
          }
        }
      }
    }
  }
  let total = 0;
  for (const e of entries) if (matches(e)) total++;
  const picked: number[] = [];
  let i = end - 1;
  for (; i >= 0 && picked.length < query.limit; i--) if (matches(entries[i]!)) picked.push(i);
  picked.reverse();
  let more = false;
  for (; i >= 0 && !more; i--) more = matches(entries[i]!);
  const oldest = picked[0];
  return {
    entries: picked.map((p) => entries[p]!),
    total,
    next: more && oldest !== undefined ? `${oldest}.${entries[oldest]!.at}` : null,
  };
}

