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
 * A frame sent again continues a record after the part of it that preceded its first copy, and
 * that part is repeated before it (shown nowhere, every character's place -1). A part of at most
 * this many characters is repeated as it is; a longer one (a long record whose frames are sent
 * again, one after another) by what masking reads of it, so the records grow with the message,
 * not with its square (before, a 206 KB record whose every frame came twice took 4 s to mask, and
 * one of 800 KB threw `RangeError: Invalid array length`).
 */
const REPEATED_AS_IS = 128;

/**
 * Everything repeated before frames sent again, at most this many characters per character of the
 * stored text: link bytes beyond it (thousands of tiny frames each sent again, whose repeated parts
 * outweigh them) are masked conservatively (maskConservatively) rather than unframed. Frames of
 * real instruments (up to 240 characters, a few of them sent again) stay far below it.
 */
const REPEATED_PER_CHAR = 2;

/**
 * The records of stored ASTM text, with where each of their characters is in that text. A message
 * that came over an E1381 link is stored as the link's bytes (ENQ, `STX FN text ETB|ETX C1 C2 CR
 * LF` per frame, EOT), and an instrument cuts its text into frames wherever the 240-character
 * limit falls, records included (the cobas e411 packs a batch into frames: `…^^^7/1/no` ETB, next
 * frame `t|9.61|…`): a P record may start in one frame and name the patient in the next. The
 * frames' texts are joined back into records here; a frame after ETX (or a torn one) starts a line
 * of its own, and a frame sent again (same frame number) continues what preceded its first copy.
 * Text without any STX (records-only links, a stored record text) is its own records.
 * `at[i]` is the index in `text` of `records[i]`, -1 for a character added (a line break between
 * frames, the part of a record repeated before a frame sent again).
 *
 * `context`: how much of a long field is repeated before a frame sent again (see `repeated`); a
 * name of up to `context` characters cut by that frame's start is still found. `undefined` when
 * what would be repeated exceeds REPEATED_PER_CHAR.
 */
function unframeAstm(text: string, context: number): { records: string; at: number[]; contextCut: boolean } | undefined {
  const at: number[] = [];
  if (!text.includes('\x02')) {
    for (let i = 0; i < text.length; i++) at.push(i);
    return { records: text, at, contextCut: false };
  }
  /** The records, one character an element: joined once at the end. */
  const chars: string[] = [];
  /** The field delimiter (LIS2-A2 §7.1), once the H record has been read; see `findSeparator`. */
  let separator: string | undefined;
  let searchedTo = 0;
  /** Where the current line starts in `chars`, how many delimiters it has so far, where its current field starts. */
  let lineStart = 0;
  let fieldIndex = 0;
  let fieldStart = 0;
  const push = (c: string, i: number): void => {
    chars.push(c);
    at.push(i);
    if (c === '\r' || c === '\n') {
      lineStart = fieldStart = chars.length;
      fieldIndex = 0;
    } else if (c === separator) {
      fieldIndex++;
      fieldStart = chars.length;
    }
  };
  const lineBreak = (): void => {
    const last = chars[chars.length - 1];
    if (last !== undefined && last !== '\r' && last !== '\n') push('\n', -1);
  };
  /**
   * The delimiter astmNameSpans will read (the first H record of the records; they only grow at
   * their end, so the first one found so far stays the first). Once found, fields are counted from
   * the current line's start.
   */
  const findSeparator = (): void => {
    const from = Math.max(0, searchedTo - 3);
    const h = (from === 0 ? /(?:^|[\r\n\x02])\d?H(.)/ : /[\r\n\x02]\d?H(.)/).exec(chars.slice(from).join(''));
    searchedTo = chars.length;
    if (!h) return;
    separator = h[1]!;
    [fieldIndex, fieldStart] = fieldsOf(lineStart, chars.length);
  };
  /** The field index and field start at `end` of the line starting at `start`, counted afresh. */
  const fieldsOf = (start: number, end: number): [number, number] => {
    let index = 0;
    let fieldAt = start;
    for (let k = start; k < end; k++) {
      if (chars[k] === separator) {
        index++;
        fieldAt = k + 1;
      }
    }
    return [index, fieldAt];
  };
  let contextCut = false;
  /**
   * What is repeated before a frame sent again: the part of its line before its first copy, as it
   * is when short; else what astmNameSpans reads of it — whether the line is a P record, which
   * field the frame continues, that field so far when it is a name field, else its last
   * `context` characters (and one before them: a name continuing into the frame is whole-word
   * matched as in the line itself). Fields are never joined across a delimiter, so nothing before
   * the current field matters.
   */
  const repeated = (start: number, end: number, known: { fieldIndex: number; fieldStart: number } | undefined): string => {
    if (end - start <= REPEATED_AS_IS) return chars.slice(start, end).join('');
    if (separator === undefined) findSeparator();
    if (separator === undefined) return chars.slice(start, end).join('');
    const [index, fieldAt] = known ? [known.fieldIndex, known.fieldStart] : fieldsOf(start, end);
    const head = chars.slice(start, start + 4).join('');
    const p = /^(\x02?\d?)P/.exec(head);
    const isP = p !== null && head[p[1]!.length + 1] === separator;
    const nameField = isP && ASTM_NAME_FIELDS.includes(index);
    let fieldFrom = fieldAt;
    if (!nameField && end - fieldAt > context + 1) {
      fieldFrom = end - context - 1;
      contextCut = true;
    }
    const field = chars.slice(fieldFrom, end).join('');
    // A line that is no P record starts with a character no record starts with.
    return isP ? `${p[1]!}P${separator.repeat(Math.min(index, ASTM_NAME_FIELDS[ASTM_NAME_FIELDS.length - 1]! + 1))}${field}` : `\x00${field}`;
  };
  const budget = REPEATED_PER_CHAR * text.length + REPEATED_AS_IS;
  let repeatedSoFar = 0;
  let inFrame = false;
  /** The last frame ended with ETB: the next frame's text continues its record. */
  let continues = false;
  /** The last frame's number, and where its text starts in `chars`, with its line and field then. */
  let lastFn: string | undefined;
  let lastStart = 0;
  let lastLineStart = 0;
  let lastFields: { fieldIndex: number; fieldStart: number } | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\x02') {
      const fn = /[0-7]/.test(text[i + 1] ?? '') ? text[i + 1] : undefined;
      if (fn !== undefined && fn === lastFn) {
        // The same frame number again: the last frame sent again (refused, or its ACK lost;
        // E1381 §6.5.2). Its text follows what preceded the last frame on that record, not the
        // last frame's text: that part of the record is repeated (shown nowhere) on a line of
        // its own, then this frame's text continues it.
        const before = repeated(lastLineStart, lastStart, lastFields);
        repeatedSoFar += before.length;
        if (repeatedSoFar > budget) return undefined;
        lineBreak();
        for (const b of before) push(b, -1);
      } else if (!continues) lineBreak();
      lastFn = fn;
      lastStart = chars.length;
      lastLineStart = lineStart;
      lastFields = separator === undefined ? undefined : { fieldIndex, fieldStart };
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
  return { records: chars.join(''), at, contextCut };
}
/**
 * The spans of `records` (start, end) that hold a person's name: P fields 6–7, and those names
 * elsewhere; and the length of the longest name.
 */
function astmNameSpans(records: string): { spans: Array<[number, number]>; longestName: number } {
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
  let longestName = 0;
  for (const n of names) longestName = Math.max(longestName, n.length);
  return { spans: merged, longestName };
}

/** How much of a long field is repeated before a frame sent again at first (unframeAstm). */
const FIRST_CONTEXT = 64;

export function maskAstmNames(text: string): string {
  let context = FIRST_CONTEXT;
  let found = unframeAstm(text, context);
  if (!found) return maskConservatively(text);
  let { spans, longestName } = astmNameSpans(found.records);
  if (found.contextCut && context < 2 * longestName) {
    // A name longer than the part of a long field repeated before a frame sent again: repeat
    // enough of it to find that name (twice its length: a match begun in a word the cut split
    // cannot overlap it), once; the names are the same whatever is repeated of fields that are
    // no name fields.
    context = 2 * longestName;
    found = unframeAstm(text, context);
    if (!found) return maskConservatively(text);
    ({ spans } = astmNameSpans(found.records));
  }
  const { at } = found;
  // Each span of the records, in the stored text: one run of characters, or one per frame when
  // a frame's end cuts it. Each run becomes ***; the frames' ends between them stay.
  const runs: Array<[number, number]> = [];
  for (const [start, end] of spans) {
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

/**
 * Every run of letters as ***: digits, delimiters and link bytes stay. What the raw view shows of
 * text it does not read for names (beyond MAX_MASKED_CHARS, link bytes beyond REPEATED_PER_CHAR):
 * no name can be in it unmasked, and results, dates and the message's shape can still be read.
 */
export function maskConservatively(text: string): string {
  return text.replace(/\p{L}+/gu, MASK);
}

/**
 * The raw view masks names in at most this many characters of a message, the rest conservatively
 * (maskConservatively). Messages are stored up to 16 MiB, and the view runs on the event loop that
 * intake's acknowledgements run on: finding the names of 16 MiB blocked it for seconds. Real
 * messages (a few KB; a batch of a few hundred patients) stay below it.
 */
export const MAX_MASKED_CHARS = 1024 * 1024;

/**
 * Where the raw view stops reading names: after the last line break within MAX_MASKED_CHARS (a
 * record or a frame whole on either side), else before the word the limit falls in.
 */
function maskedPart(text: string): number {
  if (text.length <= MAX_MASKED_CHARS) return text.length;
  const lineEnd = Math.max(text.lastIndexOf('\r', MAX_MASKED_CHARS - 1), text.lastIndexOf('\n', MAX_MASKED_CHARS - 1));
  if (lineEnd >= 0) return lineEnd + 1;
  let cut = MAX_MASKED_CHARS;
  while (cut > 0 && /[\p{L}\p{N}]/u.test(text[cut - 1]!)) cut--;
  return cut;
}

/** The raw view of a stored message: names masked, beyond MAX_MASKED_CHARS every word. */
export function maskNames(kind: 'hl7' | 'astm', text: string): string {
  const cut = maskedPart(text);
  const head = cut === text.length ? text : text.slice(0, cut);
  const masked = kind === 'hl7' ? maskHl7Names(head) : maskAstmNames(head);
  return cut === text.length ? masked : masked + maskConservatively(text.slice(cut));
}
