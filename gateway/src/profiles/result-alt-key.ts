import { hash } from 'node:crypto';

/**
 * One result of a message as the `alt:` key rule sees it (ASTM normalizer and HL7 analyzer
 * normalizer alike).
 */
export interface SameTimeResult {
  /**
   * What its key is made of before the `alt:` part: specimen, analyzer code and time key. Results
   * of one message with the same slot would share an idempotency key.
   */
  slot: string;
  value: string;
  /** The units the result is reported in (as sent, else the profile's). */
  units: string;
  flags: string;
  /** The units the profile maps for the test (`tests[code].units`), if it names any; compared trimmed, in any case. */
  mappedUnits: string | undefined;
}

const sameUnits = (a: string, b: string): boolean => a.trim().toLowerCase() === b.trim().toLowerCase();
const contentOf = (r: SameTimeResult): string => [r.value, r.units, r.flags].join('\u0000');

/**
 * The `alt:` key part of each result of one message (undefined: the bare key), chosen by content
 * so that a resend listing the results in another order gives each the key it had.
 *
 * One measurement reported twice under one code and time (an Afinion 2 set to dual units sends
 * HbA1c 5.1 % and 32 mmol/mol with one completion time; an HL7 analyzer two OBX of one test with
 * one OBX-14) would have one key, and the store skipped the second as a resend after the analyzer
 * had its ACK. Of the results of one slot, the one in the units the profile maps for the test
 * keeps the bare key; when none or several different ones are in those units, the first does (as
 * before the rule looked at units, so the keys of messages stored then stay). Every other result
 * gets `alt:` and a hash of its value, units and flags — not of its status: a preliminary and its
 * final share one `alt:`, the version part tells them apart. A result repeated verbatim (Bio-Rad's
 * variant capture) is the same fact and shares the key of its twin.
 */
export function altKeyParts(results: readonly SameTimeResult[]): Array<string | undefined> {
  const bySlot = new Map<string, SameTimeResult[]>();
  for (const r of results) {
    const group = bySlot.get(r.slot);
    if (group) group.push(r);
    else bySlot.set(r.slot, [r]);
  }
  /** Slot → the content that keeps the bare key. */
  const bare = new Map<string, string>();
  for (const [slot, group] of bySlot) {
    const inMappedUnits = new Set(group.filter((r) => r.mappedUnits !== undefined && r.mappedUnits !== '' && sameUnits(r.units, r.mappedUnits)).map(contentOf));
    bare.set(slot, inMappedUnits.size === 1 ? [...inMappedUnits][0]! : contentOf(group[0]!));
  }
  return results.map((r) => {
    const content = contentOf(r);
    return content === bare.get(r.slot) ? undefined : `alt:${hash('sha256', content, 'hex').slice(0, 16)}`;
  });
}
