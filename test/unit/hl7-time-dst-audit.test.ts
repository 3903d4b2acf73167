/**
 * A time without an offset in a message whose MSH-7 has one, read by a gateway that runs in the
 * LIS's own zone (the appliance's usual set-up), across a daylight-saving change. Borrowing MSH-7's
 * offset (d2453f2, for a gateway in another zone than the LIS: a UTC container) read an ORC-9
 * written before the change, in a message sent after it, an hour off. When the gateway's zone
 * gives MSH-7's instant the offset MSH-7 carries, the gateway is in the LIS's zone and reads such a
 * time in it, with the offset that zone had at that time; otherwise MSH-7's offset is borrowed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';

const savedTz = process.env.TZ;
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

function order(msh7: string, orc9: string): DraftEvent {
  const text = [`MSH|^~\\&|LIS|LAB|GW|LAB|${msh7}||ORM^O01^ORM_O01|D1|P|2.5.1`, 'PID|1||MRN-1', `ORC|NW|ACC-D1|||||||${orc9}`, 'OBR|1|ACC-D1||GLU^Glucose^LN'].join('\r');
  const raw = Buffer.from(text, 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text);
  const [event] = normalizeLis({ message: r.message, endpoint: 'lis', receivedAt: '2026-11-01T15:00:00.000Z', notes: [] });
  return event!;
}

describe('a time without offset across a daylight-saving change', () => {
  describe('the gateway in the LIS zone (America/New_York)', () => {
    beforeAll(() => void (process.env.TZ = 'America/New_York'));
    it('an ORC-9 written on summer time, in a message sent on winter time: read with its own offset (-0400)', () => {
      // 31 Oct 23:50 EDT (-0400) is 1 Nov 03:50 UTC; the message was sent 1 Nov 10:00 EST (-0500).
      const e = order('20261101100000-0500', '20261031235000');
      expect(e.occurredAt).toBe('2026-11-01T03:50:00.000Z');
      expect(e.data).toMatchObject({ timeWritten: '20261031235000', timeZone: '-0400' });
    });
    it('an ORC-9 on the same side of the change: unchanged (-0500)', () => {
      const e = order('20261101100000-0500', '20261101093000');
      expect(e.occurredAt).toBe('2026-11-01T14:30:00.000Z');
      expect(e.data).toMatchObject({ timeZone: '-0500' });
    });
  });

  describe('the gateway in another zone (UTC container)', () => {
    beforeAll(() => void (process.env.TZ = 'UTC'));
    it("MSH-7's offset is borrowed, as before", () => {
      const e = order('20261101100000-0500', '20261101093000');
      expect(e.occurredAt).toBe('2026-11-01T14:30:00.000Z');
      expect(e.data).toMatchObject({ timeZone: '-0500' });
    });
  });
});
