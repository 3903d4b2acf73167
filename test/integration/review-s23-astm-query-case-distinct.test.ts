/**
 * A barcode's case fallback (e56fcd0: a barcode the analyzer sends in lower case is looked up in
 * upper case when nothing is known under it as sent) must never give a tube another patient's
 * tests. Real gateway (real LevelDB in a temp dir, restarted on it), the LIS over real MLLP, the
 * analyzer simulated over a real TCP socket.
 *
 * A LIS whose accessions differ only by case (`ab12` and `AB12` are two patients' orders): before,
 * a query for `ab12` that came before ab12's own order was answered with AB12's tests (the tube of
 * one patient ran the other's), and its result went on AB12; an order of two tubes `tb9` and `TB9`
 * answered both tubes' tests for either. Now such a LIS is marked on its first number carrying a
 * lower-case letter (a store document, read at start) and its barcodes compare byte for byte; a
 * LIS that never sent one keeps the fallback. Orders stored before the mark existed (an earlier
 * release) whose case variants are ambiguous are answered "no order" with an alert.
 */
import { describe, expect, it } from 'vitest';
import { AstmQueryRig, orm, tubesOrder, useCaseRig } from '../fixtures/barcode-case-rig.ts';

describe('a LIS whose accessions differ only by case (ab12 and AB12 are two patients)', () => {
  let rig: AstmQueryRig;

  useCaseRig('s23-case-distinct', (id, dir) => (rig = new AstmQueryRig(id, dir)), async () => {
    // The LIS numbers with lower-case letters (its first such order marks the link)…
    await rig.order(orm('CD-1', 'cd34', ['CRP'], 'MRN-A'), 'CD-1');
    // …and AB12 is patient B's order.
    await rig.order(orm('CD-2', 'AB12', ['ALT'], 'MRN-B'), 'CD-2');
  });

  it('a query for ab12 before its order arrived is answered "no order", not with AB12\'s tests', async () => {
    const { orders, text } = await rig.query('ab12');
    // Before: [['ab12', '^^^ALT']], patient B's ALT run on the tube of another patient.
    expect(orders).toEqual([]);
    expect(text).toContain('L|1|I');
  });

  it('a result for ab12 before its order stays under ab12, not on AB12', async () => {
    await rig.result('ab12', 'ALT', '44');
    await expect.poll(() => rig.completed('ab12'), { timeout: 5_000 }).toBe(1);
    // Before: the result went on patient B's order.
    expect(await rig.completed('AB12')).toBe(0);
  });

  it("ab12's own order, once it arrived, is answered with its own tests only", async () => {
    await rig.order(orm('CD-3', 'ab12', ['GLU'], 'MRN-C'), 'CD-3');
    expect((await rig.query('ab12')).orders).toEqual([['ab12', '^^^GLU']]);
    expect((await rig.query('AB12')).orders).toEqual([['AB12', '^^^ALT']]);
  });

  it('tubes tb9 and TB9 of one order are two tubes', async () => {
    await rig.order(tubesOrder('CD-4', 'ORD-T1', [['ALT', 'tb9', 'SER', 'Serum'], ['GLU', 'TB9', 'SER', 'Serum']], 'MRN-E'), 'CD-4');
    // Before: each tube was answered with both tubes' tests.
    expect((await rig.query('tb9')).orders).toEqual([['tb9', '^^^ALT']]);
    expect((await rig.query('TB9')).orders).toEqual([['TB9', '^^^GLU']]);
  });

  it('is still known to number by case after a restart, before it sends another lower-case number', async () => {
    await rig.stop();
    await rig.start();
    await rig.order(orm('CD-5', 'EF56', ['ALT'], 'MRN-D'), 'CD-5');
    // Before the mark: EF56's ALT for the tube ef56.
    const { orders, text } = await rig.query('ef56');
    expect(orders).toEqual([]);
    expect(text).toContain('L|1|I');
    await rig.result('ef56', 'ALT', '12');
    await expect.poll(() => rig.completed('ef56'), { timeout: 5_000 }).toBe(1);
    expect(await rig.completed('EF56')).toBe(0);
  });
});

describe('a LIS that never sent a lower-case number (labels printed upper case)', () => {
  let rig: AstmQueryRig;

  useCaseRig('s23-case-upper', (id, dir) => (rig = new AstmQueryRig(id, dir)), async () => {
    await rig.order(orm('UC-1', 'ACC-UC-1', ['ALT'], 'MRN-F'), 'UC-1');
  });

  it('a barcode typed in lower case still finds its order, and its result goes on it', async () => {
    expect((await rig.query('acc-uc-1')).orders).toEqual([['acc-uc-1', '^^^ALT']]);
    await rig.result('acc-uc-1', 'ALT', '31');
    await expect.poll(() => rig.completed('ACC-UC-1'), { timeout: 5_000 }).toBe(1);
  });

  it('after a restart too (no mark is written for it)', async () => {
    await rig.stop();
    await rig.start();
    await rig.order(orm('UC-2', 'ACC-UC-2', ['GLU'], 'MRN-G'), 'UC-2');
    expect((await rig.query('acc-uc-2')).orders).toEqual([['acc-uc-2', '^^^GLU']]);
  });
});

describe('case variants stored before the mark existed (orders an earlier release took)', () => {
  let rig: AstmQueryRig;

  useCaseRig('s23-case-earlier', (id, dir) => (rig = new AstmQueryRig(id, dir)), async () => {
    await rig.order(orm('EV-1', 'AB12', ['ALT'], 'MRN-B'), 'EV-1');
    await rig.order(orm('EV-2', 'ab12', ['GLU'], 'MRN-C'), 'EV-2');
    // The release that took these orders wrote no mark.
    await rig.withoutCaseMark({ markWritten: true });
  });

  it('Ab12 (AB12 and ab12 both stored) is answered "no order", and the lab is told', async () => {
    const before = rig.alerts.length;
    const { orders } = await rig.query('Ab12');
    // Before: AB12's ALT (patient B), though the tube may be ab12's (patient C).
    expect(orders).toEqual([]);
    expect(rig.alerts.slice(before).some((a) => a.code === 'ACCESSION_COLLISION' && a.message.includes('Ab12') && a.message.includes('AB12') && a.message.includes('ab12'))).toBe(true);
  });

  it('a result for Ab12 goes on neither', async () => {
    await rig.result('Ab12', 'ALT', '50');
    await expect.poll(() => rig.completed('Ab12'), { timeout: 5_000 }).toBe(1);
    expect(await rig.completed('AB12')).toBe(0);
    expect(await rig.completed('ab12')).toBe(0);
  });

  it('each barcode as sent still finds its own order', async () => {
    expect((await rig.query('ab12')).orders).toEqual([['ab12', '^^^GLU']]);
    expect((await rig.query('AB12')).orders).toEqual([['AB12', '^^^ALT']]);
  });
});
