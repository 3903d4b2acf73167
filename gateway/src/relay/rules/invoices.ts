import { addByExternalId, read, searchRead, type OdooRecord } from '../odoo/odoo-calls.ts';
import type { OdooApi } from '../odoo/odoo-client.ts';
import { failureOf, odooError } from '../odoo/odoo-error.ts';

/**
 * The gateway's draft customer invoice of an accession: `account.move` out_invoice with `ref` =
 * `lab-gateway <accession>` (D: a draft may already carry a name or '/', so never match on `name`)
 * and the external id `lab_gateway.inv_<accession>`, created with it in one `load()`. Finance may
 * type the clinic's own reference over `ref`: an accession the reference search misses is looked
 * up by that external id (one `check_object_reference` per miss) before anything is created.
 */
export const INVOICE_FIELDS = ['id', 'name', 'ref', 'state', 'move_type', 'posted_before'];

/**
 * A draft the gateway may still add lines to: never posted. An invoice finance reset to draft
 * (`button_draft`) carries its number and was sent; it is theirs to correct and post again as it was.
 */
export function openDraft(move: OdooRecord | undefined): boolean {
  return move?.['state'] === 'draft' && move['posted_before'] !== true;
}

/**
 * A customer invoice that went out: posted, or posted once and reset to draft by finance
 * (`posted_before`: it keeps its number, and the patient has it as it was). The gateway changes
 * neither: an add-on gets an invoice of its own (above), a cancelled test's line is left for
 * finance (order-cancelled.ts takeOffInvoices).
 */
export function issued(move: OdooRecord | undefined): boolean {
  return move?.['state'] === 'posted' || (move?.['state'] === 'draft' && move['posted_before'] === true);
}

export function invoiceRef(accession: string): string {
  return `lab-gateway ${accession}`;
}

export async function gatewayInvoices(odoo: OdooApi, accessions: string[]): Promise<Map<string, OdooRecord>> {
  const unique = [...new Set(accessions)];
  const out = new Map<string, OdooRecord>();
  if (unique.length === 0) return out;
  const rows = await searchRead(odoo, 'account.move', [['move_type', '=', 'out_invoice'], ['ref', 'in', unique.map(invoiceRef)]], INVOICE_FIELDS, { order: 'id' });
  for (const acc of unique) {
    // Tests added after the first invoice was posted get an invoice of their own, with the same
    // ref: the draft one never posted is the one that can still take lines.
    const mine = rows.filter((m) => m['ref'] === invoiceRef(acc));
    const row = mine.filter(openDraft).at(-1) ?? mine.filter((m) => m['state'] === 'draft').at(-1) ?? mine[0];
    if (row) out.set(acc, row);
  }
  await addByExternalId(odoo, out, unique, 'inv', 'account.move', INVOICE_FIELDS);
  return out;
}

/** Invoice lines that bill a product (not taxes, sections, notes or the payment term). */
export function isProductLine(line: OdooRecord): boolean {
  const t = line['display_type'];
  return !t || t === 'product';
}

/**
 * A change to a draft invoice the gateway read (lines added or taken off, the draft cancelled)
 * that Odoo refused on its merits: when the invoice is no longer a draft the gateway may change
 * (finance posted it, or deleted it, between the gateway's read and its write), the refusal is not
 * the event's: it is retried (transient), and the next attempt reads the invoice again and takes
 * the way for a posted invoice (an add-on billed on an invoice of its own, a cancelled test's dead
 * letter asking for a credit note). Any other failure, or a refusal of a draft still open, is
 * returned as it is. Before, Odoo's "You cannot modify a posted entry" was the event's dead letter:
 * discarded, the add-on was never billed (test/integration/billing-draft-posted-meanwhile-audit.test.ts).
 */
export async function changedSinceRead(odoo: OdooApi, moveId: number, err: unknown): Promise<unknown> {
  if (failureOf(err) !== 'permanent') return err;
  let move: OdooRecord | undefined;
  try {
    [move] = await read(odoo, 'account.move', [moveId], INVOICE_FIELDS);
  } catch {
    return err;
  }
  if (openDraft(move)) return err;
  const now = move ? `${String(move['state'])}${move['posted_before'] === true ? ' (posted before)' : ''}` : 'deleted';
  const why = err instanceof Error ? err.message : String(err);
  return odooError('transient', `invoice ${String(move?.['name'] || moveId)} was a draft when the gateway read it and is ${now} in Odoo now (finance changed it meanwhile): Odoo refused the change (${why}); the next attempt reads it again`, { model: 'account.move' }, err);
}
