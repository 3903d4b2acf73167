/**
 * What the connected server's models actually have, from `fields_get` at start-up (odoo-api.md B:
 * "Always call fields_get once per model at start-up and adapt"). Rules never send a field the
 * server lacks: `filter()` drops it (one2many command rows are filtered against the relation).
 */
export interface FieldInfo {
  type: string;
  relation?: string;
  required?: boolean;
}

export type ModelFields = Record<string, FieldInfo>;

export class FieldMap {
  readonly #models = new Map<string, ModelFields>();
  readonly #missingModels = new Set<string>();

  set(model: string, fields: ModelFields | undefined): void {
    if (fields === undefined) {
      this.#missingModels.add(model);
      this.#models.delete(model);
    } else {
      this.#models.set(model, fields);
      this.#missingModels.delete(model);
    }
  }

  known(model: string): boolean {
    return this.#models.has(model);
  }

  /** Model checked and absent on the server (module not installed). */
  missing(model: string): boolean {
    return this.#missingModels.has(model);
  }

  /** Unknown models (never checked) are assumed to have the field. */
  has(model: string, field: string): boolean {
    const m = this.#models.get(model);
    return m === undefined ? !this.#missingModels.has(model) : field in m;
  }

  info(model: string, field: string): FieldInfo | undefined {
    return this.#models.get(model)?.[field];
  }

  /** First of the candidates the model has (e.g. 'product_uom_id', 'product_uom'). */
  pick(model: string, ...candidates: string[]): string | undefined {
    return candidates.find((c) => this.has(model, c));
  }

  /** Drop fields the server lacks; recurse into one2many/many2many `[0, 0, vals]` commands. */
  filter(model: string, vals: Record<string, unknown>): Record<string, unknown> {
    const m = this.#models.get(model);
    if (m === undefined) return vals;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(vals)) {
      const info = m[k];
      if (info === undefined) continue;
      if (info.relation && Array.isArray(v) && (info.type === 'one2many' || info.type === 'many2many')) {
        out[k] = v.map((cmd: unknown) =>
          Array.isArray(cmd) && cmd[0] === 0 && cmd[2] && typeof cmd[2] === 'object' ? [0, cmd[1] ?? 0, this.filter(info.relation!, cmd[2] as Record<string, unknown>)] : cmd,
        );
      } else {
        out[k] = v;
      }
    }
    return out;
  }

  /** Fields of a model that exist, from a wish list (for search_read `fields`). */
  existing(model: string, fields: string[]): string[] {
    return fields.filter((f) => this.has(model, f));
  }
}

/** Models the rules use; fields_get runs on each at connect. */
export const RELAY_MODELS = [
  'res.partner',
  'product.product',
  // The vendor lines of the RFQ rule: the unit field drifts (≤18 `product_uom`, 19 `product_uom_id`).
  'product.supplierinfo',
  'sale.order',
  'sale.order.line',
  'stock.picking',
  'stock.move',
  'stock.move.line',
  'stock.lot',
  'stock.quant',
  'stock.location',
  'stock.picking.type',
  'stock.warehouse.orderpoint',
  'uom.uom',
  'purchase.order',
  'purchase.order.line',
  'account.move',
  'account.move.line',
] as const;
