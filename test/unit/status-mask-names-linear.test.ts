import { describe, expect, it } from 'vitest';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { MASK, MAX_MASKED_CHARS, maskAstmNames, maskConservatively, maskHl7Names, maskNames } from '../../gateway/src/status/mask-names.ts';

/** E1381 frames of `pieces` (frame numbers 1, 2, … 7, 0, …), the last one ending with ETX. */
function frames(pieces: string[]): string[] {
  return pieces.map((p, i) => buildFrame((i + 1) % 8, Buffer.from(p, 'latin1'), i === pieces.length - 1).toString('latin1'));
}

/** `records` cut into frames of 240 characters, as an instrument cuts them. */
function cut240(records: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < records.length; i += 240) pieces.push(records.slice(i, i + 240));
  return pieces;
}

/**
 * The raw view of the same frames each sent twice, as a reference: the frames sent once, masked,
 * each masked frame shown twice. A frame sent again continues what preceded its first copy, so
 * both copies read the same.
 */
function maskedTwiceReference(sent: string[]): string {
  return maskAstmNames(sent.join(''))
    .split(/(?=\x02)/)
    .flatMap((f) => [f, f])
    .join('');
}

const HEADER = 'H|\\^&|||cobas-e411^1|||||host|RSUPL^BATCH|P|1\r';

describe('masking a message whose frames were sent again takes work in proportion to its size', () => {
  // What the user saw: the raw view (GET /api/messages/:id) of an ASTM message from a noisy serial
  // line, where a long record's frames were refused and sent again one after another, answered 500
  // (`RangeError: Invalid array length` at ~800 KB) after blocking the gateway's event loop — the
  // one intake's ACKs run on — for a minute (4 s at 206 KB). Each frame sent again copied the
  // whole record so far, so the work grew with the square of the record.
  // Promise broken: status/README.md "Names" (the raw view shows the message, names masked) and
  // DESIGN.md §2 (bad input never takes the gateway down). The old code throws at this size; the
  // work is counted by that limit, not by a clock.
  it('masks a 900 KB comment record whose every frame came twice, as the same frames sent once', () => {
    let comment = 'C|1|I|';
    while (comment.length < 460_000) comment += 'Joanna SMITHSON phoned, sample 7 is ok. ';
    const sent = frames([HEADER + 'P|1||PAT-1||SMITHSON^JOANNA||19800412|F\r', ...cut240(comment + '|G\r'), 'L|1|N\r']);
    const twice = sent.flatMap((f) => [f, f]).join('');
    expect(twice.length).toBeGreaterThan(900_000);

    const masked = maskAstmNames(twice);
    expect(masked).toBe(maskedTwiceReference(sent));
    expect(masked).not.toMatch(/SMITHSON|Joanna/i);
    expect(masked).toContain(`${MASK} ${MASK} phoned, sample 7 is ok.`);
  });

  // As above, for a P record whose long fields (a site's long patient identifier list) come
  // before the name: each frame sent again must still read the fields before it to find the name
  // a frame's start cuts (`…|SMI` ETB, sent again, `THSON^JOANNA||…`).
  it('masks the name of a 900 KB P record whose every frame came twice, the name cut by a frame', () => {
    const ids = Array.from({ length: 57_000 }, (_, i) => `ID${i}`).join('~');
    const start = `P|1||PAT-1|${ids}|`;
    const padding = 'X'.repeat(240 - ((HEADER.length + start.length + 3) % 240));
    const record = `${start.replace('||PAT-1|', `||PAT-1${padding}|`)}SMITHSON^JOANNA||19800412|F\r`;
    const pieces = cut240(HEADER + record + 'L|1|N\r');
    // The cut falls inside the surname.
    expect(pieces.some((p) => p.endsWith('|SMI'))).toBe(true);
    const sent = frames(pieces);
    const twice = sent.flatMap((f) => [f, f]).join('');
    expect(twice.length).toBeGreaterThan(900_000);

    const masked = maskAstmNames(twice);
    expect(masked).toBe(maskedTwiceReference(sent));
    for (const part of ['SMI', 'THSON', 'JOANNA']) expect(masked, part).not.toContain(part);
    expect(masked).toContain('19800412');
  });

  // What the user would see: thousands of frames of a character or two, each sent three times,
  // repeat more than the message holds; such link bytes are masked conservatively (every word)
  // rather than unframed, and still show no name.
  it('masks link bytes whose frames sent again outweigh them conservatively, names included', () => {
    const records = HEADER + 'P|1||PAT-1||SMITHSON^JOANNA||19800412|F\r' + 'C|1|I|' + 'note '.repeat(200) + '|G\rL|1|N\r';
    const sent = frames(records.match(/[\s\S]{1,2}/g)!);
    const text = sent.flatMap((f) => [f, f, f]).join('');
    const masked = maskAstmNames(text);
    expect(masked).toBe(maskConservatively(text));
    expect(masked).not.toMatch(/SMI|JOA|note/);
  });
});

describe('the raw view reads names in at most MAX_MASKED_CHARS of a message', () => {
  // What the user saw: the raw view of a 16 MiB message (the size the store keeps) held the event
  // loop that intake's ACKs run on for about 4 s while names were looked for in all of it.
  // Promise (status/README.md "Names"): names are looked for in the first MAX_MASKED_CHARS; every
  // word beyond is shown as ***, so no name is shown there either, and numbers still are.
  it('masks names exactly up to the bound and every word beyond it', () => {
    let text = 'MSH|^~\\&|LIS|LAB|GW|LAB|20260101120000||ORU^R01|CTRL-1|P|2.5.1\r';
    let patient = 0;
    while (text.length < MAX_MASKED_CHARS + 200_000) {
      patient++;
      text += `PID|1||MRN${patient}||PATIENT${patient}^ANNA||19800101|F\rOBX|1|NM|GLU||5.${patient % 10}|mmol/l|||N|||F\r`;
    }
    const masked = maskNames('hl7', text);

    const cut = text.lastIndexOf('\r', MAX_MASKED_CHARS - 1) + 1;
    expect(masked.startsWith(maskHl7Names(text.slice(0, cut)))).toBe(true);
    const beyond = masked.slice(maskHl7Names(text.slice(0, cut)).length);
    expect(beyond.length).toBeGreaterThan(100_000);
    expect(beyond).not.toMatch(/\p{L}/u);
    expect(beyond).toContain(`|5.${patient % 10}|`);
    expect(masked).not.toMatch(/PATIENT|ANNA/);
  });

  it('masks an ASTM message beyond the bound the same way, its frames kept', () => {
    let records = HEADER;
    let patient = 0;
    while (records.length < MAX_MASKED_CHARS + 200_000) {
      patient++;
      records += `P|${patient}||PAT-${patient}||PATIENT${patient}^ANNA||19800412|F\rR|1|^^^GLU|5.2|mmol/l||N||F\r`;
    }
    const text = frames(cut240(records + 'L|1|N\r')).join('');
    const masked = maskNames('astm', text);
    expect(masked).not.toMatch(/PATIENT|ANNA/);
    expect(masked).toContain('mmol/l');
    expect(masked.slice(-100_000)).not.toMatch(/mmol/);
    expect(masked.split('\x02').length).toBe(text.split('\x02').length);
  });
});
