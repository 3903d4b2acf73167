import { describe, expect, it } from 'vitest';
import { FieldMap } from '../../gateway/src/relay/odoo/field-map.ts';
import { externalId, loadRows } from '../../gateway/src/relay/odoo/odoo-calls.ts';
import type { OdooApi } from '../../gateway/src/relay/odoo/odoo-client.ts';

function api(version: 17 | 19): OdooApi {
  const fields = new FieldMap();
  fields.set('sale.order', {
    partner_id: { type: 'many2one', relation: 'res.partner' },
    client_order_ref: { type: 'char' },
    order_line: { type: 'one2many', relation: 'sale.order.line' },
  });
  fields.set('sale.order.line', {
    product_id: { type: 'many2one', relation: 'product.product' },
    product_uom_qty: { type: 'float' },
    ...(version === 19 ? { product_uom_id: { type: 'many2one', relation: 'uom.uom' } } : { product_uom: { type: 'many2one', relation: 'uom.uom' } }),
  });
  fields.set('stock.move', version === 19 ? { product_id: { type: 'many2one' } } : { name: { type: 'char' }, product_id: { type: 'many2one' } });
  fields.set('purchase.order', undefined);
  return { serverVersion: version, fields, call: async () => null } as OdooApi;
}

describe('field map from fields_get', () => {
  it('picks the field name the server has (product_uom vs product_uom_id)', () => {
    expect(api(17).fields.pick('sale.order.line', 'product_uom_id', 'product_uom')).toBe('product_uom');
    expect(api(19).fields.pick('sale.order.line', 'product_uom_id', 'product_uom')).toBe('product_uom_id');
  });

  it('never sends a field the server lacks (stock.move name is gone in 19)', () => {
    expect(api(19).fields.filter('stock.move', { name: 'x', product_id: 1 })).toEqual({ product_id: 1 });
    expect(api(17).fields.filter('stock.move', { name: 'x', product_id: 1 })).toEqual({ name: 'x', product_id: 1 });
  });

  it('filters one2many command rows against the relation', () => {
    const out = api(19).fields.filter('sale.order', { order_line: [[0, 0, { product_id: 1, product_uom: 3, product_uom_id: 3 }]] });
    expect(out).toEqual({ order_line: [[0, 0, { product_id: 1, product_uom_id: 3 }]] });
  });

  it('knows a model checked and absent', () => {
    expect(api(17).fields.missing('purchase.order')).toBe(true);
    expect(api(17).fields.missing('stock.picking')).toBe(false);
  });
});

describe('load() rows', () => {
  it('writes many2one as /.id columns and one2many lines as extra rows, several records in one call', () => {
    const { fields, rows } = loadRows(api(17), 'sale.order', [
      { xmlid: 'lab_gateway.so_a', vals: { partner_id: 7, client_order_ref: 'A', order_line: [[0, 0, { product_id: 1, product_uom_qty: 1 }], [0, 0, { product_id: 2, product_uom_qty: 1 }]] } },
      { xmlid: 'lab_gateway.so_b', vals: { partner_id: 8, client_order_ref: 'B', order_line: [[0, 0, { product_id: 3, product_uom_qty: 2 }]] } },
    ]);
    expect(fields).toEqual(['id', 'partner_id/.id', 'client_order_ref', 'order_line/product_id/.id', 'order_line/product_uom_qty']);
    expect(rows).toEqual([
      ['lab_gateway.so_a', 7, 'A', 1, 1],
      ['', '', '', 2, 1],
      ['lab_gateway.so_b', 8, 'B', 3, 2],
    ]);
  });

  it('external ids are word characters and keep distinct keys apart', () => {
    const a = externalId('so', 'ACC/1');
    const b = externalId('so', 'ACC_1');
    expect(a.full).toMatch(/^lab_gateway\.so_ACC_1_[0-9a-f]{10}$/);
    expect(a.full).not.toBe(b.full);
  });
});
