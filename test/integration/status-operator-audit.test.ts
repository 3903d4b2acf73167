/**
 * Operator actions and the message browser as IT and the quality manager use them, over real HTTP
 * against a real StatusServer on a real EventStore (gateway/src/status/README.md, DESIGN.md §5).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeText } from '../../gateway/src/hl7/charset.ts';
import { hl7Message, makeConfig, relayStandIn, requestJson, useStatusServer, validatedEvent, writeAdminToken } from '../fixtures/status/harness.ts';

const TOKEN = 'operator-audit-token-7f3a';
const auth = { Authorization: `Bearer ${TOKEN}` };

describe('the message browser shows a message in the character set it came in', () => {
  const rig = useStatusServer('status-operator-charset-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
    server: () => ({ relayControl: relayStandIn() }),
  });

  it('an ISO 8859-2 message (MSH-18 8859/2) reads in Polish, not as Latin-1 mojibake, masked and revealed, and its ACK too', async () => {
    // What IT saw: a Polish LIS's message (MSH-18 "8859/2", stored by intake with encoding
    // iso-8859-2) in the message browser read "£UKASZ^¯ANETA" and "¬le pobrana" — every Polish
    // letter outside Latin-1 replaced — because the API decoded every non-UTF-8 message as Latin-1.
    // The README promises the raw text of the message; the bytes were read with the wrong table.
    const text =
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260101120000||ORU^R01|PL-1|P|2.5.1|||||POL|8859/2\r' +
      'PID|1||MRN-PL||ŁUKASZ^ŻANETA||19800101|F\r' +
      'OBR|1|ACC-PL-1|SPEC-PL-1|GLU^Glukoza\r' +
      'OBX|1|NM|GLU^Glukoza||5.4|mmol/L|||||F\r' +
      'NTE|1||Źle pobrana próbka, powtórzyć\r';
    // The bytes the LIS sent (ISO 8859-2: Ł A3, Ż AF, Ź AC, ć E6), by the gateway's own encoder.
    const iso88592 = encodeText(text, 'iso-8859-2');
    expect(iso88592.subarray(iso88592.indexOf('NTE'))[7]).toBe(0xac);
    const ackText = 'MSH|^~\\&|GW|LAB|LIS|LAB|20260101120000||ACK|A-PL-1|P|2.5.1|||||POL|8859/2\rMSA|AA|PL-1\rNTE|1||Źle\r';
    const ack = encodeText(ackText, 'iso-8859-2');
    const message = { ...hl7Message(undefined, 'PL-1'), encoding: 'iso-8859-2', raw: iso88592, ack };
    const { messageId } = await rig.store.commit(message, [validatedEvent('ACC-PL-1')]);

    const masked = await requestJson(`${rig.url}/api/messages/${messageId}`);
    expect(masked.status).toBe(200);
    expect(masked.json.raw).toContain('NTE|1||Źle pobrana próbka, powtórzyć\r');
    expect(masked.json.raw).not.toContain('ŁUKASZ');
    expect(masked.json.ack).toContain('NTE|1||Źle\r');

    const revealed = await requestJson(`${rig.url}/api/messages/${messageId}?reveal=1&reason=${encodeURIComponent('patient identity check, ticket 4411')}`, { headers: auth });
    expect(revealed.status).toBe(200);
    expect(revealed.json.raw).toBe(text);
  });
});
