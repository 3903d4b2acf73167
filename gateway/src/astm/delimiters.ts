/**
 * LIS2-A2 delimiters. "The second character in the header record is the field delimiter, the
 * third character is the repeat delimiter, the fourth character is the component delimiter, and
 * the fifth is the escape character" (LIS2-A2 §6.2; §5.4). They apply from H to L and must be read
 * from every H record: analyzers differ (`|\^&`, GeneXpert `|@^\`, DxH `|\!~`, Erba `|`^&`).
 */
export interface AstmDelimiters {
  field: string;
  repeat: string;
  component: string;
  escape: string;
}

export const DEFAULT_DELIMITERS: Readonly<AstmDelimiters> = Object.freeze({ field: '|', repeat: '\\', component: '^', escape: '&' });

/** The H.2 text for a delimiter set: `\^&` for the defaults. */
export function delimiterDefinition(d: AstmDelimiters): string {
  return d.repeat + d.component + d.escape;
}

/** `|\^&` style string (field delimiter first), as used in profiles' `delimiters` override. */
export function formatDelimiters(d: AstmDelimiters): string {
  return d.field + delimiterDefinition(d);
}

export type DelimiterResult = { ok: true; delimiters: AstmDelimiters; quirk?: string } | { ok: false; reason: string };

const RECORD_SEPARATORS = new Set(['\r', '\n']);

function isAlphanumeric(ch: string): boolean {
  return /^[A-Za-z0-9]$/.test(ch);
}

/**
 * Validate four delimiter characters (LIS2-A2 §5.4: non-alphanumeric, distinct, never CR/LF).
 */
export function validateDelimiters(d: AstmDelimiters): string | undefined {
  const chars = [d.field, d.repeat, d.component, d.escape];
  const names = ['field', 'repeat', 'component', 'escape'];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch.length !== 1) return `${names[i]} delimiter must be exactly one character`;
    if (isAlphanumeric(ch)) return `${names[i]} delimiter ${JSON.stringify(ch)} is alphanumeric (LIS2-A2 §5.4 requires a non-alphanumeric character)`;
    if (RECORD_SEPARATORS.has(ch) || ch.charCodeAt(0) < 0x20) return `${names[i]} delimiter is a control character`;
  }
  if (new Set(chars).size !== 4) return `delimiters ${JSON.stringify(chars.join(''))} are not four distinct characters`;
  return undefined;
}

/** Parse a `|\^&` style delimiter string (profile override). */
export function parseDelimiterString(text: string): DelimiterResult {
  if (text.length !== 4) return { ok: false, reason: `delimiter string ${JSON.stringify(text)} must be 4 characters: field, repeat, component, escape` };
  const d: AstmDelimiters = { field: text[0]!, repeat: text[1]!, component: text[2]!, escape: text[3]! };
  const problem = validateDelimiters(d);
  return problem ? { ok: false, reason: problem } : { ok: true, delimiters: d };
}

/**
 * Read the delimiters from the first record of a message, which must be an H record (LIS2-A2
 * §6.2). Tolerates the doubled repeat delimiter `H|\\^&` that Horiba Yumizen H550 and the mini
 * VIDAS mock send (go-astm handles it the same way): four characters whose first two are equal.
 */
export function delimitersFromHeader(headerRecord: string): DelimiterResult {
  if (headerRecord[0] !== 'H') return { ok: false, reason: 'the first record is not an H (message header) record' };
  const field = headerRecord[1];
  if (field === undefined) return { ok: false, reason: 'the H record is too short to declare delimiters (LIS2-A2 §6.2)' };
  const end = headerRecord.indexOf(field, 2);
  let definition = end === -1 ? headerRecord.slice(2) : headerRecord.slice(2, end);
  let quirk: string | undefined;
  if (definition.length === 4 && definition[0] === definition[1]) {
    definition = definition.slice(1);
    quirk = 'doubled repeat delimiter in H.2';
  }
  if (definition.length !== 3) {
    return { ok: false, reason: `H.2 ${JSON.stringify(definition)} must declare exactly three delimiters (repeat, component, escape) after the field delimiter (LIS2-A2 §6.2)` };
  }
  const d: AstmDelimiters = { field, repeat: definition[0]!, component: definition[1]!, escape: definition[2]! };
  const problem = validateDelimiters(d);
  if (problem) return { ok: false, reason: `H.2: ${problem}` };
  return quirk ? { ok: true, delimiters: d, quirk } : { ok: true, delimiters: d };
}
