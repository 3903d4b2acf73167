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
  const pattern = namePattern(names);
  return pattern ? text.replace(pattern, MASK) : text;
}

/** Whole-word occurrences of any of `names`, whatever their case; undefined for no names. */
function namePattern(names: Set<string>): RegExp | undefined {
  if (names.size === 0) return undefined;
  const escaped = [...names].sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
}

/**
 * The records of stored ASTM text, with where each of their characters is in that text. A message
 * that came over an E1381 link is stored as the link's bytes (ENQ, `STX FN text ETB|ETX C1 C2 CR
 * LF` per frame, EOT), and an instrument cuts its text into frames wherever the 240-character
 * limit falls, records included (the cobas e411 packs a batch into frames: `…^^^7/1/no` ETB, next
 * frame `t|9.61|…`): a P record may start in one frame and name the patient in the next. The
 * frames' texts are joined back into records here; a frame after ETX (or a torn one) starts a line
 * of its own, and a frame sent again (same frame number) continues what preceded its first copy.
 * Text without any STX (records-only links, a stored record text) is its own records.
 * `at[i]` is the index in `text` of `records[i]`, -1 for a line break added between frames.
 */
function unframeAstm(text: string): { records: string; at: number[] } {
  const at: number[] = [];
  if (!text.includes('\x02')) {
    for (let i = 0; i < text.length; i++) at.push(i);
    return { records: text, at };
  }
  let records = '';
  const push = (c: string, i: number): void => {
    records += c;
    at.push(i);
  };
  const lineBreak = (): void => {
    if (records !== '' && !/[\r\n]$/.test(records)) push('\n', -1);
  };
  let inFrame = false;
  /** The last frame ended with ETB: the next frame's text continues its record. */
  let continues = false;
  /** The last frame's number, and where its text starts in `records`. */
  let lastFn: string | undefined;
  let lastStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\x02') {
      const fn = /[0-7]/.test(text[i + 1] ?? '') ? text[i + 1] : undefined;
      if (fn !== undefined && fn === lastFn) {
        // The same frame number again: the last frame sent again (refused, or its ACK lost;
        // E1381 §6.5.2). Its text follows what preceded the last frame on that record, not the
        // last frame's text: that part of the record is repeated (shown nowhere) on a line of
        // its own, then this frame's text continues it.
        const lineStart = Math.max(records.lastIndexOf('\r', lastStart - 1), records.lastIndexOf('\n', lastStart - 1)) + 1;
        const before = records.slice(lineStart, lastStart);
        lineBreak();
        for (const b of before) push(b, -1);
      } else if (!continues) lineBreak();
      lastFn = fn;
      lastStart = records.length;
      inFrame = true;
      continues = false;
      if (fn !== undefined) i++;
      continue;
    }
    if (inFrame) {
      if (c === '\x17' || c === '\x03') {
        inFrame = false;
        continues = c === '\x17';
        // The frame's trailer: checksum (two hex digits), CR, LF.
        let j = i + 1;
        while (j < i + 3 && /[0-9A-Fa-f]/.test(text[j] ?? '')) j++;
        if (text[j] === '\r') j++;
        if (text[j] === '\n') j++;
        i = j - 1;
        continue;
      }
      if (c === '\x04' || c === '\x05') {
        // A frame cut off (EOT, a new ENQ): what follows is not its continuation.
        inFrame = false;
        continues = false;
        continue;
      }
      push(c, i);
      continue;
    }
    // Outside frames: link control characters are no text; any other text is kept, on lines of
    // its own.
    if (c < ' ' && c !== '\r' && c !== '\n') continue;
    if (continues) {
      continues = false;
      lineBreak();
    }
    push(c, i);
  }
  return { records, at };
}

/** The spans of `records` (start, end) that hold a person's name: P fields 6–7, and those names elsewhere. */
function astmNameSpans(records: string): Array<[number, number]> {
  // LIS2-A2 / E1394 §7.1: the H record's second character is the field delimiter.
  const h = /(?:^|[\r\n\x02])\d?H(.)/.exec(records);
  const separator = h?.[1] ?? '|';
  const names = new Set<string>();
  const spans: Array<[number, number]> = [];
  let offset = 0;
  for (const line of splitLines(records)) {
    // A record may carry the E1381 frame number and STX before it (`\x021P|…`) in text stored
    // without its frames' ends.
    const m = /^(\x02?\d?)P/.exec(line);
    if (m && line[m[1]!.length + 1] === separator) {
      const parts = line.slice(m[1]!.length).split(separator);
      let fieldStart = offset + m[1]!.length;
      parts.forEach((field, i) => {
        if (ASTM_NAME_FIELDS.includes(i) && field !== '') {
          spans.push([fieldStart, fieldStart + field.length]);
          for (const c of field.split(/[\\^&!~@`]/)) if (c.trim().length >= 3) names.add(c.trim());
        }
        fieldStart += field.length + separator.length;
      });
    }
    offset += line.length;
  }
  const pattern = namePattern(names);
  if (pattern) for (const m of records.matchAll(pattern)) spans.push([m.index, m.index + m[0].length]);
  // Overlapping spans (a name inside its own field) are one.
  spans.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  return merged;
}

export function maskAstmNames(text: string): string {
  const { records, at } = unframeAstm(text);
  // Each span of the records, in the stored text: one run of characters, or one per frame when
  // a frame's end cuts it. Each run becomes ***; the frames' ends between them stay.
  const runs: Array<[number, number]> = [];
  for (const [start, end] of astmNameSpans(records)) {
    let run: [number, number] | undefined;
    for (let k = start; k < end; k++) {
      const i = at[k]!;
      if (i < 0) continue;
      if (run && i === run[1]) run[1] = i + 1;
      else runs.push((run = [i, i + 1]));
    }
  }
  let out = '';
  let from = 0;
  for (const [s, e] of runs) {
    out += text.slice(from, s) + MASK;
    from = e;
  }
  return out + text.slice(from);
}

export function maskNames(kind: 'hl7' | 'astm', text: string): string {
  return kind === 'hl7' ? maskHl7Names(text) : maskAstmNames(text);
}
