import { createHash } from 'node:crypto';

/**
 * A profile's revision fingerprint: `sha256:` + the SHA-256 of its canonical JSON (keys sorted at
 * every level, no whitespace) without the `revision` and `$schema` keys. `lab-gateway check` and
 * `profiles check` compare it with the stored `revision`, so an edit that was not re-fingerprinted
 * (and therefore not re-verified) is caught before the gateway starts.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export function profileFingerprint(profile: unknown): string {
  const copy: Record<string, unknown> = { ...(profile as Record<string, unknown>) };
  delete copy.revision;
  delete copy.$schema;
  return `sha256:${createHash('sha256').update(canonicalJson(copy)).digest('hex')}`;
}
