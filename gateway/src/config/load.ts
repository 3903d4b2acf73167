import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type YAMLError } from 'yaml';
import { GatewayError } from '../errors.ts';
import { defaultConfig } from './defaults.ts';
import type { AnalyzerConfig, ConfigIssue, GatewayConfig } from './types.ts';
import { type ListenerAt, validateConfig } from './validate.ts';

export interface LoadedConfig {
  config: GatewayConfig | undefined;
  issues: ConfigIssue[];
  /** The file read, or undefined when running on embedded defaults. */
  file: string | undefined;
  /** The analyzers as parsed, even when `config` is undefined (for their profile checks). */
  analyzers: AnalyzerConfig[];
  /** The resolved profiles directory (undefined: the package's). */
  profilesDir: string | undefined;
  /** `profilesDir` is set but is not a readable directory (an issue says so). */
  profilesDirInvalid: boolean;
  /** The listening addresses as parsed, for check to try (validate.ts ValidationResult.listeners). */
  listeners: ListenerAt[];
  /** gateway.dataDir as resolved, unless it has an error or the file could not be read. */
  dataDir: string | undefined;
}

const nothingParsed = (): Pick<LoadedConfig, 'analyzers' | 'profilesDir' | 'profilesDirInvalid' | 'listeners' | 'dataDir'> => ({ analyzers: [], profilesDir: undefined, profilesDirInvalid: false, listeners: [], dataDir: undefined });

/** A mapping key as a path shows it: a merge key (whose value is a symbol) as it is written, `<<`. */
function keyName(key: unknown): string {
  if (!isScalar(key)) return String(key);
  return typeof key.value === 'symbol' ? (key.source ?? '<<') : String(key.value);
}

/** The dotted key path (`gateway.id`, `hl7[0].listen.port`) of the key that starts at `offset`. */
function keyPathAt(doc: Document, offset: number): string | undefined {
  const walk = (node: unknown, at: string): string | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = keyName(pair.key);
        const p = at ? `${at}.${key}` : key;
        if (isScalar(pair.key) && pair.key.range?.[0] === offset) return p;
        const inner = walk(pair.value, p);
        if (inner) return inner;
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) {
        const inner = walk(node.items[i], `${at}[${i}]`);
        if (inner) return inner;
      }
    }
    return undefined;
  };
  return walk(doc.contents, '');
}

/**
 * Aliases (`*name`) with no anchor (`&name`) before them, each at its key's path and line. The
 * parser reports none of them: only turning the document into values fails, at the first one,
 * with neither key nor line.
 */
function unresolvedAliases(doc: Document, lines: LineCounter): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (offset: number): string => {
    const { line, col } = lines.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  const visit = (node: unknown, p: string): void => {
    if (isAlias(node)) {
      if (node.resolve(doc) === undefined) {
        issues.push({ severity: 'error', path: p || `line ${lines.linePos(node.range?.[0] ?? 0).line}`, message: `alias *${node.source} has no anchor &${node.source} before it (${at(node.range?.[0] ?? 0)}): define the anchor first, or spell the alias as the anchor is spelt` });
      }
    } else if (isMap(node)) {
      for (const pair of node.items) {
        const key = keyName(pair.key);
        visit(pair.key, p ? `${p}.${key}` : key);
        visit(pair.value, p ? `${p}.${key}` : key);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, `${p}[${i}]`));
    }
  };
  visit(doc.contents, '');
  return issues;
}

/**
 * Merge keys (`<<`) whose value is not a mapping, an alias of one, or a list of those, each at its
 * key's path and line: turning the document into values fails at the first, with neither.
 */
function badMerges(doc: Document, lines: LineCounter): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const mapping = (node: unknown): boolean => isMap(node) || (isAlias(node) && isMap(node.resolve(doc)));
  const visit = (node: unknown, p: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = keyName(pair.key);
        const at = p ? `${p}.${key}` : key;
        if (key === '<<' && !(mapping(pair.value) || (isSeq(pair.value) && pair.value.items.every(mapping)))) {
          const { line, col } = lines.linePos((pair.key as { range?: [number, number, number] } | null)?.range?.[0] ?? 0);
          issues.push({ severity: 'error', path: at, message: `a merge key takes a mapping (<<: *name, the alias of an anchored mapping, or a list of them) (line ${line}, column ${col})` });
        }
        visit(pair.value, at);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, `${p}[${i}]`));
    }
  };
  visit(doc.contents, '');
  return issues;
}

/**
 * Lines holding bytes that are not UTF-8 (a file saved as Windows-1252 or Latin-1), each at the
 * key whose value holds them. Read as UTF-8 they become U+FFFD: `WH/Stock/Größe` would be looked
 * for in Odoo as `WH/Stock/Gr��e`, a location no one made, while check said nothing.
 */
function notUtf8(bytes: Buffer, doc: Document): ConfigIssue[] {
  const strict = new TextDecoder('utf-8', { fatal: true });
  const issues: ConfigIssue[] = [];
  let offset = 0; // in the text as decoded (line ends are ASCII, so lines match)
  bytes
    .toString('latin1')
    .split('\n')
    .forEach((latin1Line, i) => {
      const raw = Buffer.from(latin1Line, 'latin1');
      const decoded = raw.toString('utf8');
      try {
        strict.decode(raw);
      } catch {
        const key = keyPathCovering(doc, offset + Math.max(0, decoded.indexOf('\uFFFD')));
        issues.push({ severity: 'error', path: key ?? `line ${i + 1}`, message: `line ${i + 1} holds bytes that are not UTF-8 (the file was saved in another encoding, such as Windows-1252 or Latin-1): save it as UTF-8` });
      }
      offset += decoded.length + 1;
    });
  return issues;
}

/** The dotted path of the deepest key whose value spans `offset`. */
function keyPathCovering(doc: Document, offset: number): string | undefined {
  const within = (node: unknown): boolean => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range !== undefined && range[0] <= offset && offset < range[2];
  };
  const walk = (node: unknown, at: string): string | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = keyName(pair.key);
        const p = at ? `${at}.${key}` : key;
        if (within(pair.key)) return p;
        if (within(pair.value)) return walk(pair.value, p) ?? p;
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) if (within(node.items[i])) return walk(node.items[i], `${at}[${i}]`) ?? `${at}[${i}]`;
    }
    return undefined;
  };
  return walk(doc.contents, '');
}

/**
 * Numbers written in a form read as other than their digits, each at its key: a leading zero
 * (`02575`: 2575 here, 1405 to a YAML 1.1 reader and here under `%YAML 1.1`), `0o`, `0x`, `0b`,
 * `_` or `:` (YAML 1.1's 1_000 and base 60). Before, check passed `port: 0o5017` (2575) and
 * `port: 0x0A1F` (2591) without a word (test/integration/review-s22-config-octal-port.test.ts).
 */
function nonDecimalNumbers(doc: Document, text: string, lines: LineCounter): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const visit = (node: unknown, at: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const p = at ? `${at}.${keyName(pair.key)}` : keyName(pair.key);
        const v = pair.value;
        if (isScalar(v) && typeof v.value === 'number' && v.range) {
          const src = text.slice(v.range[0], v.range[1]).trim();
          const digits = /^[-+]?0([0-9]+)$/.exec(src)?.[1];
          if (digits !== undefined || /^[-+]?0[oxb]/i.test(src) || /[_:]/.test(src)) {
            const n = v.value;
            let other = '';
            if (digits !== undefined) {
              const alt = n === Number.parseInt(digits, 10) ? (/^[0-7]+$/.test(digits) ? Number.parseInt(digits, 8) : undefined) : Number.parseInt(digits, 10);
              if (alt !== undefined && alt !== n) other = ` (${n === Number.parseInt(digits, 10) ? 'a YAML 1.1 reader, or this one under %YAML 1.1, reads it as' : 'the digits say'} ${alt})`;
            }
            issues.push({ severity: 'error', path: p, message: `written ${src} (line ${lines.linePos(v.range[0]).line}), which YAML reads as ${n}${other}: write the number in decimal digits, without a leading zero (${n} if that is meant)` });
          }
        }
        visit(v, p);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, `${at}[${i}]`));
    }
  };
  visit(doc.contents, '');
  return issues;
}

/** A YAML syntax error as an issue: the key's path when one is known, else the line. */
function yamlIssue(doc: Document, e: YAMLError): ConfigIssue {
  const line = e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : undefined;
  const first = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
  if (e.code === 'MULTIPLE_DOCS') {
    // The parser's own words ask a programmer to call another function.
    return { severity: 'error', path: line ? `line ${e.linePos?.[0].line}` : '', message: `a second document starts here (after \`---\`${line ? `, ${line}` : ''}): the configuration is one YAML document; keep one of them` };
  }
  if (e.code === 'DUPLICATE_KEY') {
    const key = keyPathAt(doc, e.pos[0]);
    if (key) return { severity: 'error', path: key, message: `given twice in one mapping${line ? ` (again at ${line})` : ''}: ${first}` };
  }
  return { severity: 'error', path: line ? `line ${e.linePos?.[0].line}` : '', message: line ? `${first} (${line})` : first };
}

/** A `key:value` written where a key and its value were meant (no space after the colon). */
interface KeyWithoutSpace {
  line: number;
  /** Where the key begins in the text. */
  offset: number;
  key: string;
  value: string;
}

/**
 * Keys written without the space after their colon (`profile:sysmex-xp`): YAML reads them as one
 * plain string, so the file fails with the parser's own words ("Implicit keys need to be on a single
 * line"), a wrong type ("gateway: must be a mapping (found string)") or an unknown key
 * ("profile:sysmex-xp"). Found at a line's start (after its indentation and a list's `- `) or after
 * `{`, `[` or `,` in a flow collection; a value's own colons (`https://…`, `host:1883`) are not
 * there. Only used to add a hint to an issue already found at the same key or line.
 */
function keysWithoutSpace(text: string): KeyWithoutSpace[] {
  const found: KeyWithoutSpace[] = [];
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').replace(/\s+$/, '');
    const block = /^(\s*(?:-\s+)?)([A-Za-z_][\w-]*):(\S.*)$/.exec(line);
    if (block) found.push({ line: i + 1, offset: start + block[1]!.length, key: block[2]!, value: block[3]! });
    for (const flow of line.matchAll(/([{,[]\s*)([A-Za-z_][\w-]*):([^\s,{}[\]][^,{}[\]]*?)\s*(?=[,}\]]|$)/g)) {
      found.push({ line: i + 1, offset: start + flow.index + flow[1]!.length, key: flow[2]!, value: flow[3]! });
    }
    start += raw.length + 1;
  });
  return found;
}

/**
 * Each key written without the space after its colon adds a hint to the first issue at its line (a
 * YAML error, `line N`) or at its key's path (`analyzers[0].profile:sysmex-xp: unknown key`,
 * `gateway: must be a mapping (found string)`): "a key needs a space after its colon: `profile:
 * sysmex-xp`". Before, those issues were all IT got (test/integration/commissioning-yaml-colon-audit.test.ts).
 */
function withColonHints(issues: ConfigIssue[], text: string, doc: Document): ConfigIssue[] {
  const hints = keysWithoutSpace(text);
  if (hints.length === 0) return issues;
  const out = issues.map((i) => ({ ...i }));
  const hinted = new Set<number>();
  for (const h of hints) {
    const at = keyPathCovering(doc, h.offset);
    const n = out.findIndex((i, k) => !hinted.has(k) && i.severity === 'error' && (i.path === `line ${h.line}` || (at !== undefined && i.path === at)));
    if (n < 0) continue;
    hinted.add(n);
    const issue = out[n]!;
    issue.message += `; a key needs a space after its colon: \`${h.key}: ${h.value}\`${issue.path === `line ${h.line}` ? '' : ` (line ${h.line})`}`;
  }
  return out;
}

/**
 * Read and validate a YAML configuration file. Without a file the embedded defaults apply
 * (listeners on 127.0.0.1, data under ./var). Nothing is applied when any error is found.
 */
export function loadConfig(file?: string): LoadedConfig {
  if (file === undefined) {
    const { config, issues, analyzers, profilesDir, profilesDirInvalid, listeners, dataDir } = validateConfig({}, process.cwd());
    return { config: config ?? defaultConfig(), issues, file, analyzers, profilesDir, profilesDirInvalid, listeners, dataDir };
  }
  const resolved = path.resolve(file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(resolved);
  } catch (err) {
    return { config: undefined, issues: [{ severity: 'error', path: '', message: `cannot read ${resolved}: ${(err as Error).message}` }], file: resolved, ...nothingParsed() };
  }
  const text = bytes.toString('utf8');
  const lines = new LineCounter();
  // merge: `<<: *name` takes an anchored mapping's keys (a YAML 1.1 type the 1.2 parser leaves off, which
  // made the idiom an "unknown key <<"); keys written beside it win, as in YAML 1.1.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, merge: true, lineCounter: lines });
  if (doc.errors.length > 0) {
    return { config: undefined, issues: withColonHints(doc.errors.map((e) => yamlIssue(doc, e)), text, doc), file: resolved, ...nothingParsed() };
  }
  // An empty file (a copy that failed half-way, every line commented out) read as no setting at all:
  // start ran on the embedded defaults, the sandbox instead of the site's Odoo and its store in a
  // `var` beside the file, while check said 0 errors (test/integration/review-s22-config-empty-file.test.ts).
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return { config: undefined, issues: [{ severity: 'error', path: '', message: `holds no setting (it is empty or all comments): write the configuration into it (README "Configuration reference"), or run without --config for the embedded defaults` }], file: resolved, ...nothingParsed() };
  }
  const aliases = unresolvedAliases(doc, lines);
  if (aliases.length > 0) return { config: undefined, issues: aliases, file: resolved, ...nothingParsed() };
  const merges = badMerges(doc, lines);
  if (merges.length > 0) return { config: undefined, issues: merges, file: resolved, ...nothingParsed() };
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    // Aliases that expand beyond the parser's limit (a document built to exhaust memory), or
    // anything else that cannot become values: an issue in check's report, not a bare line.
    return { config: undefined, issues: [{ severity: 'error', path: '', message: `cannot be read as a configuration: ${(err as Error).message}` }], file: resolved, ...nothingParsed() };
  }
  const validated = validateConfig(raw, path.dirname(resolved));
  const { analyzers, profilesDir, profilesDirInvalid, listeners, dataDir } = validated;
  const issues = withColonHints([...validated.issues, ...notUtf8(bytes, doc), ...nonDecimalNumbers(doc, text, lines)], text, doc);
  const config = issues.some((i) => i.severity === 'error') ? undefined : validated.config;
  return { config, issues, file: resolved, analyzers, profilesDir, profilesDirInvalid, listeners, dataDir };
}

/** Load or throw one GW_CONFIG_INVALID error listing every issue. */
export function loadConfigOrThrow(file?: string): { config: GatewayConfig; issues: ConfigIssue[] } {
  const loaded = loadConfig(file);
  if (!loaded.config) {
    throw new GatewayError('GW_CONFIG_INVALID', `configuration ${loaded.file ?? '(defaults)'} is invalid:\n${formatIssues(loaded.issues)}`, {
      details: { issues: loaded.issues },
    });
  }
  return { config: loaded.config, issues: loaded.issues };
}

export function formatIssues(issues: ConfigIssue[]): string {
  return issues.map((i) => `  ${i.severity === 'error' ? 'error  ' : 'warning'} ${i.path || '(file)'}: ${i.message}`).join('\n');
}
