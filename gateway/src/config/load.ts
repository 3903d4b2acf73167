import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { GatewayError } from '../errors.ts';
import { defaultConfig } from './defaults.ts';
import type { ConfigIssue, GatewayConfig } from './types.ts';
import { validateConfig } from './validate.ts';

export interface LoadedConfig {
  config: GatewayConfig | undefined;
  issues: ConfigIssue[];
  /** The file read, or undefined when running on embedded defaults. */
  file: string | undefined;
}

/**
 * Read and validate a YAML configuration file. Without a file the embedded defaults apply
 * (listeners on 127.0.0.1, data under ./var). Nothing is applied when any error is found.
 */
export function loadConfig(file?: string): LoadedConfig {
  if (file === undefined) {
    const { config, issues } = validateConfig({}, process.cwd());
    return { config: config ?? defaultConfig(), issues, file };
  }
  const resolved = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(resolved, 'utf8');
  } catch (err) {
    return { config: undefined, issues: [{ severity: 'error', path: '', message: `cannot read ${resolved}: ${(err as Error).message}` }], file: resolved };
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      config: undefined,
      issues: doc.errors.map((e) => ({ severity: 'error' as const, path: e.linePos ? `line ${e.linePos[0].line}` : '', message: e.message.split('\n')[0] ?? e.message })),
      file: resolved,
    };
  }
  const { config, issues } = validateConfig(doc.toJS(), path.dirname(resolved));
  return { config, issues, file: resolved };
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
