import { describe, expect, it } from 'vitest';
import { chatterText, OdooEmulator, OdooError, sanitizeHtml } from '../odoo-emulator/index.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

/**
 * Emulator behaviour checked against Odoo's own source, per version (citations: file and function).
 * In-process calls (no HTTP): what is checked is what Odoo stores or raises, not the wire format.
 */

function emulator(version: OdooVersion, lockConfirmedSales = false): OdooEmulator {
  return new OdooEmulator({ version, seed: 'lab-demo', settings: { lockConfirmedSales } });
}

function raised(fn: () => unknown): OdooError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OdooError) return err;
    throw err;
  }
  throw new Error('no error raised');
}

function saleOrder(odoo: OdooEmulator, codes: string[]): { so: number; lines: Record<string, number> } {
  const partner = odoo.records('res.partner', [['ref', '=', 'CLINIC-A']])[0]!.id;
  const products = codes.map((c) => odoo.records('product.product', [['default_code', '=', c]])[0]!.id);
  const so = odoo.call('sale.order', 'create', [{ partner_id: partner, order_line: products.map((p) => [0, 0, { product_id: p, product_uom_qty: 1 }]) }]) as number;
  const lines: Record<string, number> = {};
  codes.forEach((c, i) => {
    lines[c] = odoo.records('sale.order.line', [['order_id', '=', so], ['product_id', '=', products[i]!]])[0]!.id as number;
  });
  return { so, lines };
}

describe('mail.thread.message_post body (mail_thread.py message_post)', () => {
  const post = (odoo: OdooEmulator, body: string, extra: Record<string, unknown> = {}): string => {
    const { so } = saleOrder(odoo, ['GLU']);
    const id = odoo.call('sale.order', 'message_post', [[so]], { body, message_type: 'comment', subtype_xmlid: 'mail.mt_note', ...extra }) as number;
    return String(odoo.records('mail.message', [['id', '=', id]])[0]!['body']);
  };

  it('16: a plain-text body is HTML (`body` stored as given, then sanitized): an unknown tag is dropped, an entity decoded, a line break is a space', () => {
    const body = post(emulator(16), 'Specimen <EDTA> received\n&lt;2h & ok');
    expect(body).toBe('<p>Specimen  received\n&lt;2h &amp; ok</p>');
    expect(chatterText(body)).toBe('Specimen received <2h & ok');
  });

  it.each([17, 18, 19] as const)('%i: a plain-text body is escaped (`escape(body)`), wrapped in a paragraph; its line breaks are not turned into <br>', (version) => {
    const body = post(emulator(version), 'Specimen <EDTA> received\n"A" & \'B\'');
    expect(body).toBe('<p>Specimen &lt;EDTA&gt; received\n"A" &amp; \'B\'</p>');
    expect(chatterText(body)).toBe('Specimen <EDTA> received "A" & \'B\'');
  });

  it.each([17, 18, 19] as const)('%i: body_is_html keeps an HTML body (internal user: `Markup(body)`)', (version) => {
    const body = post(emulator(version), '<p>Lab milestones<br>• specimen SP&lt;1&gt; received</p>', { body_is_html: true });
    expect(body).toBe('<p>Lab milestones<br>• specimen SP&lt;1&gt; received</p>');
    expect(chatterText(body)).toBe('Lab milestones\n• specimen SP<1> received');
  });

  it('the sanitizer model: script killed with its text, bare text wrapped, a lone < or & escaped', () => {
    expect(sanitizeHtml('a <script>alert(1)</script>b')).toBe('<p>a b</p>');
    expect(sanitizeHtml('1 < 2 & 3')).toBe('<p>1 &lt; 2 &amp; 3</p>');
    expect(sanitizeHtml('<div>x</div>')).toBe('<div>x</div>');
  });
});

describe('"Lock Confirmed Sales" (sale.group_auto_done_setting)', () => {
  it.each([16, 17, 18, 19] as const)('%i: off, a confirmed order stays open; its quantities can be changed', (version) => {
    const odoo = emulator(version);
    const { so, lines } = saleOrder(odoo, ['GLU']);
    odoo.call('sale.order', 'action_confirm', [[so]]);
    const row = odoo.records('sale.order', [['id', '=', so]])[0]!;
    expect(row['state']).toBe('sale');
    if (version >= 17) expect(row['locked']).toBe(false);
    expect(odoo.call('sale.order.line', 'write', [[lines['GLU']!], { product_uom_qty: 0 }])).toBe(true);
  });

  it.each([16, 17, 18, 19] as const)('%i: on, action_confirm locks (17+ `locked`, 16 state done); line quantity writes are refused with the field labels', (version) => {
    const odoo = emulator(version, true);
    const { so, lines } = saleOrder(odoo, ['GLU', 'CRP']);
    odoo.call('sale.order', 'action_confirm', [[so]]);
    const row = odoo.records('sale.order', [['id', '=', so]])[0]!;
    if (version >= 17) expect(row).toMatchObject({ state: 'sale', locked: true });
    else expect(row['state']).toBe('done');

    const one = raised(() => odoo.call('sale.order.line', 'write', [[lines['CRP']!], { product_uom_qty: 0, qty_delivered: 0 }]));
    expect(one.pythonName).toBe('odoo.exceptions.UserError');
    expect(one.message).toBe('It is forbidden to modify the following fields in a locked order:\nQuantity');
    // Several protected fields: one label per line, in ir.model.fields order (by field name).
    const two = raised(() => odoo.call('sale.order.line', 'write', [[lines['CRP']!], { product_uom_qty: 2, price_unit: 1 }]));
    expect(two.message).toBe('It is forbidden to modify the following fields in a locked order:\nUnit Price\nQuantity');
    expect(odoo.records('sale.order.line', [['id', '=', lines['CRP']!]])[0]!['product_uom_qty']).toBe(1);

    // Not protected: the delivered quantity, a new line.
    expect(odoo.call('sale.order.line', 'write', [[lines['GLU']!], { qty_delivered: 1 }])).toBe(true);
    const tsh = odoo.records('product.product', [['default_code', '=', 'TSH']])[0]!.id;
    expect(typeof odoo.call('sale.order.line', 'create', [{ order_id: so, product_id: tsh, product_uom_qty: 1 }])).toBe('number');
    // A draft invoice can still bill the order.
    const wiz = odoo.call('sale.advance.payment.inv', 'create', [{ advance_payment_method: 'delivered', sale_order_ids: [[6, 0, [so]]] }]) as number;
    expect(odoo.call('sale.advance.payment.inv', 'create_invoices', [[wiz]])).toMatchObject({ res_model: 'account.move' });

    // Unlock (17+ locked = False, 16 back to state sale): the write goes through.
    odoo.call('sale.order', 'action_unlock', [[so]]);
    expect(odoo.call('sale.order.line', 'write', [[lines['CRP']!], { product_uom_qty: 0 }])).toBe(true);
  });

  it.each([17, 18, 19] as const)('%i: a locked order refuses action_cancel (sale_order.py action_cancel)', (version) => {
    const odoo = emulator(version, true);
    const { so } = saleOrder(odoo, ['GLU']);
    odoo.call('sale.order', 'action_confirm', [[so]]);
    expect(raised(() => odoo.call('sale.order', 'action_cancel', [[so]], { context: { disable_cancel_warning: true } })).message).toBe('You cannot cancel a locked order. Please unlock it first.');
  });

  it('the setting can be switched at run time, like an administrator in Settings', () => {
    const odoo = emulator(17);
    odoo.settings.lockConfirmedSales = true;
    const { so } = saleOrder(odoo, ['GLU']);
    odoo.call('sale.order', 'action_confirm', [[so]]);
    expect(odoo.records('sale.order', [['id', '=', so]])[0]!['locked']).toBe(true);
  });
});

describe('duplicate barcodes and picking names', () => {
  /*
   * product_product.py `_check_barcode_uniqueness` (a Python @api.constrains, not an SQL unique
   * constraint, in 16–19): 16 "- Barcode "%s" already assigned to product(s): %s" joined with ", ";
   * 17 adds "\n\nNote: products that you don't have access to will not be shown above."; 18
   * formats the names with `format_list`.
   */
  it.each([16, 17, 18] as const)('%i: a second product with the same barcode: ValidationError with the version\'s text', (version) => {
    const odoo = emulator(version);
    odoo.call('product.product', 'create', [{ name: 'Tube A', barcode: '4006381333931' }]);
    const err = raised(() => odoo.call('product.product', 'create', [{ name: 'Tube B', barcode: '4006381333931' }]));
    expect(err.pythonName).toBe('odoo.exceptions.ValidationError');
    const names = version >= 18 ? 'Tube A and Tube B' : 'Tube A, Tube B';
    const note = version >= 17 ? "\n\nNote: products that you don't have access to will not be shown above." : '';
    expect(err.message).toBe(`Barcode(s) already assigned:\n\n- Barcode "4006381333931" already assigned to product(s): ${names}${note}`);
  });

  /*
   * 19 stock_picking.py: `_name_uniq = models.Constraint('unique(name, company_id)', 'Reference must
   * be unique per company!')`; the IntegrityError becomes ValidationError "The operation cannot be
   * completed: %s" with the constraint's message (service/model.py, `_sql_error_to_message`).
   */
  it('19: a second picking with the same name is refused with the unique constraint\'s message', () => {
    const odoo = emulator(19);
    const type = odoo.externalIds().find((x) => x.xmlid === 'stock.picking_type_internal')!.resId;
    const loc = odoo.externalIds().find((x) => x.xmlid === 'stock.stock_location_stock')!.resId;
    const vals = { name: 'WH/INT/TEST1', picking_type_id: type, location_id: loc, location_dest_id: loc };
    odoo.call('stock.picking', 'create', [vals]);
    const err = raised(() => odoo.call('stock.picking', 'create', [vals]));
    expect(err.pythonName).toBe('odoo.exceptions.ValidationError');
    expect(err.message).toBe('The operation cannot be completed: Reference must be unique per company!');
  });
});
