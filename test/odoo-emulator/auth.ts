/**
 * Credentials: passwords and API keys (odoo-api.md §A.5), the brute-force cooldown of
 * `res.users._assert_can_auth` (§A.3: 5 failures from one IP → every attempt refused for 60 s,
 * counted by `authenticate` and by `execute_kw`'s credential check alike), API-key expiry from 18 on.
 */
import { accessDenied, missingError, werkzeug } from './odoo-errors.ts';
import type { OdooVersion } from './types.ts';

export interface EmulatorApiKey {
  key: string;
  /** ISO date/time; honoured from Odoo 18 on (17 keys never expire). */
  expiresAt?: string | Date;
}

export interface EmulatorUser {
  login: string;
  password: string;
  apiKeys?: EmulatorApiKey[];
  /** 'admin' (default for the first user) or 'bot' (Inventory/Sales/Purchase user + Billing, odoo-api.md §D). */
  rights?: 'admin' | 'bot';
  name?: string;
}

export interface AuthUser extends EmulatorUser {
  uid: number;
}

/** `base.login_cooldown_after` / `base.login_cooldown_duration` defaults. */
export const LOGIN_COOLDOWN_AFTER = 5;
export const LOGIN_COOLDOWN_SECONDS = 60;

export class Authenticator {
  private readonly failures = new Map<string, { count: number; last: number }>();
  private users: AuthUser[] = [];
  private readonly version: OdooVersion;
  private readonly clock: () => Date;

  constructor(version: OdooVersion, clock: () => Date) {
    this.version = version;
    this.clock = clock;
  }

  /**
   * The `res.users` row of a uid as the database holds it now (undefined: deleted). The users'
   * credentials come from the options, but an administrator may archive or delete the row: an
   * archived user cannot sign in (res.users.check: `if not self.env.user.active: raise
   * AccessDenied()`; JSON-2's key check joins `u.active`), a deleted uid is a MissingError (§D).
   */
  private row: (uid: number) => { active?: unknown } | undefined = () => ({ active: true });

  setUsers(users: AuthUser[], row?: (uid: number) => { active?: unknown } | undefined): void {
    this.users = users;
    if (row) this.row = row;
  }

  private active(u: AuthUser): boolean {
    const r = this.row(u.uid);
    return r !== undefined && r.active !== false;
  }

  byUid(uid: number): AuthUser | undefined {
    return this.users.find((u) => u.uid === uid);
  }

  resetCooldowns(): void {
    this.failures.clear();
  }

  private keyValid(k: EmulatorApiKey): boolean {
    if (this.version < 18 || k.expiresAt === undefined) return true;
    const exp = k.expiresAt instanceof Date ? k.expiresAt : new Date(k.expiresAt);
    return exp.getTime() >= this.clock().getTime(); // SQL `expiration_date >= now()`
  }

  private matches(u: AuthUser, secret: string): boolean {
    if (secret === u.password && u.password !== '') return true;
    return (u.apiKeys ?? []).some((k) => k.key === secret && this.keyValid(k));
  }

  /** `_assert_can_auth` around one credential check. */
  private guarded(ip: string, check: () => boolean): void {
    const now = this.clock().getTime();
    const f = this.failures.get(ip);
    if (f && f.count >= LOGIN_COOLDOWN_AFTER && now - f.last < LOGIN_COOLDOWN_SECONDS * 1000) {
      throw accessDenied('Too many login failures, please wait a bit before trying again.');
    }
    if (!check()) {
      this.failures.set(ip, { count: (f?.count ?? 0) + 1, last: now });
      throw accessDenied();
    }
    this.failures.delete(ip);
  }

  /** `common.authenticate` / `common.login`: uid or false (AccessDenied is swallowed, §A.1). */
  authenticate(login: string, secret: string, ip: string): number | false {
    try {
      let uid = 0;
      this.guarded(ip, () => {
        const u = this.users.find((x) => x.login === login);
        if (!u || !this.active(u) || !this.matches(u, String(secret))) return false;
        uid = u.uid;
        return true;
      });
      return uid;
    } catch {
      return false;
    }
  }

  /** `res.users.check(db, uid, passwd)` before every execute_kw. */
  check(uid: unknown, secret: unknown, ip: string): AuthUser {
    const u = typeof uid === 'number' ? this.byUid(uid) : undefined;
    if (!u || this.row(u.uid) === undefined) {
      // odoo-api.md §D: a nonexistent uid → MissingError.
      throw missingError(`Record does not exist or has been deleted.\n(Record: res.users(${String(uid)},), User: ${String(uid)})`);
    }
    this.guarded(ip, () => typeof secret === 'string' && this.active(u) && this.matches(u, secret));
    return u;
  }

  /** JSON-2 `auth='bearer'`: API keys only (scope rpc), 401 otherwise. */
  bearer(header: string | undefined): AuthUser {
    const m = header ? /^bearer\s+(.+)$/i.exec(header) : null;
    if (!m || !m[1]) throw werkzeug(401, 'User not authenticated, use an API Key with a Bearer Authorization header.');
    const token = m[1].trim();
    const u = this.users.find((x) => (x.apiKeys ?? []).some((k) => k.key === token && this.keyValid(k)));
    if (!u || !this.active(u)) throw werkzeug(401, 'Invalid apikey');
    return u;
  }
}
