import type { Profile, TestMapping } from './types.ts';

/**
 * The profile's mapping of an analyzer test code, ASTM and HL7 analyzers alike: the key spelled
 * exactly as sent, else the one key that equals it ignoring case (`Chol` sent, `CHOL` mapped).
 * IT staff map the codes as a manual or a capture writes them; an analyzer or firmware writing
 * them in another case is the same test. Before, the ASTM path compared byte for byte: an
 * Afinion's `Chol` went on unmapped and the lipid cartridge its CHOL row draws was never
 * deducted. Two keys differing only in case (`Hb`, `HB`) are two tests to the profile: a code
 * matching neither exactly could be either, so it is not guessed — undefined, reported unmapped
 * (`profiles check` warns about such keys).
 */
export function findTestMapping(profile: Profile, code: string): TestMapping | undefined {
  const exact = profile.tests[code];
  if (exact) return exact;
  const lower = code.toLowerCase();
  let found: TestMapping | undefined;
  for (const [key, mapping] of Object.entries(profile.tests)) {
    if (key.toLowerCase() !== lower) continue;
    if (found) return undefined;
    found = mapping;
  }
  return found;
}
