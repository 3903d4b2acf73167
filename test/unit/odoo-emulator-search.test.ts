import { describe, expect, it } from 'vitest';
import { OdooEmulator } from '../odoo-emulator/index.ts';

/**
 * Equality searches go through indexes kept up to date on every write; these tests pin that the
 * indexed answers match a full scan after writes, deletes and rolled-back transactions.
 */
describe('indexed searches stay exact', () => {
  const odoo = new OdooEmulator({ version: 17 });
  const search = (model: string, domain: unknown[]) => odoo.call(model, 'search', [domain], { order: 'id', context: { active_test: false } }) as number[];
  const scan = (model: string, field: string, value: unknown) => odoo.records(model).filter((r) => r[field] === value).map((r) => r.id);
  const type = odoo.records('stock.picking.type', [['sequence_code', '=', 'LAB']])[0]!.id as number;
  const clinic = odoo.records('res.partner', [['ref', '=', 'CLINIC-A']])[0]!.id as number;

  it('after create, write and unlink', () => {
    const a = odoo.call('stock.picking', 'create', [{ picking_type_id: type, origin: 'IDX-A' }]) as number;
    const b = odoo.call('stock.picking', 'create', [{ picking_type_id: type, origin: 'IDX-A' }]) as number;
    expect(search('stock.picking', [['origin', '=', 'IDX-A']])).toEqual(scan('stock.picking', 'origin', 'IDX-A'));
    expect(search('stock.picking', [['origin', '=', 'IDX-A']])).toEqual([a, b]);
    odoo.call('stock.picking', 'write', [[a], { origin: 'IDX-B' }]);
    expect(search('stock.picking', [['origin', '=', 'IDX-A']])).toEqual([b]);
    expect(search('stock.picking', [['origin', '=', 'IDX-B']])).toEqual([a]);
    odoo.call('stock.picking', 'unlink', [[b]]);
    expect(search('stock.picking', [['origin', '=', 'IDX-A']])).toEqual([]);
    expect(search('stock.picking', [['origin', '=', 'IDX-B'], ['picking_type_id', '=', type]])).toEqual([a]);
  });

  it('after a rolled-back call', () => {
    const before = search('sale.order', [['client_order_ref', '=', 'IDX-1']]);
    const result = odoo.call('sale.order', 'load', [['id', 'partner_id/.id', 'client_order_ref'], [['idx.one', String(clinic), 'IDX-1'], ['idx.two', '999999', 'IDX-2']]]) as { ids: unknown };
    expect(result.ids).toBe(false);
    expect(search('sale.order', [['client_order_ref', '=', 'IDX-1']])).toEqual(before);
    expect(scan('sale.order', 'client_order_ref', 'IDX-1')).toEqual(before);
    expect(() => odoo.call('sale.order', 'create', [{ partner_id: clinic, client_order_ref: 'IDX-3', order_line: [[0, 0, { product_id: 999999 }]] }])).toThrow();
    expect(search('sale.order', [['client_order_ref', '=', 'IDX-3']])).toEqual([]);
    expect(odoo.count('sale.order.line', [['order_id.client_order_ref', '=', 'IDX-3']])).toBe(0);
  });

  it('one2many values and lookups by parent follow the same rows', () => {
    const so = odoo.call('sale.order', 'create', [{ partner_id: clinic, client_order_ref: 'IDX-4', order_line: [[0, 0, { product_id: odoo.records('product.product', [['default_code', '=', 'GLU']])[0]!.id }]] }]) as number;
    const [order] = odoo.call('sale.order', 'read', [[so], ['order_line']]) as Array<{ order_line: number[] }>;
    expect(order!.order_line).toEqual(scan('sale.order.line', 'order_id', so));
    odoo.call('sale.order', 'write', [[so], { order_line: [[5, 0, 0]] }]);
    expect((odoo.call('sale.order', 'read', [[so], ['order_line']]) as Array<{ order_line: number[] }>)[0]!.order_line).toEqual([]);
    odoo.reset();
    expect(search('sale.order', [['client_order_ref', '=', 'IDX-4']])).toEqual([]);
  });
});
