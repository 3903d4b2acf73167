import { searchRead, type OdooRecord } from '../odoo/odoo-calls.ts';
import type { OdooApi } from '../odoo/odoo-client.ts';
import { mappingMissing } from '../odoo/odoo-error.ts';

/**
 * The lab order in Odoo is a sale.order whose `client_order_ref` is the accession (placer order
 * number): one order per accession, found by every later rule (cancel, delivered, notes, invoice).
 */
export const SALE_ORDER_FIELDS = ['id', 'name', 'state', 'partner_id', 'client_order_ref', 'order_line'];

export async function saleOrdersByAccession(odoo: OdooApi, accessions: string[]): Promise<Map<string, OdooRecord>> {
  const unique = [...new Set(accessions)];
  const out = new Map<string, OdooRecord>();
  if (unique.length === 0) return out;
  const rows = await searchRead(odoo, 'sale.order', [['client_order_ref', 'in', unique]], SALE_ORDER_FIELDS, { order: 'id' });
  for (const row of rows) {
    const acc = String(row['client_order_ref']);
    if (!out.has(acc)) out.set(acc, row);
  }
  return out;
}

export function noSaleOrder(accession: string): Error {
  return mappingMissing(`accession ${accession} has no Odoo sale order (order.created not delivered or dead-lettered)`, { accession });
}

export const SALE_LINE_FIELDS = ['id', 'order_id', 'product_id', 'product_uom_qty', 'qty_delivered', 'state'];
