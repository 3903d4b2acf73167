/**
 * What the gateway keeps of one Odoo (reference snapshot, stock reorder marks) is dropped when it
 * starts with another Odoo, and only then (relay/odoo-target.ts). Real LevelDB in a temp dir; the
 * whole switch, sandbox to a real Odoo through the CLI, is in commissioning-audit.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ORDER_OUTBOX_NS } from '../../gateway/src/astm/order-download.ts';
import { adoptOdooTarget, odooTargetOf } from '../../gateway/src/relay/odoo-target.ts';
import { REF_NAMESPACE } from '../../gateway/src/relay/reference-data.ts';
import { STATE_NS as STOCK_NS } from '../../gateway/src/relay/stock-watch.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const temp = useTempStore('lgw-odoo-target-');

/** A store as a gateway leaves it after running on some Odoo: a snapshot, an episode mark, an order download waiting. */
async function runOn(store: EventStore): Promise<void> {
  await store.putDoc(REF_NAMESPACE, 'snapshot', { pulledAt: '2026-11-24T08:00:00.000Z', products: [] });
  await store.putDoc(STOCK_NS, 'op:1', { since: '2026-11-24T08:00:01.000Z', productCode: 'RGT-CRP' });
  await store.putDoc(ORDER_OUTBOX_NS, 'xn-1|ACC-1', { queuedAt: '2026-11-24T08:00:02.000Z' });
}

async function kept(store: EventStore): Promise<string[]> {
  const out: string[] = [];
  for (const ns of [REF_NAMESPACE, STOCK_NS, ORDER_OUTBOX_NS]) for (const { key } of await store.listDocs(ns)) out.push(`${ns}/${key}`);
  return out;
}

const real = { url: 'https://lab.example.com', database: 'lab' };

describe('the Odoo target recorded in the store', () => {
  it('a data dir from before the record keeps what it holds: an upgraded gateway on its own Odoo does not raise its breaches again', async () => {
    const store = await temp.open();
    await runOn(store);
    expect(await adoptOdooTarget(store, odooTargetOf(real))).toBeUndefined();
    expect(await kept(store)).toEqual(['ref/snapshot', 'relay-stock/op:1', 'orderOutbox/xn-1|ACC-1']);
  });

  it('the same Odoo written with a trailing slash or its host in capitals is no switch', async () => {
    const store = await temp.open();
    await adoptOdooTarget(store, odooTargetOf(real));
    await runOn(store);
    expect(await adoptOdooTarget(store, odooTargetOf({ url: 'https://LAB.example.com/', database: 'lab' }))).toBeUndefined();
    expect(await kept(store)).toHaveLength(3);
  });

  it('another database on the same server is another Odoo: its snapshot and marks go, the rest stays, and the next start resets nothing more', async () => {
    const store = await temp.open();
    await adoptOdooTarget(store, odooTargetOf(real));
    await runOn(store);
    const change = await adoptOdooTarget(store, odooTargetOf({ ...real, database: 'lab-prod' }));
    expect(change).toEqual({
      from: { sandbox: false, url: 'https://lab.example.com', database: 'lab' },
      to: { sandbox: false, url: 'https://lab.example.com', database: 'lab-prod' },
      reset: { ref: 1, 'relay-stock': 1, 'odoo-link': 0 },
    });
    expect(await kept(store)).toEqual(['orderOutbox/xn-1|ACC-1']);
    // The new Odoo's own marks, written after the switch, survive the next start.
    await store.putDoc(STOCK_NS, 'op:1', { since: '2026-11-25T08:00:00.000Z', productCode: 'RGT-CRP' });
    expect(await adoptOdooTarget(store, odooTargetOf({ ...real, database: 'lab-prod' }))).toBeUndefined();
    expect(await kept(store)).toContain('relay-stock/op:1');
  });
});
