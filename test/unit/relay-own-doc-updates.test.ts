import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OdooApi } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { ReferenceData, type ProductRef } from '../../gateway/src/relay/reference-data.ts';
import { ConsumptionCarry } from '../../gateway/src/relay/rules/consumption-carry.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';

/**
 * The gateway's own documents about one Odoo (`ref/consumption-carry`, `ref/rfq-manual`) are
 * written by batches of a rule that the relay runs side by side (more than one chunk of due events
 * in a round). Each batch used to read the whole document at its start and write it back whole
 * at its end: the later write took back what the other batch had written meanwhile — a reagent
 * lot's carry (Odoo's stock then off by what was carried) or a manual quantity being ordered (the
 * buyer's quantity then ordered twice). A real LevelDB store in a temp dir.
 */
describe("the gateway's own documents, written by batches side by side", () => {
  const dirs: string[] = [];
  const stores: EventStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function refData(): Promise<ReferenceData> {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-own-doc-'));
    dirs.push(dir);
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    stores.push(store);
    // Only the store's documents are used here: no call reaches Odoo.
    const odoo = { serverVersion: 17, fields: undefined as never, call: async () => { throw new Error('not called'); } } as OdooApi;
    return new ReferenceData({ store, odoo, mapping: { labLocation: 'WH/Stock/Lab', consumptionLocation: 'Virtual Locations/Lab Consumption' } });
  }

  const product = (id: number, code: string): ProductRef => ({ id, code, name: code, uomName: 'L', tracking: 'lot' });

  it('two consumption batches planned from the same document both keep their carry and their records', async () => {
    const ref = await refData();
    const a = await ConsumptionCarry.load(ref);
    const b = await ConsumptionCarry.load(ref);
    // Two analyzers' runs, each below Odoo's 0.01 L: nothing posted, each carried on its own lot.
    const pa = a.plan('head-a', 1, [{ product: product(1, 'DIL-A'), lotId: 11, locationId: 5, qty: 0.004 }], 2, 1_000, () => undefined);
    const pb = b.plan('head-b', 1, [{ product: product(2, 'DIL-B'), lotId: 22, locationId: 5, qty: 0.003 }], 2, 1_000, () => undefined);
    expect(pa.lines).toEqual([]);
    expect(pb.lines).toEqual([]);
    await a.save(1_000);
    await b.save(1_000);

    const after = await ConsumptionCarry.load(ref);
    expect(after.carried(1, 11), "batch A's carry is not taken back by B's save").toBeCloseTo(0.004, 9);
    expect(after.carried(2, 22)).toBeCloseTo(0.003, 9);
    expect(after.covered('head-a')).toEqual({ count: 1, note: expect.stringContaining('DIL-A') });
    expect(after.covered('head-b')).toEqual({ count: 1, note: expect.stringContaining('DIL-B') });
  });

  it('carries of one lot from two batches add up (each adds its own change, not the sum it read)', async () => {
    const ref = await refData();
    const a = await ConsumptionCarry.load(ref);
    const b = await ConsumptionCarry.load(ref);
    a.plan('head-a', 1, [{ product: product(1, 'DIL-A'), lotId: 11, locationId: 5, qty: 0.004 }], 2, 1_000, () => undefined);
    b.plan('head-b', 1, [{ product: product(1, 'DIL-A'), lotId: 11, locationId: 5, qty: 0.003 }], 2, 1_000, () => undefined);
    await Promise.all([a.save(1_000), b.save(1_000)]);
    expect((await ConsumptionCarry.load(ref)).carried(1, 11)).toBeCloseTo(0.007, 9);
  });

  it('updates of one document run one at a time, each on what the one before wrote', async () => {
    const ref = await refData();
    await Promise.all(
      ['BR-1', 'BR-2', 'BR-3', 'BR-4'].map((key, i) =>
        ref.updateOwnDoc<Record<string, number>>('rfq-manual', (stored) => ({ ...(stored ?? {}), [key]: 10 * (i + 1) })),
      ),
    );
    expect(await ref.ownDoc('rfq-manual')).toEqual({ 'BR-1': 10, 'BR-2': 20, 'BR-3': 30, 'BR-4': 40 });
  });

  it('each reader gets a copy of its own: changing what was read writes nothing and is not read back', async () => {
    const ref = await refData();
    await ref.putOwnDoc('rfq-manual', { 'BR-1': 10 });
    const read = (await ref.ownDoc<Record<string, number>>('rfq-manual'))!;
    read['BR-2'] = 20;
    expect(await ref.ownDoc('rfq-manual')).toEqual({ 'BR-1': 10 });
  });

  it('a change returning nothing writes nothing, and a failed update does not stop the next one', async () => {
    const ref = await refData();
    await ref.updateOwnDoc<Record<string, number>>('rfq-manual', () => ({ kept: 1 }));
    await ref.updateOwnDoc<Record<string, number>>('rfq-manual', () => undefined);
    await expect(
      ref.updateOwnDoc<Record<string, number>>('rfq-manual', () => {
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    await ref.updateOwnDoc<Record<string, number>>('rfq-manual', (stored) => ({ ...(stored ?? {}), next: 2 }));
    expect(await ref.ownDoc('rfq-manual')).toEqual({ kept: 1, next: 2 });
  });
});
