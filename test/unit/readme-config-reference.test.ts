/**
 * The README's "Configuration reference" table against the validator (config/validate.ts) and the
 * defaults (config/defaults.ts): IT staff write a site's configuration from that table, so every
 * key the gateway accepts is in it, every key in it is accepted, and each default it names is the
 * one the gateway applies when the key is left out.
 *
 * What it caught: the table gave `hl7[].listen` defaults (127.0.0.1 / 2575) as if the key could be
 * left out, while `check` refuses an `hl7[]` entry without `listen`; and it did not say that a
 * configuration without `hl7` still listens for a LIS on 127.0.0.1:2575.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../gateway/src/config/validate.ts';
import { repo } from '../fixtures/cli.ts';

type Obj = Record<string, unknown>;

/** The table's rows: the key cell's paths (generic: `hl7[].ack`) and the default cell. */
function readmeRows(): Array<{ paths: string[]; defaults: string; cell: string }> {
  const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const start = readme.indexOf('| key | default | meaning |');
  const table = readme.slice(start, readme.indexOf('\n\n', start)).split('\n').slice(2);
  return table.map((line) => {
    const [, keyCell = '', defaultCell = ''] = line.split(' | ').length >= 3 ? ['', ...line.slice(2).split(' | ')] : [];
    const paths: string[] = [];
    let last = '';
    for (const [, token = ''] of keyCell.matchAll(/`([^`]+)`/g)) {
      const parent = last.slice(0, last.lastIndexOf('.'));
      const brace = /^(.*)\.\{([^}]+)\}$/.exec(token);
      const full = brace ? undefined : token.startsWith('.') ? parent + token : /^[a-zA-Z]+$/.test(token) && last.includes('.') && keyCell.includes('(+') ? `${parent}.${token}` : token;
      if (brace) for (const k of brace[2]!.split(',')) paths.push(`${brace[1]}.${k.trim()}`);
      else if (full) paths.push(full);
      last = full ?? last;
    }
    return { paths, defaults: defaultCell.trim(), cell: keyCell };
  });
}

/** Every key the validator accepts, as generic paths: read from its "unknown key (allowed: …)" answers. */
function acceptedKeys(): Set<string> {
  const probe = 'zzProbe';
  // Where to put the probe (a concrete path into a minimal config) and the generic path it stands for.
  const sections: Array<[string[], string]> = [
    [[], ''],
    [['gateway'], 'gateway'],
    [['hl7', '0'], 'hl7[]'],
    [['hl7', '0', 'listen'], 'hl7[].listen'],
    [['hl7', '0', 'tls'], 'hl7[].tls'],
    [['analyzers', '0'], 'analyzers[]'],
    [['analyzers', '0', 'serial'], 'analyzers[].serial'],
    [['analyzers', '0', 'tcp'], 'analyzers[].tcp'],
    [['odoo'], 'odoo'],
    [['odoo', 'mapping'], 'odoo.mapping'],
    [['relay'], 'relay'],
    [['relay', 'backoff'], 'relay.backoff'],
    [['store'], 'store'],
    [['mqtt'], 'mqtt'],
    [['mqtt', 'listen'], 'mqtt.listen'],
    [['mqtt', 'tls'], 'mqtt.tls'],
    [['status'], 'status'],
    [['status', 'listen'], 'status.listen'],
  ];
  const keys = new Set<string>();
  for (const [at, generic] of sections) {
    const raw: Obj = { hl7: [{ id: 'lis', listen: { port: 2575 } }], analyzers: [{ id: 'a1', serial: { path: '/dev/null' } }] };
    let node: Obj = raw;
    for (const k of at) node = (node[k] ??= {}) as Obj;
    node[probe] = 1;
    const issue = validateConfig(raw).issues.find((i) => i.path.endsWith(probe) && i.message.includes('allowed: '));
    expect(issue, `probe at ${generic || '(root)'}`).toBeDefined();
    for (const k of issue!.message.replace(/^.*allowed: /, '').replace(/\)$/, '').split(', ')) keys.add(generic ? `${generic}.${k}` : k);
  }
  return keys;
}

/** Keys whose own keys the table names by kind, not one by one. */
const OPEN_ENDED = ['relay.rules', 'relay.syncModes', 'analyzers[].overrides'];

describe('README configuration reference', () => {
  it('names every key the validator accepts, and accepts every key it names', () => {
    const accepted = acceptedKeys();
    const documented = [...new Set(readmeRows().flatMap((r) => r.paths.map((p) => p.replace(/\.<[^>]+>$/, ''))))];
    // A section is named through its keys (`gateway` through `gateway.id`), the host and port of an
    // address through the address (`mqtt.listen`: 127.0.0.1:1883).
    const covered = (key: string): boolean =>
      documented.some((d) => d === key || d.startsWith(`${key}.`) || d.startsWith(`${key}[].`)) || (/\.(host|port)$/.test(key) && documented.includes(key.replace(/\.(host|port)$/, '')));
    expect([...accepted].filter((k) => !covered(k)), 'keys the validator accepts that the README does not name').toEqual([]);
    expect(documented.filter((p) => !accepted.has(p)), 'keys the README names that the validator refuses').toEqual([]);
    // The open-ended keys are there too, each under its own name.
    for (const k of OPEN_ENDED) expect(accepted.has(k), k).toBe(true);
  });

  it('each default it gives as a value is the one applied when the key is left out', () => {
    const { config } = validateConfig({ hl7: [{ id: 'lis', listen: {} }], analyzers: [{ id: 'a1', serial: { path: '/dev/null' } }] });
    expect(config).toBeDefined();
    const valueAt = (generic: string): unknown => {
      let node: unknown = config;
      for (const k of generic.replace(/\[\]/g, '.0').split('.')) node = node === undefined || node === null ? undefined : (node as Obj)[k];
      return node;
    };
    const shown = (v: unknown): string => (typeof v === 'object' && v !== null && 'host' in v && 'port' in v ? `${String((v as Obj).host)}:${String((v as Obj).port)}` : String(v));
    const wrong: string[] = [];
    let compared = 0;
    for (const { paths, defaults } of readmeRows()) {
      const concrete = paths.filter((p) => !p.includes('<'));
      if (concrete.length === 0) continue;
      // One value per key: `a` / `b` for keys written `x` / `.y`, or `a, b, …` inside one literal.
      const parts = defaults.split(' / ').length === concrete.length ? defaults.split(' / ') : defaults.replace(/`/g, '').split(', ').map((v) => `\`${v}\``);
      if (parts.length !== concrete.length) continue;
      concrete.forEach((p, i) => {
        const literal = /^`([^`]+)`$/.exec(parts[i]!.trim())?.[1];
        if (literal === undefined || literal === '[]') return;
        const actual = valueAt(p);
        compared++;
        // A flag the validator leaves unset when it is not given is off.
        if (actual === undefined && literal === 'false') return;
        // A path is applied resolved (against the config file's folder; here the working directory).
        const expected = typeof actual === 'string' && path.isAbsolute(actual) && !path.isAbsolute(literal) ? path.resolve(literal) : literal;
        if (shown(actual) !== expected) wrong.push(`${p}: README ${literal}, applied ${shown(actual)}`);
      });
    }
    expect(compared).toBeGreaterThan(30);
    expect(wrong).toEqual([]);
  });

  it('a configuration without hl7 listens for a LIS on 127.0.0.1:2575, and an hl7 entry without listen is refused naming it', () => {
    const rows = readmeRows();
    expect(rows.find((r) => r.paths.includes('hl7'))?.defaults).toContain('127.0.0.1:2575');
    expect(validateConfig({}).config?.hl7).toEqual([expect.objectContaining({ id: 'lis', listen: { host: '127.0.0.1', port: 2575 } })]);
    expect(validateConfig({ hl7: [] }).config?.hl7).toEqual([]);
    const refused = validateConfig({ hl7: [{ id: 'lis' }] });
    expect(refused.config).toBeUndefined();
    expect(refused.issues.map((i) => i.path)).toContain('hl7[0].listen');
    expect(rows.find((r) => r.paths.includes('hl7[].listen.host'))?.cell).toBeDefined();
    const listenRow = readFileSync(path.join(repo, 'README.md'), 'utf8').split('\n').find((l) => l.startsWith('| `hl7[].listen.host`'));
    expect(listenRow).toMatch(/`listen` itself is required/);
  });
});

describe('README error codes', () => {
  it('lists every code the gateway can answer with (errors.ts), and no code it cannot', async () => {
    // GW_STORE_CORRUPT (a damaged message-log record: a dead letter's reason, an event's
    // bodyError) was missing, so an operator who met it found no word of it in the table.
    const { ErrorCodes } = await import('../../gateway/src/errors.ts');
    const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Error codes'), readme.indexOf('## Dependencies'));
    const listed = new Set(section.match(/`GW_[A-Z0-9_]+`/g)?.map((c) => c.replace(/`/g, '')));
    expect([...listed].sort()).toEqual(Object.keys(ErrorCodes).sort());
  });
});
