/** Shared types of the Odoo emulator. */

export const ODOO_VERSIONS = [16, 17, 18, 19] as const;
export type OdooVersion = (typeof ODOO_VERSIONS)[number];

/** One stored record: column name → value (many2one: id | false; many2many: id[]; one2many: not stored). */
export type Row = { id: number } & Record<string, unknown>;

export type FieldType =
  | 'char' | 'text' | 'html' | 'integer' | 'float' | 'monetary' | 'boolean'
  | 'date' | 'datetime' | 'selection' | 'many2one' | 'one2many' | 'many2many';

/** Read-time context handed to computed fields and defaults. */
export interface ComputeEnv {
  readonly version: OdooVersion;
  now(): Date;
  table(model: string): Map<number, Row>;
  /** Rows of `model` whose `field` equals `value`, ordered by id (indexed where it matters). */
  rowsBy(model: string, field: string, value: unknown): Row[];
  /** Value of a (stored or computed) field of another record. */
  value(model: string, row: Row, field: string): unknown;
  context: Record<string, unknown>;
}

export interface FieldSpec {
  type: FieldType;
  string: string;
  relation?: string;
  /** one2many: the many2one on `relation` pointing back. */
  inverse?: string;
  selection?: ReadonlyArray<readonly [string, string]>;
  required?: boolean;
  readonly?: boolean;
  /** Versions the field exists in; absent = every version. */
  versions?: readonly OdooVersion[];
  default?: unknown | ((env: ComputeEnv, vals: Record<string, unknown>) => unknown);
  /** Non-stored computed field (evaluated at read and search time). */
  compute?: (env: ComputeEnv, row: Row) => unknown;
  /** Stored field of the `_inherits` parent (product.product → product.template). */
  delegated?: boolean;
  /** `translate=True`: read and searched in the request's language (translations.ts). */
  translate?: boolean;
  /**
   * Float `digits='<decimal.precision name>'`: a value written is rounded (half-up) to that
   * precision's digits, as the ORM's convert_to_cache does ('Product Unit of Measure' ≤18,
   * 'Product Unit' 19; 2 digits unless changed in decimal.precision).
   */
  digits?: string;
}

export interface ModelSpec {
  name: string;
  /** `_description`, used in access-error messages. */
  description: string;
  /** `_rec_name`; display_name falls back to it. */
  recName?: string;
  displayName?: (env: ComputeEnv, row: Row) => string;
  /** `_order`. */
  order?: string;
  fields: Record<string, FieldSpec>;
  /** Versions the model exists in; absent = every version. */
  versions?: readonly OdooVersion[];
  /** `_inherits = {parent: field}` (only product.product → product.template). */
  inherits?: { model: string; field: string };
  /** Transient (wizard) models. */
  transient?: boolean;
  /** Rights of a non-admin bot: 'full' (create/write), 'read' (read only), 'none'. */
  botRights: 'full' | 'read' | 'none';
  /** Has the mail.thread chatter (message_post). */
  chatter?: boolean;
}

/**
 * Site settings of the emulated database that change business rules. Mutable at run time (an
 * administrator ticks a box in Settings while the gateway runs); `reset()` keeps them.
 */
export interface EmulatorSettings {
  /**
   * Sales → "Lock Confirmed Sales" (the implied group `sale.group_auto_done_setting`): a confirmed
   * order is locked — 17+ `locked = True` (`sale.order.action_confirm` → `action_lock`), 16 state
   * `done` (`action_done`). The group is read on the order's creator (17+ `_should_be_locked`) or the
   * confirming user (16); the setting gives it to every internal user, so here it is one flag.
   */
  lockConfirmedSales: boolean;
}
