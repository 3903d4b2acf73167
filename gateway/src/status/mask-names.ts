/**
 * Masks person names in raw HL7 v2 and ASTM E1394 text before it is shown on the status page.
 * Names are shown only when an administrator reveals them (an audited action).
 *
 * HL7 v2.5.1 §3.4.2: PID-5 patient name, PID-6 mother's maiden name, PID-9 patient alias;
 * §3.4.5 NK1-2 next of kin name; §3.4.9 MRG-7 prior patient name; §6.5.5 GT1-3 guarantor name and
 * GT1-6 guarantor spouse name; §6.5.6 IN1-16 name of insured (often the patient).
 * ASTM E1394-97 §8.1: P-record field 6 (patient name) and field 7 (mother's maiden name).
 */
export const MASK = '***';

const HL7_NAME_FIELDS: Readonly<Record<string, readonly number[]>> = {
  PID: [5, 6, 9],
  NK1: [2],
  MRG: [7],
  GT1: [3, 6],
  IN1: [16],
};

/** ASTM field numbers count the record type as field 1, so P.6 is index 5 after splitting. */
const ASTM_NAME_FIELDS: readonly number[] = [5, 6];

function maskFields(segment: string, separator: string, indexes: readonly number[]): string {
  const fields = segment.split(separator);
  let touched = false;
  for (const i of indexes) {
    if (fields[i] !== undefined && fields[i] !== '') {
      fields[i] = MASK;
      touched = true;
    }
  }
  return touched ? fields.join(separator) : segment;
}

/** Split keeping the separators so the text is rebuilt byte for byte except the masked fields. */
function splitLines(text: string): string[] {
  return text.split(/(\r\n|\r|\n)/);
}

export function maskHl7Names(text: string): string {
  // MSH-1 is the character right after "MSH" (HL7 v2.5.1 §2.5.4); default '|'.
  const mshAt = text.indexOf('MSH');
  const separator = mshAt >= 0 && text.length > mshAt + 3 ? text[mshAt + 3]! : '|';
  const names = new Set<string>();
  const masked = splitLines(text)
    .map((line) => {
      const id = line.slice(0, 3);
      const fields = HL7_NAME_FIELDS[id];
      if (!fields || line[3] !== separator) return line;
      const parts = line.split(separator);
      for (const i of fields) for (const c of (parts[i] ?? '').split(/[~^&]/)) if (c.trim().length >= 3) names.add(c.trim());
      return maskFields(line, separator, fields);
    })
    .join('');
  return maskEverywhere(masked, names);
}

/**
 * The same names copied elsewhere (a site's Z segment repeating PID, a note naming the patient)
 * are masked too: every whole-word occurrence of a name component of three or more characters,
 * whatever its capitalisation (HL7 senders write PID-5 in capitals, people write notes in mixed
 * case: `SMITHSON` in PID-5 masks `Smithson` in an NTE).
 */
function maskEverywhere(text: string, names: Set<string>): string {
  if (names.size === 0) return text;
  const escaped = [...names].sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?${}()|[\]\\]/g, '\\$&'));
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
  return text.replace(pattern, MASK);
}

export function maskAstmNames(text: string): string {
  // LIS2-A2 / E1394 §7.1: the H record's second character is the field delimiter.
  const h = /(?:^|[\r\n\x02])\d?H(.)/.exec(text);
  const separator = h?.[1] ?? '|';
  const names = new Set<string>();
  const masked = splitLines(text)
    .map((line) => {
      // A record may carry the E1381 frame number and STX before it (`\x021P|…`).
      const m = /^(\x02?\d?)P/.exec(line);
      if (!m || line[m[1]!.length + 1] !== separator) return line;
      const prefix = m[1]!;
      const parts = line.slice(prefix.length).split(separator);
      for (const i of ASTM_NAME_FIELDS) for (const c of (parts[i] ?? '').split(/[\\^&!~@`]/)) if (c.trim().length >= 3) names.add(c.trim());
      return prefix + maskFields(line.slice(prefix.length), separator, ASTM_NAME_FIELDS);
    })
    .join('');
  return maskEverywhere(masked, names);
}

export function maskNames(kind: 'hl7' | 'astm', text: string): string {
  return kind === 'hl7' ? maskHl7Names(text) : maskAstmNames(text);
}
