/**
 * `lab-gateway profiles show` of the HL7 analyzers, read as IT staff read it while setting up the
 * analyzer's LIS interface: where the tube barcode must be sent, how QC and calibration are told
 * apart, which OBX-3 component is the test, and how the gateway answers a query.
 */
import { describe, expect, it } from 'vitest';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { renderProfile } from '../../gateway/src/profiles/render.ts';

describe('profiles show: an HL7 analyzer', () => {
  /**
   * User saw (was): "host query  yes: specimen in Q.3 component 2, O.26 O, unknown specimen →
   * terminator-I" for the Mindray BS, ASTM record fields an HL7 analyzer never sends, and nothing
   * about the HL7 fields the gateway reads (the barcode in OBR-2, the result kind in MSH-16, the
   * code in OBX-3 component 1), so the analyzer was set up from the wrong sheet.
   * Promise: firmware-profiles/README.md, `profiles show NAME` is the profile as a readable sheet
   * for commissioning; the Mindray BS answers QRY^Q02 with QCK^Q02 + DSR^Q03 (README table).
   */
  it('the Mindray BS sheet names the HL7 fields read and the QRY^Q02 answer, no ASTM record fields', () => {
    const sheet = renderProfile(loadProfile('mindray-bs-series'));
    expect(sheet).not.toMatch(/Q\.3|O\.26|terminator-I/);
    expect(sheet).toMatch(/specimen id\s+OBR-2/);
    expect(sheet).toMatch(/run type\s+MSH-16: 0 patient, 1 calibration, 2 qc/);
    expect(sheet).toMatch(/test code\s+OBX-3 component 1/);
    expect(sheet).toMatch(/host query\s+yes: QRY\^Q02 → QCK\^Q02 \+ DSR\^Q03/);
  });

  /** The BC-5380 reads the barcode from OBR-3, QC from MSH-11, and answers its worklist inquiry with the run settings. */
  it('the BC-5380 sheet names OBR-3, MSH-11 and the worklist answer with its run settings', () => {
    const sheet = renderProfile(loadProfile('mindray-bc-5380'));
    expect(sheet).not.toMatch(/Q\.3|O\.26|terminator-I/);
    expect(sheet).toMatch(/specimen id\s+OBR-3/);
    expect(sheet).toMatch(/run type\s+MSH-11: P patient, Q qc/);
    expect(sheet).toMatch(/ORM\^O01 \(ORC-1 RF\) → ORR\^O02.*take mode A, blood mode W, test mode CBC/);
    expect(sheet).toMatch(/results\s+OBX-2 NM only/);
  });

  /** An ASTM analyzer's sheet is unchanged: its host query line names its record fields. */
  it('an ASTM analyzer keeps its record-field host query line', () => {
    expect(renderProfile(loadProfile('roche-cobas-e411'))).toMatch(/host query\s+yes: specimen in Q\.3 component/);
  });
});
