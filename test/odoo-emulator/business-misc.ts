/**
 * Invoices (account.move), chatter (message_post), external ids (ir.model.data), products
 * (template ↔ variant) and res.users.context_get — odoo-api.md §B.3, §B.4, §A.4.
 */
import type { MethodRegistry } from './methods.ts';
import { accessError, userError, validationError, valueError } from './odoo-errors.ts';
import type { Env, ModelHooks } from './orm.ts';
import { lookupXmlid } from './base-methods.ts';
import { escapeMarkup, sanitizeHtml } from './html-body.ts';
import { templateOf } from './schema.ts';

function invoiceSequence(env: Env, moveType: string, date: string): string {
  const year = date.slice(0, 4);
  const prefix = { out_invoice: 'INV', out_refund: 'RINV', in_invoice: 'BILL', in_refund: 'RBILL', out_receipt: 'RCPT', in_receipt: 'RCPT', entry: 'MISC' }[moveType] ?? 'MISC';
  return env.sequence(`account.move.${prefix}.${year}`, `${prefix}/${year}/`, 5);
}

/** `format_list` (18+) in English: "A", "A and B", "A, B, and C". */
function formatList(items: string[]): string {
  if (items.length <= 2) return items.join(' and ');
  return `${items.slice(0, -1).join(', ')}, and ${items[items.length - 1]!}`;
}

/**
 * `product.product._check_barcode_uniqueness` (16+, a Python constraint run after the write, so the
 * transaction rolls back): every non-empty barcode of `ids` held by another active variant is a
 * ValidationError listing the variants that share it, in the model's order.
 */
function checkBarcodes(env: Env, ids: number[]): void {
  const variants = env.table('product.product');
  const barcodes = new Set(ids.map((id) => variants.get(id)?.barcode).filter((b): b is string => typeof b === 'string' && b !== ''));
  const lines: string[] = [];
  for (const barcode of barcodes) {
    const holders = env.rowsBy('product.product', 'barcode', barcode).filter((p) => p.active !== false).map((p) => p.id);
    if (holders.length < 2) continue;
    const names = env.searchInternal('product.product', [['id', 'in', holders]]).map((id) => env.displayName('product.product', variants.get(id)!));
    lines.push(`- Barcode "${barcode}" already assigned to product(s): ${env.version >= 18 ? formatList(names) : names.join(', ')}`);
  }
  if (lines.length === 0) return;
  const note = env.version >= 17 ? "\n\nNote: products that you don't have access to will not be shown above." : '';
  throw validationError(`Barcode(s) already assigned:\n\n${lines.join('\n')}${note}`);
}

export function miscHooks(): Record<string, ModelHooks> {
  return {
    // 19: a unit's `rounding` is computed, the 'Product Unit' decimal precision (0.01) for every
    // unit (uom.uom _compute_rounding); a value written is not kept.
    'uom.uom': {
      beforeCreate: (env, vals) => {
        if (env.version >= 19) delete vals.rounding;
      },
      beforeWrite: (env, _ids, vals) => {
        if (env.version >= 19) delete vals.rounding;
      },
    },
    'account.move': {
      beforeCreate: (env, vals) => {
        const type = String(vals.move_type ?? 'entry');
        if (vals.journal_id === undefined) {
          const jt = type.startsWith('out_') ? 'sale' : type.startsWith('in_') ? 'purchase' : 'general';
          const j = [...env.table('account.journal').values()].find((x) => x.type === jt);
          if (j) vals.journal_id = j.id;
        }
        // A draft with an invoice date already carries its number (odoo-api.md §D); otherwise '/'.
        if ((!vals.name || vals.name === '/') && typeof vals.invoice_date === 'string') vals.name = invoiceSequence(env, type, vals.invoice_date);
      },
      beforeWrite: (env, ids, vals) => {
        const allowedOnPosted = new Set(['ref', 'narration', 'payment_reference', 'invoice_date_due', 'state', 'payment_state', 'name', 'posted_before']);
        for (const id of ids) {
          const m = env.browse('account.move', id);
          if (m.state === 'posted' && Object.keys(vals).some((k) => !allowedOnPosted.has(k)) && !env.su) {
            throw userError('You cannot modify a posted entry of this journal because it is in strict mode.');
          }
        }
      },
      beforeUnlink: (env, ids) => {
        for (const id of ids) if (env.browse('account.move', id).posted_before) throw userError('You cannot delete an entry which has been posted once.');
      },
    },
    'account.move.line': {
      beforeCreate: (env, vals) => {
        const p = typeof vals.product_id === 'number' ? env.table('product.product').get(vals.product_id) : undefined;
        const t = templateOf(env, p);
        const move = env.table('account.move').get(vals.move_id as number);
        if (p && t) {
          if (vals.name === undefined) vals.name = env.displayName('product.product', p);
          if (vals.price_unit === undefined) vals.price_unit = String(move?.move_type ?? '').startsWith('in_') ? t.standard_price : t.list_price;
          if (vals.product_uom_id === undefined) vals.product_uom_id = t.uom_id;
        }
        if (move?.state === 'posted' && !env.su) throw userError('You cannot modify a posted entry of this journal because it is in strict mode.');
      },
    },
    'product.template': {
      afterCreate: (env, id, vals) => {
        if (env.context.create_product_product === false) return;
        env.sudo().withContext({ create_product_product: false }).createInternal('product.product', {
          product_tmpl_id: id, default_code: vals.default_code ?? false, barcode: vals.barcode ?? false,
        });
      },
      inverse: {
        default_code: (env, id, v) => {
          for (const p of env.table('product.product').values()) if (p.product_tmpl_id === id) env.db.update('product.product', p.id, { default_code: v || false });
        },
        barcode: (env, id, v) => {
          const variants = [...env.table('product.product').values()].filter((p) => p.product_tmpl_id === id);
          for (const p of variants) env.db.update('product.product', p.id, { barcode: v || false });
          checkBarcodes(env, variants.map((p) => p.id));
        },
      },
    },
    'product.product': {
      afterCreate: (env, id) => checkBarcodes(env, [id]),
      afterWrite: (env, ids, vals) => { if (vals.barcode !== undefined) checkBarcodes(env, ids); },
    },
  };
}

/** `action_post` of one entry: partner and lines checked, numbered, posted. */
function postMove(env: Env, id: number): void {
  const m = env.table('account.move').get(id)!;
  if (m.state === 'posted') throw userError(`The entry ${String(m.name)} (id ${id}) is already posted.`);
  const isInvoice = String(m.move_type) !== 'entry';
  if (isInvoice && typeof m.partner_id !== 'number') {
    const label = String(m.move_type).startsWith('in_') ? 'Vendor' : 'Customer';
    const doc = { out_invoice: 'Customer Invoice', out_refund: 'Customer Credit Note', in_invoice: 'Vendor Bill', in_refund: 'Vendor Credit Note' }[String(m.move_type)] ?? 'Invoice';
    throw userError(`The field '${label}' is required, please complete it to validate the ${doc}.`);
  }
  const lines = env.rowsBy('account.move.line', 'move_id', id).filter((l) => (l.display_type ?? 'product') === 'product');
  if (lines.length === 0) throw userError('You need to add a line before posting.');
  const invoiceDate = (m.invoice_date as string) || env.nowString().slice(0, 10);
  const name = !m.name || m.name === '/' ? invoiceSequence(env, String(m.move_type), invoiceDate) : m.name;
  env.db.update('account.move', id, { state: 'posted', posted_before: true, name, ...(isInvoice ? { invoice_date: invoiceDate, invoice_date_due: m.invoice_date_due || invoiceDate } : {}), date: isInvoice ? invoiceDate : m.date });
}

export function registerMiscMethods(reg: MethodRegistry, chatterModels: readonly string[]): void {
  reg.add('account.move', 'action_post', {
    api: 'multi', owner: 'AccountMove', params: [],
    run: (env, _m, ids) => {
      env.checkAccess('account.move', 'write');
      env.assertExists('account.move', ids);
      for (const id of ids) postMove(env, id);
      return false; // `action_post` returns False in 16/17/18 (odoo-api.md §B.3)
    },
  });
  // The credit-note wizard (account.move.reversal): 17+ `refund_moves` (a draft credit note per
  // move) and `modify_moves` (the credit note posted against the move, which is then "reversed",
  // plus a new draft copy of it to correct), both `reverse_moves(is_modify)`; 16 `reverse_moves`
  // with `refund_method` refund / cancel (posted credit note) / modify (and the new draft).
  const reverse = (env: Env, m: string, ids: number[], method: 'refund' | 'cancel' | 'modify'): unknown => {
    const w = env.table(m).get(env.ensureOne(m, ids))!;
    const moveIds = (w.move_ids as number[] | undefined)?.length ? (w.move_ids as number[]) : ((env.context.active_ids as number[] | undefined) ?? []);
    const moves = moveIds.map((id) => env.browse('account.move', id));
    if (moves.length === 0 || moves.some((mv) => mv.state !== 'posted')) throw userError('You can only reverse posted moves.');
    const created: number[] = [];
    for (const mv of moves) {
      const reverseType = ({ out_invoice: 'out_refund', out_refund: 'out_invoice', in_invoice: 'in_refund', in_refund: 'in_invoice' } as Record<string, string>)[String(mv.move_type)] ?? 'entry';
      const lines = env.rowsBy('account.move.line', 'move_id', mv.id).filter((l) => (l.display_type ?? 'product') === 'product');
      // `copy()` with include_business_fields: the lines keep their sale order lines.
      const copyLines = (): unknown[] => lines.map((l) => [0, 0, {
        product_id: l.product_id, name: l.name, quantity: l.quantity, price_unit: l.price_unit, discount: l.discount,
        tax_ids: [[6, 0, (l.tax_ids as number[] | undefined) ?? []]], product_uom_id: l.product_uom_id, sale_line_ids: [[6, 0, (l.sale_line_ids as number[] | undefined) ?? []]],
      }]);
      const reason = typeof w.reason === 'string' && w.reason ? w.reason : '';
      const credit = env.sudo().createInternal('account.move', {
        move_type: reverseType, partner_id: mv.partner_id, journal_id: mv.journal_id, currency_id: mv.currency_id, invoice_origin: mv.invoice_origin,
        reversed_entry_id: mv.id, ref: reason ? `Reversal of: ${String(mv.name)}, ${reason}` : `Reversal of: ${String(mv.name)}`,
        date: w.date, invoice_date: w.date, invoice_line_ids: copyLines(),
      });
      if (method === 'refund') {
        created.push(credit);
        continue;
      }
      postMove(env.sudo(), credit);
      env.db.update('account.move', mv.id, { payment_state: 'reversed' });
      if (method === 'modify') {
        // The new draft: a copy of the move (`ref` is copy=False), lines with their sale order lines.
        created.push(env.sudo().createInternal('account.move', {
          move_type: mv.move_type, partner_id: mv.partner_id, journal_id: mv.journal_id, currency_id: mv.currency_id, invoice_origin: mv.invoice_origin,
          date: w.date, invoice_line_ids: copyLines(),
        }));
      } else created.push(credit);
    }
    env.db.update(m, w.id as number, { new_move_ids: created });
    return created.length === 1
      ? { name: 'Reverse Moves', type: 'ir.actions.act_window', res_model: 'account.move', view_mode: 'form', res_id: created[0] }
      : { name: 'Reverse Moves', type: 'ir.actions.act_window', res_model: 'account.move', view_mode: env.version >= 18 ? 'list,form' : 'tree,form', domain: [['id', 'in', created]] };
  };
  reg.add('account.move.reversal', 'reverse_moves', {
    api: 'multi', owner: 'AccountMoveReversal', params: [{ name: 'is_modify', default: false }],
    run: (env, m, ids, a) => {
      if (env.version >= 17) return reverse(env, m, ids, a.is_modify === true ? 'modify' : 'refund');
      const method = String(env.table(m).get(env.ensureOne(m, ids))!.refund_method ?? 'refund');
      return reverse(env, m, ids, method === 'cancel' || method === 'modify' ? method : 'refund');
    },
  });
  reg.add('account.move.reversal', 'refund_moves', {
    api: 'multi', owner: 'AccountMoveReversal', params: [], versions: [17, 18, 19],
    run: (env, m, ids) => reverse(env, m, ids, 'refund'),
  });
  reg.add('account.move.reversal', 'modify_moves', {
    api: 'multi', owner: 'AccountMoveReversal', params: [], versions: [17, 18, 19],
    run: (env, m, ids) => reverse(env, m, ids, 'modify'),
  });
  reg.add('account.move', 'button_draft', {
    api: 'multi', owner: 'AccountMove', params: [],
    run: (env, _m, ids) => {
      env.assertExists('account.move', ids);
      for (const id of ids) {
        const m = env.table('account.move').get(id)!;
        if (!['posted', 'cancel'].includes(m.state as string)) throw userError('Only posted/cancelled journal entries can be reset to draft.');
        env.db.update('account.move', id, { state: 'draft' });
      }
      return undefined;
    },
  });
  reg.add('account.move', 'button_cancel', {
    api: 'multi', owner: 'AccountMove', params: [],
    run: (env, _m, ids) => {
      env.assertExists('account.move', ids);
      const moves = ids.map((id) => env.table('account.move').get(id)!);
      if (env.version >= 17) {
        // 17+: "Shortcut to move from posted to cancelled directly": posted entries are reset to
        // draft (button_draft) first; anything then not draft (cancelled) is refused.
        for (const m of moves) if (m.state === 'posted') env.db.update('account.move', m.id, { state: 'draft' });
        if (ids.some((id) => env.table('account.move').get(id)!.state !== 'draft')) throw userError('Only draft journal entries can be cancelled.');
      }
      // 16: `self.write({'auto_post': 'no', 'state': 'cancel'})` whatever the state.
      for (const id of ids) env.db.update('account.move', id, { state: 'cancel' });
      return undefined;
    },
  });

  // mail.thread.message_post(self, *, body='', subject=None, message_type='notification', …, **kwargs)
  // returns the new mail.message: its id over JSON-RPC, `[id]` over JSON-2 (returnsRecord).
  reg.addChatter(chatterModels, 'message_post', {
    api: 'multi', owner: 'MailThread', kwOnly: true, varKw: true, returnsRecord: true,
    params: [
      { name: 'body', default: '' }, { name: 'subject', default: null }, { name: 'message_type', default: 'notification' },
      { name: 'subtype_xmlid', default: null }, { name: 'subtype_id', default: false }, { name: 'partner_ids', default: null },
      { name: 'author_id', default: null }, { name: 'body_is_html', default: false },
    ],
    run: (env, model, ids, a) => {
      const id = env.ensureOne(model, ids);
      env.checkAccess(model, 'read');
      const row = env.table(model).get(id)!;
      const messageType = String(a.message_type ?? 'notification');
      if (!['email', 'comment', 'notification', 'auto_comment', 'email_outgoing'].includes(messageType)) {
        throw valueError(`Posting a message with message_type ${messageType} is not allowed`);
      }
      // 16 stores the body as HTML (`'body': body`); 17+ escapes a str (`'body': escape(body)`)
      // unless `body_is_html` (every emulator user is internal, the condition Odoo puts on it).
      // Then mail.message's Html field sanitizes it (html-body.ts). Line breaks stay whitespace.
      const raw = String(a.body ?? '');
      const body = sanitizeHtml(env.version >= 17 && a.body_is_html !== true ? escapeMarkup(raw) : raw);
      const xmlid = typeof a.subtype_xmlid === 'string' ? a.subtype_xmlid : 'mail.mt_note';
      const subtype = typeof a.subtype_id === 'number' ? a.subtype_id : lookupXmlid(env, xmlid)?.res_id ?? false;
      const user = env.table('res.users').get(env.uid);
      return env.sudo().createInternal('mail.message', {
        model, res_id: id, record_name: env.displayName(model, row), body, subject: a.subject ?? false, message_type: messageType,
        subtype_id: subtype, author_id: typeof a.author_id === 'number' ? a.author_id : user?.partner_id ?? false,
        partner_ids: Array.isArray(a.partner_ids) ? [[6, 0, a.partner_ids]] : [],
      });
    },
  });

  // ir.model.data.check_object_reference: public @api.model; ACL-free lookup of the xmlid, then
  // `self.env[model].search([('id', '=', res_id)])` as the user (§B.4): a record the search does not
  // return — archived (active_test), or gone — answers [model, False], or an AccessError with
  // raise_on_access_error; a model the user may not read at all raises search's AccessError.
  reg.add('ir.model.data', 'check_object_reference', {
    api: 'model', owner: 'IrModelData', params: [{ name: 'module' }, { name: 'xml_id' }, { name: 'raise_on_access_error', default: false }],
    run: (env, _m, _ids, a) => {
      const xmlid = `${String(a.module)}.${String(a.xml_id)}`;
      const found = lookupXmlid(env, xmlid);
      if (!found || !found.res_id) throw valueError(`External ID not found in the system: ${xmlid}`);
      if (env.search(found.model, [['id', '=', found.res_id]]).length > 0) return [found.model, found.res_id];
      if (a.raise_on_access_error) throw accessError(`Not enough access rights on the external ID '${xmlid}'`);
      return [found.model, false];
    },
  });

  reg.add('res.users', 'context_get', {
    api: 'model', owner: 'Users', params: [],
    run: (env) => {
      const u = env.table('res.users').get(env.uid);
      return { lang: u?.lang ?? 'en_US', tz: u?.tz ?? 'Europe/Brussels', uid: env.uid };
    },
  });
}
