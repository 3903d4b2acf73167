/**
 * What holds of 7abc52f (a corrected report validates its test) once the order is billed: a real
 * gateway (MLLP listener, LevelDB in a temp dir, the relay, invoices posted at once) posting to the
 * Odoo emulator of each version over HTTP, the LIS as a real MLLP client; and a correction after
 * retention pruned the order's billing events (billing's memory, and past it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { lisOrm as orm, lisOru as oru } from '../fixtures/lis-rig.ts';
import { billed, billingRig, deadReasons, invoices, oru as rigOru, ormTimed, saleLines } from '../fixtures/relay/billing-rig.ts';
import { startLabDay, type LabDay } from '../fixtures/relay/lab-day.ts';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

const DAY_MS = 86_400_000;

async function pruneAll(store: EventStore, now: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

/** The lines as finance reads them (code, ordered, delivered, invoiced), the invoices' states, the dead letters. */
async function books(l: LabDay, accession: string): Promise<{ lines: Array<[string, number, number, number]>; invoices: string[]; dead: string[] }> {
  await l.settled();
  return {
    lines: saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered, x.invoiced]),
    invoices: invoices(l.emu, accession).map((i) => String(i['state'])),
    dead: deadReasons(await l.all()),
  };
}

describe('a correction of a test already invoiced', () => {
  for (const version of [16, 17, 19] as const) {
    it(`on Odoo ${version}: a second and third validation after the invoice was posted bill nothing and write nothing`, async () => {
      const l = await startLabDay(`review-s22-hl7c-posted-${version}`, closers, {}, { version, relay: { autoConfirm: true } });
      expect(await l.send('lis', orm('O-1', '94001', ['GLU', 'TSH']))).toContain('MSA|AA|O-1');
      expect(await l.send('lis', oru('R-1', '94001', 'GLU'))).toContain('MSA|AA|R-1');
      expect(await l.send('lis', oru('R-2', '94001', 'TSH'))).toContain('MSA|AA|R-2');
      const posted = { lines: [['GLU', 1, 1, 1], ['TSH', 1, 1, 1]], invoices: ['posted'], dead: [] };
      expect(await books(l, '94001')).toEqual(posted);
      const before = l.emu.calls.length;

      expect(await l.send('lis', oru('R-3', '94001', 'GLU', { status: 'C' }))).toContain('MSA|AA|R-3');
      expect(await l.send('lis', oru('R-4', '94001', 'GLU', { status: 'C', withObx: false }))).toContain('MSA|AA|R-4');
      expect(await books(l, '94001')).toEqual(posted);
      // Reads only: nothing written on the posted invoice, the order or its lines; no error.
      const after = l.emu.calls.slice(before);
      expect(after.filter((c) => c.error !== undefined || !['search_read', 'read', 'search', 'search_count', 'fields_get', 'check_object_reference', 'version', 'authenticate', 'message_post', undefined].includes(c.method))).toEqual([]);
      const all = await l.all();
      expect(all.filter((e) => e.event.type === 'invoice.eligible')).toHaveLength(1);
      const results = all.filter((e) => e.event.type === 'result.validated');
      expect(results.map((e) => [e.state, e.attempts])).toEqual([['delivered', 1], ['delivered', 1], ['delivered', 1], ['delivered', 1]]);
      expect(results.slice(2).map((e) => (e as { note?: string }).note)).toEqual(['already delivered', 'already delivered']);
      expect(billed(l.emu, '94001')).toEqual(['GLU', 'TSH']);
    });
  }
});

describe('a correction after retention pruned the billed order', () => {
  for (const [days, what] of [[35, "billing's memory holds the order"], [400, 'past the memory too']] as const) {
    it(`${what}: the correction bills nothing`, async () => {
      const rig = await billingRig();
      await rig.receive(ormTimed('RC-1', ['GLU', 'TSH'], { msh7: '20260301092000', orc9: '20260301092000' }));
      await rig.receive(rigOru('RC-1', 'GLU'));
      await rig.receive(rigOru('RC-1', 'TSH'));
      await rig.settle('RC-1');
      await pruneAll(rig.store, Date.now() + days * DAY_MS);
      expect(await rig.events('RC-1')).toEqual([]);

      await rig.receive(rigOru('RC-1', 'GLU', 'C', '5.9', '20260405110000'));
      await rig.settle('RC-1');
      const evs = await rig.events('RC-1');
      expect(evs.map((e) => `${e.event.type}: ${e.state}`)).toEqual(['result.validated: delivered', 'test.completed: delivered']);
      expect(saleLines(rig.emu, 'RC-1').map((x) => [x.code, x.delivered, x.invoiced])).toEqual([['GLU', 1, 1], ['TSH', 1, 1]]);
      expect(invoices(rig.emu, 'RC-1')).toHaveLength(1);
    });
  }
});
