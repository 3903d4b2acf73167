import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Document, isMap, isScalar, isSeq, parseDocument, type YAMLError } from 'yaml';
import { GatewayError } from '../errors.ts';
import { defaultConfig } from './defaults.ts';
import type { AnalyzerConfig, ConfigIssue, GatewayConfig } from './types.ts';
import { validateConfig } from './validate.ts';

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
}

const nothingParsed = (): Pick<LoadedConfig, 'analyzers' | 'profilesDir' | 'profilesDirInvalid'> => ({ analyzers: [], profilesDir: undefined, profilesDirInvalid: false });

/** The dotted key path (`gateway.id`, `hl7[0].listen.port`) of the key that starts at `offset`. */
function keyPathAt(doc: Document, offset: number): string | undefined {
  const walk = (node: unknown, at: string): string | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
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

/** A YAML syntax error as an issue: the key's path when one is known, else the line. */
function yamlIssue(doc: Document, e: YAMLError): ConfigIssue {
  const line = e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : undefined;
  const first = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
  if (e.code === 'DUPLICATE_KEY') {
    const key = keyPathAt(doc, e.pos[0]);
    if (key) return { severity: 'error', path: key, message: `given twice in one mapping${line ? ` (again at ${line})` : ''}: ${first}` };
  }
  return { severity: 'error', path: line ? `line ${e.linePos?.[0].line}` : '', message: line ? `${first} (${line})` : first };
}

/**
 * Read and validate a YAML configuration file. Without a file the embedded defaults apply
 * (listeners on 127.0.0.1, data under ./var). Nothing is applied when any error is found.
 */
export function loadConfig(file?: string): LoadedConfig {
  if (file === undefined) {
    const { config, issues, analyzers, profilesDir, profilesDirInvalid } = validateConfig({}, process.cwd());
    return { config: config ?? defaultConfig(), issues, file, analyzers, profilesDir, profilesDirInvalid };
  }
  const resolved = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(resolved, 'utf8');
  } catch (err) {
    return { config: undefined, issues: [{ severity: 'error', path: '', message: `cannot read ${resolved}: ${(err as Error).message}` }], file: resolved, ...nothingParsed() };
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { config: undefined, issues: doc.errors.map((e) => yamlIssue(doc, e)), file: resolved, ...nothingParsed() };
  }
  const { config, issues, analyzers, profilesDir, profilesDirInvalid } = validateConfig(doc.toJS(), path.dirname(resolved));
  return { config, issues, file: resolved, analyzers, profilesDir, profilesDirInvalid };
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
