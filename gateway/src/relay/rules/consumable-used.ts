import type { ConsumableUsedData } from '../../events/types.ts';
import type { StoredEvent } from '../../store/types.ts';
import { create, m2oId, read, searchRead } from '../odoo/odoo-calls.ts';
import { failureOf, isLinkDown, mappingMissing, mayHaveLanded, needsOperator, odooError } from '../odoo/odoo-error.ts';
import { odooTime, type DebitLine, type LotRef, type PostedDebit, type ProductRef, type QuantRef } from '../reference-data.ts';
import { ConsumptionCarry, type PlannedSegment, type SegmentLine } from './consumption-carry.ts';
import { ConsumptionSegments } from './consumption-segments.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';

/**
 * consumable.used → ONE consumption `stock.picking` per analyzer per batch: lab location →
 * consumption location, one move per product, one move line per lot, created in one call with
 * picking-level `move_line_ids` (D: "consumption in two calls"; nested lines lose picking_id), then
 * `button_validate` and a re-read of `state` (a returned wizard dict means NOT done, B.1 step 4).
 *
 * Lots and locations: the lab's stock is the lab location and its children (a fridge, a shelf).
 * Each move line names the quant it draws from: its lot AND its location (the move and the picking
 * keep the lab location as source; Odoo takes a child location on a move line). The analyzer's lot
 * when it gave one, from the location(s) holding it; otherwise FEFO over the unexpired lots. The
 * batch's products' lab quants are read again from Odoo first (one `search_read` per batch): a
 * count, a scrap or a transfer done in Odoo since the last pull is seen before lots are chosen.
 * What earlier events of the batch took (reported lots included) is subtracted before later
 * events choose.
 *
 * Partitions are per analyzer and product (`reagent:<analyzer>:<product>`, events/keys.ts), so one
 * dead-lettered reagent blocks only itself; the rule batches across partitions and groups the
 * batch by analyzer. Identity is per partition segment, not per batch: a *segment* is the
 * consecutive events of one partition in this call, and its move carries the origin
 * `lab-gateway:cons:<head event id>:<count>`. The store leases a partition from its first
 * unresolved event and a segment's events share one create (all posted or none), so after a crash
 * or an ambiguous answer the partition's new head is either a posted segment's head — found by
 * that prefix, covering exactly <count> events, then the look-up repeats from the next event — or
 * an event that was never posted. Which other partitions share the batch does not matter.
 * A segment spanning several products (a partition `consumption:<analyzer>` of the earlier
 * scheme) marks each of its moves; pickings made under that scheme carried the marker on the
 * picking's origin and are looked up there too.
 */
export const CONSUMPTION_ORIGIN_PREFIX = 'lab-gateway:cons:';
/** Partition keys of the earlier per-analyzer scheme (events still queued at an upgrade). */
const LEGACY_PARTITION_PREFIX = 'consumption:';

/** A quantity drawn from one quant: its lot (none for an untracked product) and its location. */
interface Draw {
  lotId?: number;
  locationId: number;
  qty: number;
}
interface Planned {
  e: StoredEvent;
  product: ProductRef;
  lots: Draw[];
}
/** Consecutive events of one partition in this call: one product, or several in a partition of the earlier scheme. */
interface Segment {
  analyzer: string;
  planned: Planned[];
}

/**
 * The consumption batch posting now, per reference data (one per relay): the next batch waits for
 * it. A round with more than one batch's worth (more than 500 events after an outage) posts its
 * batches side by side; each read the lab's lots before the other's picking was done and chose
 * FEFO on its own, so both drew the first-expiring lot's stock: the stock keeper found that lot
 * at −300 and the next one untouched (test/integration/relay-consumption-concurrent-audit.test.ts).
 * One after the other, the second batch's read of the quants holds the first batch's picking.
 * Its cost is within the relay bench's noise (bench/relay.ts, 10k and 100k queued: 33.8× and
 * 34.8× the naive peer with it, 33.4× and 32.0× without): a round's consumption batches are few.
 * Narrower would be one turn per product code (quants, lots and debits are per product); the
 * look-up of step 1 cannot leave it, as it validates found pickings (stock moves).
 */
const posting = new WeakMap<object, Promise<unknown>>();

export const consumableUsedRule: PostingRule = {
  name: 'consumable-used',
  types: ['consumable.used'],
  maxBatch: 500,
  crossPartition: true,
  post(ctx, events) {
    // The stored turn never rejects (caught below): the next batch runs whatever this one gave.
    const mine = (posting.get(ctx.ref) ?? Promise.resolve()).then(() => postConsumption(ctx, events));
    posting.set(ctx.ref, mine.catch(() => undefined));
    return mine;
  },
};

async function postConsumption(ctx: RuleContext, events: StoredEvent[]): Promise<Map<string, RuleResult>> {
  const results = new Map<string, RuleResult>();
  const data = (e: StoredEvent): ConsumableUsedData => e.event.data as ConsumableUsedData;
  // Runs: the consecutive events of each partition, in partition order.
  const runs = new Map<string, StoredEvent[]>();
  for (const e of events) {
    const run = runs.get(e.event.partitionKey) ?? [];
    run.push(e);
    runs.set(e.event.partitionKey, run);
  }
  // 1. Always look up first, even for events never attempted: a link failure after the picking
  //    was created (e.g. a proxy 504 on button_validate) releases the lease without marking it.
  //    A segment found in a picking not done yet is validated (once per picking).
  const validated = new Map<number, { doneAt: string | undefined } | { error: unknown }>();
  // What Odoo's precision left of earlier consumption, and segments that posted nothing (consumption-carry.ts).
  const carry = await ConsumptionCarry.load(ctx.ref);
  // Segments left in Odoo without their picking validated, with the events each covers (consumption-segments.ts).
  const book = await ConsumptionSegments.load(ctx.ref);
  const { segments: found, local, left } = await walkPosted(ctx, runs, book, async (hit, head, covered, via) => {
    const segHead = via?.head ?? head.event.id;
    // Cancelled in Odoo, its head discarded: the stock keeper's cancellation stands for every run
    // of it (given back to the carry once, when first found cancelled).
    if (hit.state === 'cancel' && via) {
      carry.notFound(segHead);
      return { cancelled: true };
    }
    if (!validated.has(hit.pickingId)) {
      validated.set(
        hit.pickingId,
        await ensureDone(ctx, hit.pickingId, hit.state, hit.doneAt).then(
          (doneAt) => ({ doneAt }),
          (err: unknown) => ({ error: err ?? new Error('validation failed') }),
        ),
      );
    }
    const outcome = validated.get(hit.pickingId)!;
    if (!('error' in outcome)) {
      // Done: what the segment did to the carry stands.
      carry.found(segHead);
      return { doneAt: outcome.doneAt };
    }
    // Left unvalidated: the events after its head wait behind it; recorded, so that they are
    // found in it should an operator discard the head.
    if (!via) book.record(segHead, hit.count, covered.map((e) => e.event.id), ctx.now());
    // A picking cancelled in Odoo moved nothing: what its segment took from the carry is given
    // back (once: its record goes; a replay finds it cancelled again and takes nothing).
    if (hit.state === 'cancel') {
      carry.notFound(segHead);
      results.set(head.event.id, fail(cancelledPicking(hit, head, covered.length)));
    } else results.set(head.event.id, fail(outcome.error));
    // Only this partition waits (its head is in a picking Odoo has not validated yet).
    return 'drop';
  }, (head) => carry.covered(head.event.id));
  const posted = found.filter((f) => !f.cancelled);
  // A segment sent before and not in Odoo never landed: what it took from the carry is given back.
  for (const run of left.values()) carry.notFound(run[0]!.event.id);
  for (const { note, events: covered } of local) for (const e of covered) results.set(e.event.id, ok(undefined, note ?? 'below Odoo\'s precision of stock quantities: nothing posted, carried'));
  for (const { hit, events: covered, via } of posted) {
    const note = via ? `found in Odoo (in the consumption segment headed by ${via.head}, an event discarded)` : 'found in Odoo';
    for (const e of covered) results.set(e.event.id, ok([{ model: 'stock.picking', id: hit.pickingId, name: hit.name }], note));
  }
  for (const { hit, events: covered, via } of found.filter((f) => f.cancelled)) {
    const note =
      `not booked: consumption picking ${hit.name || hit.pickingId} holding this run (${segmentOrigin(via!.head, hit.count)}) was cancelled in Odoo, ` +
      `and the event heading it (${via!.head}) was discarded: the gateway keeps to the cancellation for every run of that picking`;
    for (const e of covered) results.set(e.event.id, ok([{ model: 'stock.picking', id: hit.pickingId, name: hit.name }], note));
  }
  // The consumption of a segment found in Odoo is debited from the local stock as a fresh
  // picking's is: a lost answer to the validation must not make the stock watch forget it.
  if (posted.length > 0) await debitFound(ctx, posted.map((p) => p.found));
  await book.save(ctx.now()).catch((err: unknown) => ctx.log.warn('could not record the consumption segments left unvalidated', { error: err instanceof Error ? err.message : String(err) }));
  // 2. The lab stock of the batch's products as Odoo holds it now (one read for all of them;
  //    it also holds the segments found above, whose debits it does not apply again).
  await refreshBatchStock(ctx, events.map((e) => data(e).productCode));
  // 3. Resolve every line. A partition stops at its first event that cannot be posted (FIFO:
  //    its later events wait behind it); the other partitions go on.
  const byAnalyzer = new Map<string, Segment[]>();
  // analyzer|product → the segment whose move carries that product in the analyzer's picking.
  const owner = new Map<string, Segment>();
  // What this batch draws per quant (product, lot, location), subtracted before the next choice.
  const taken = new Map<string, number>();
  // Events of quantity 0, with their note.
  const nothingUsed = new Map<string, string>();
  const noteOf = (id: string, note: string | undefined): string | undefined => {
    const zero = nothingUsed.get(id);
    return zero === undefined ? note : note === undefined ? zero : `${zero}; ${note}`;
  };
  for (const run of left.values()) {
    let segment: Segment | undefined;
    for (const e of run) {
      const d = data(e);
      try {
        const product = await ctx.ref.product(d.productCode, 'reagent/consumable');
        if (segment && segment.analyzer !== d.analyzer) break; // partitions are per analyzer: not expected
        const key = `${d.analyzer}|${product.id}`;
        const held = owner.get(key);
        // One move per product per picking: a product another partition already brings to this
        // analyzer's picking (only when partitions of both schemes meet, at an upgrade) waits.
        if (held && held !== segment) break;
        const lab = await ctx.ref.location(ctx.odooConfig.mapping.labLocation, 'odoo.mapping.labLocation');
        const lots = await chooseLots(ctx, product, d, lab.id, taken);
        if (!segment) {
          segment = { analyzer: d.analyzer, planned: [] };
          byAnalyzer.set(d.analyzer, [...(byAnalyzer.get(d.analyzer) ?? []), segment]);
        }
        owner.set(key, segment);
        segment.planned.push({ e, product, lots });
        // Kept in its segment (its count must cover it), drawing nothing: said in its note.
        if (d.quantity === 0) nothingUsed.set(e.event.id, `quantity 0 of ${product.code}: nothing used, nothing posted`);
      } catch (err) {
        results.set(e.event.id, fail(err));
        break;
      }
    }
  }
  // 4. Each segment's lines rounded to Odoo's precision of quantities with the carry of their
  //    product and lot (consumption-carry.ts); a segment left with nothing to post is delivered
  //    with a note. The carry is written before anything is sent.
  const toPost = new Map<string, Array<{ segment: Segment; plan: PlannedSegment }>>();
  if (byAnalyzer.size > 0) {
    const { digits } = await ctx.ref.quantityDigits();
    const lotName = (productId: number, lotId: number): string | undefined => ctx.ref.lotsOf(productId).find((l) => l.id === lotId)?.name;
    for (const [analyzer, segments] of byAnalyzer) {
      for (const s of segments) {
        const head = s.planned[0]!.e.event.id;
        const plan = carry.plan(head, s.planned.length, segmentLines(s), digits, ctx.now(), lotName);
        if (plan.lines.length === 0) {
          for (const p of s.planned) results.set(p.e.event.id, ok(undefined, noteOf(p.e.event.id, plan.note)));
          continue;
        }
        toPost.set(analyzer, [...(toPost.get(analyzer) ?? []), { segment: s, plan }]);
      }
    }
    await carry.save(ctx.now());
  }
  // 5. One picking per analyzer; a failure there concerns only that picking's events.
  for (const [analyzer, segments] of toPost) {
    const heads = segments.map((s) => s.segment.planned[0]!.e.event.id);
    let picking: { id: number } | undefined;
    try {
      picking = await createPicking(ctx, analyzer, segments);
      const doneAt = await ensureDone(ctx, picking.id, 'draft');
      // Not before: a picking created and not validated may still be cancelled in Odoo (its
      // segments' records then give the carry back when it is found so, step 1).
      carry.settled(heads);
      for (const h of heads) book.covered(h);
      // Debited once per segment marker (the same segment found again later is not debited twice).
      await ctx.ref.debitPosted(
        segments.map(({ segment: s, plan }) => ({
          marker: segmentOrigin(s.planned[0]!.e.event.id, s.planned.length),
          ...(doneAt ? { doneAt } : {}),
          lines: plan.lines.map((l) => ({ productId: l.product.id, ...(l.lotId === undefined ? {} : { lotId: l.lotId }), locationId: l.locationId, qty: l.qty })),
        })),
      );
      for (const { segment: s, plan } of segments) for (const p of s.planned) results.set(p.e.event.id, ok([{ model: 'stock.picking', id: picking.id }], noteOf(p.e.event.id, plan.note)));
    } catch (err) {
      // A create Odoo refused, or never sent, took nothing from the carry; one that may have
      // landed, or a picking not validated, is settled when its marker is looked up again.
      if (!picking && failureOf(err) !== 'ambiguous' && !mayHaveLanded(err)) carry.undo(heads);
      // Created (or perhaps) and not validated: only each segment's head is failed, and the events
      // after it wait; what each covers is recorded (consumption-segments.ts).
      else for (const { segment: s } of segments) book.record(s.planned[0]!.e.event.id, s.planned.length, s.planned.map((p) => p.e.event.id), ctx.now());
      for (const { segment: s } of segments) for (const p of s.planned) results.set(p.e.event.id, fail(err));
    }
  }
  await carry.save(ctx.now()).catch((err: unknown) => {
    // The deltas written before the pickings stand; a record left is settled at its next look-up or dropped with age.
    ctx.log.warn('could not record the consumption carry after posting', { error: err instanceof Error ? err.message : String(err) });
  });
  await book.save(ctx.now()).catch((err: unknown) => {
    // Recorded again when the head's picking is found unvalidated at its next attempt.
    ctx.log.warn('could not record the consumption segments left unvalidated', { error: err instanceof Error ? err.message : String(err) });
  });
  return results;
}

/** A segment's draws, per product, lot and place (product unit). */
function segmentLines(s: Segment): SegmentLine[] {
  const perLot = new Map<string, SegmentLine>();
  for (const p of s.planned) {
    for (const l of p.lots) {
      const key = `${p.product.id}:${l.lotId ?? ''}@${l.locationId}`;
      const pl = perLot.get(key) ?? { product: p.product, ...(l.lotId === undefined ? {} : { lotId: l.lotId }), locationId: l.locationId, qty: 0 };
      pl.qty += l.qty;
      perLot.set(key, pl);
    }
  }
  return [...perLot.values()];
}

/** The marker on a segment's move. */
export function segmentOrigin(headEventId: string, count: number): string {
  return `${CONSUMPTION_ORIGIN_PREFIX}${headEventId}:${count}`;
}

/** `=like` pattern for a head's marker: the id is taken literally (PostgreSQL LIKE escapes). */
function headPattern(headEventId: string): string {
  return `${CONSUMPTION_ORIGIN_PREFIX}${headEventId.replace(/[\\%_]/g, (c) => `\\${c}`)}:%`;
}

function anyOf(leaves: unknown[][]): unknown[] {
  return [...Array.from({ length: leaves.length - 1 }, () => '|'), ...leaves];
}

/**
 * Segments already in Odoo, by head event id: the move whose origin carries the head's marker
 * (or, for the earlier scheme, the picking whose origin does), with its picking and count.
 */
interface PostedSegment {
  pickingId: number;
  name: string;
  state: string;
  count: number;
  doneAt?: string;
  /** The segment's moves (those bearing its marker); none when the marker is on the picking (earlier scheme). */
  moveIds: number[];
  legacy: boolean;
}

/** What looking up posted consumption needs: the stock watch has it as well as the rule. */
type LookupContext = Pick<RuleContext, 'odoo' | 'ref' | 'log'>;

async function findPosted(ctx: LookupContext, heads: Array<{ id: string; legacy: boolean }>): Promise<Map<string, PostedSegment>> {
  const out = new Map<string, PostedSegment>();
  if (heads.length === 0) return out;
  const hits = new Map<string, { pickingId: number; count: number; moveIds: number[]; legacy: boolean }>();
  const countOf = (origin: unknown, head: string): number => Number(String(origin).slice(`${CONSUMPTION_ORIGIN_PREFIX}${head}:`.length)) || 1;
  const headOf = (origin: unknown): string | undefined => {
    const text = String(origin);
    if (!text.startsWith(CONSUMPTION_ORIGIN_PREFIX)) return undefined;
    const rest = text.slice(CONSUMPTION_ORIGIN_PREFIX.length);
    const colon = rest.lastIndexOf(':');
    return colon > 0 ? rest.slice(0, colon) : undefined;
  };
  const moves = await searchRead(ctx.odoo, 'stock.move', anyOf(heads.map((h) => ['origin', '=like', headPattern(h.id)])), ['id', 'origin', 'picking_id'], { order: 'id' });
  for (const m of moves) {
    const head = headOf(m['origin']);
    const pickingId = m2oId(m['picking_id']);
    if (head === undefined || pickingId === undefined) continue;
    const known = hits.get(head);
    // A segment of the earlier scheme spanning several products marks each of its moves.
    if (known) {
      if (known.pickingId === pickingId && known.count === countOf(m['origin'], head)) known.moveIds.push(m.id);
      continue;
    }
    hits.set(head, { pickingId, count: countOf(m['origin'], head), moveIds: [m.id], legacy: false });
  }
  const legacy = heads.filter((h) => h.legacy && !hits.has(h.id));
  if (legacy.length > 0) {
    const pickings = await searchRead(ctx.odoo, 'stock.picking', anyOf(legacy.map((h) => ['origin', '=like', headPattern(h.id)])), ['id', 'origin'], { order: 'id' });
    for (const p of pickings) {
      const head = headOf(p['origin']);
      if (head !== undefined && !hits.has(head)) hits.set(head, { pickingId: p.id, count: countOf(p['origin'], head), moveIds: [], legacy: true });
    }
  }
  if (hits.size === 0) return out;
  const pickings = await read(ctx.odoo, 'stock.picking', [...new Set([...hits.values()].map((h) => h.pickingId))], ['id', 'name', 'state', 'date_done']);
  const byId = new Map(pickings.map((p) => [p.id, p]));
  for (const [head, h] of hits) {
    const p = byId.get(h.pickingId);
    // A picking deleted in Odoo since: the look-up misses and the events are posted again.
    const doneAt = typeof p?.['date_done'] === 'string' && p['date_done'] ? p['date_done'] : undefined;
    if (p) out.set(head, { pickingId: h.pickingId, name: String(p['name'] ?? ''), state: String(p['state']), count: h.count, moveIds: h.moveIds, legacy: h.legacy, ...(doneAt ? { doneAt } : {}) });
  }
  return out;
}

/**
 * Re-read the lab quants of the batch's products (ReferenceData.refreshStock: one `search_read`,
 * the gateway's own debits applied again), so that lots are chosen from Odoo's stock as it is now.
 * Products are looked up by code first (unknown codes are reported by the event loop). A link or
 * credentials failure fails the batch as any call does; Odoo refusing the read (a bot without
 * read access to quants) leaves the last pull's quants in use.
 */
async function refreshBatchStock(ctx: RuleContext, codes: string[]): Promise<void> {
  const ids: number[] = [];
  for (const code of new Set(codes)) {
    const product = await ctx.ref.product(code, 'reagent/consumable').catch((err: unknown) => {
      if (failureOf(err) === 'auth' || isLinkDown(err)) throw err;
      return undefined;
    });
    if (product) ids.push(product.id);
  }
  try {
    await ctx.ref.refreshStock(ids);
  } catch (err) {
    if (failureOf(err) === 'auth' || isLinkDown(err)) throw err;
    ctx.log.warn('could not read the lab stock again before choosing lots: the last pull is used', { error: err instanceof Error ? err.message : String(err) });
  }
}

/**
 * The quants an event's consumption is taken from, in the product's unit: the analyzer's lot
 * (where the lab holds it), else FEFO (first expired, first out) over the unexpired lots; an
 * untracked product from its quants in the lab location and its children. `taken` holds what
 * earlier events of the batch drew per quant and is updated.
 */
async function chooseLots(ctx: RuleContext, product: ProductRef, d: ConsumableUsedData, labId: number, taken: Map<string, number>): Promise<Draw[]> {
  // The profile's unit (24 mL of a diluent stocked in L is 0.024 L); an unknown unit or one of
  // another category is a mapping error naming it.
  const quantity = await ctx.ref.toProductUnit(product, d.quantity, d.uom);
  // Profiles give more than 0 (firmware-profiles/schema.json), but an event of an earlier profile
  // or release, or a broken unit, may not: drawn as nothing, it was delivered without a word (a
  // negative "use" vanished, the profile's error unseen). Not a use of stock: the operator decides.
  if (!Number.isFinite(quantity) || quantity < 0) {
    const unit = d.uom ?? product.uomName ?? '';
    throw needsOperator(
      `quantity ${d.quantity} ${unit} of ${product.code} is not a consumption (${Number.isFinite(quantity) ? 'below 0' : `${quantity} in ${product.uomName ?? "the product's unit"}`}): the analyzer profile's consumption row must give a quantity above 0; ` +
        'correct it, then discard this event (a return to stock, if one was meant, is entered in Odoo)',
      { productCode: product.code },
    );
  }
  const quants = ctx.ref.quantsOf(product.id);
  if (product.tracking !== 'lot' && product.tracking !== 'serial') {
    return drawFrom(product.id, quants.filter((q) => q.lotId === undefined), quantity, taken, { lotId: undefined, locationId: labId });
  }
  if (d.reagentLot) {
    const lot = await ctx.ref.lotByName(product.id, d.reagentLot, product.code);
    const held = quants.filter((q) => q.lotId === lot.id);
    return drawFrom(product.id, held, quantity, taken, { lotId: lot.id, locationId: held[0]?.locationId ?? labId });
  }
  const now = ctx.now();
  const byExpiry = (a: { expiresAt?: string; id: number }, b: { expiresAt?: string; id: number }): number =>
    (a.expiresAt ? odooTime(a.expiresAt) : Infinity) - (b.expiresAt ? odooTime(b.expiresAt) : Infinity) || a.id - b.id;
  const usable = (): LotRef[] => ctx.ref.lotsOf(product.id).filter((l) => !l.expiresAt || odooTime(l.expiresAt) > now).sort(byExpiry);
  let unexpired = usable();
  let stock = quants;
  if (unexpired.length === 0) {
    // A lot received without stock since the last pull, or a pull that failed: ask Odoo before refusing.
    await ctx.ref.refreshProductStock(product.id);
    unexpired = usable();
    stock = ctx.ref.quantsOf(product.id);
  }
  if (unexpired.length === 0) {
    throw mappingMissing(`no unexpired lot of ${product.code} is known in Odoo (the analyzer reported no lot): receive a lot or send the lot with the result`, { productCode: product.code });
  }
  // FEFO: the lots in expiry order, each from the quants holding it.
  const order = new Map(unexpired.map((l, i) => [l.id, i]));
  const candidates = stock.filter((q) => q.lotId !== undefined && order.has(q.lotId)).sort((a, b) => order.get(a.lotId!)! - order.get(b.lotId!)!);
  const first = unexpired[0]!.id;
  return drawFrom(product.id, candidates, quantity, taken, { lotId: first, locationId: stock.find((q) => q.lotId === first)?.locationId ?? labId });
}

/**
 * Draw `quantity` from `quants` in their order, each up to what it holds less what the batch took.
 * The reagent was used even if Odoo's count says otherwise: what no quant covers is booked on the
 * last quant drawn, else on `fallback` (the lot's place, or the lab location) — Odoo lets the quant
 * go negative (D) and the count gets corrected there; a consumption is never refused for lack of
 * recorded stock.
 */
function drawFrom(productId: number, quants: QuantRef[], quantity: number, taken: Map<string, number>, fallback: { lotId: number | undefined; locationId: number }): Draw[] {
  // Keyed per product: an untracked product's quants have no lot to tell them apart.
  const key = (q: { lotId?: number | undefined; locationId: number }): string => `${productId}:${q.lotId ?? ''}@${q.locationId}`;
  const out: Draw[] = [];
  let left = quantity;
  for (const q of quants) {
    if (left <= 1e-9) break;
    const avail = q.quantity - (taken.get(key(q)) ?? 0);
    if (avail <= 1e-9) continue;
    const qty = Math.min(left, avail);
    out.push({ ...(q.lotId === undefined ? {} : { lotId: q.lotId }), locationId: q.locationId, qty });
    left -= qty;
  }
  if (left > 1e-9) {
    const last = out[out.length - 1];
    if (last) last.qty += left;
    else out.push({ ...(fallback.lotId === undefined ? {} : { lotId: fallback.lotId }), locationId: fallback.locationId, qty: left });
  }
  for (const dr of out) taken.set(key(dr), (taken.get(key(dr)) ?? 0) + dr.qty);
  return out;
}

async function createPicking(ctx: RuleContext, analyzer: string, segments: Array<{ segment: Segment; plan: PlannedSegment }>): Promise<{ id: number }> {
  const mapping = ctx.odooConfig.mapping;
  const src = await ctx.ref.location(mapping.labLocation, 'odoo.mapping.labLocation');
  const dest = await ctx.ref.location(mapping.consumptionLocation, 'odoo.mapping.consumptionLocation');
  const type = await ctx.ref.consumptionPickingType(src.id);
  const f = ctx.odoo.fields;
  const moveUom = f.pick('stock.move', 'product_uom', 'product_uom_id') ?? 'product_uom';
  const lineQty = f.pick('stock.move.line', 'quantity', 'qty_done') ?? 'quantity';
  // One move per product, marked with its segment (the caller gives each product one segment;
  // a segment of the earlier per-analyzer scheme may span several products: each move bears it).
  const perProduct = new Map<number, { product: ProductRef; origin: string; qty: number }>();
  const perLot = new Map<string, { product: ProductRef; lotId?: number; locationId: number; qty: number }>();
  // Lines come rounded to Odoo's precision (consumption-carry.ts): a move's demand is their sum.
  for (const { segment: s, plan } of segments) {
    const origin = segmentOrigin(s.planned[0]!.e.event.id, s.planned.length);
    for (const l of plan.lines) {
      const pp = perProduct.get(l.product.id) ?? { product: l.product, origin, qty: 0 };
      pp.qty += l.qty;
      perProduct.set(l.product.id, pp);
      // Untracked products get a line too: from 17 on, once any move is `picked`, validation only
      // moves picked quantities (_pre_action_done_hook marks all moves picked only when none is).
      const key = `${l.product.id}:${l.lotId ?? ''}@${l.locationId}`;
      const pl = perLot.get(key) ?? { product: l.product, ...(l.lotId === undefined ? {} : { lotId: l.lotId }), locationId: l.locationId, qty: 0 };
      pl.qty += l.qty;
      perLot.set(key, pl);
    }
  }
  const round = (n: number): number => Math.round(n * 1e6) / 1e6;
  const moves = [...perProduct.values()].map(({ product, origin, qty }) => [
    0,
    0,
    {
      // stock.move.name is required ≤18 and gone in 19 (B table): the field map drops it there.
      name: `Lab consumption ${product.code}`,
      origin,
      product_id: product.id,
      product_uom_qty: round(qty),
      ...(product.uomId ? { [moveUom]: product.uomId } : {}),
      location_id: src.id,
      location_dest_id: dest.id,
    },
  ]);
  const lines = [...perLot.values()].map(({ product, lotId, locationId, qty }) => [
    0,
    0,
    {
      product_id: product.id,
      ...(product.uomId ? { product_uom_id: product.uomId } : {}),
      // The quant's own place: the lab location or one of its children (the move's source stays
      // the lab location, as Odoo's reservation does). From the lab location itself, a lot kept in
      // the fridge was driven negative there and left untouched in the fridge.
      location_id: locationId,
      location_dest_id: dest.id,
      ...(lotId === undefined ? {} : { lot_id: lotId }),
      [lineQty]: round(qty),
      picked: true,
    },
  ]);
  const [id] = await create(ctx.odoo, 'stock.picking', [
    { picking_type_id: type.id, location_id: src.id, location_dest_id: dest.id, origin: `${CONSUMPTION_ORIGIN_PREFIX}${analyzer}`, move_ids: moves, ...(lines.length ? { move_line_ids: lines } : {}) },
  ]);
  return { id: id! };
}

/**
 * The dead letter of a segment head whose picking was cancelled in Odoo: what a discard does
 * (every run of the picking left unbooked, as the cancellation says) and how to have them booked.
 */
function cancelledPicking(hit: PostedSegment, head: StoredEvent, seen: number): Error {
  const d = head.event.data as ConsumableUsedData;
  const runs = Math.max(hit.count, seen);
  return needsOperator(
    `consumption picking ${hit.name || hit.pickingId} was cancelled in Odoo; it holds ${runs} run${runs === 1 ? '' : 's'} of ${d.productCode} on ${d.analyzer} from this event on (${segmentOrigin(head.event.id, hit.count)}), none booked. ` +
      'Discard this event to leave every run of that picking unbooked, as the cancellation says (the runs after it are then delivered with a note, not posted); ' +
      'to have the gateway book them, delete the cancelled picking in Odoo and replay this event',
    { productCode: d.productCode },
  );
}

/**
 * button_validate until `state` reads 'done' (a wizard dict is not done; D: validating a done
 * picking raises). Resolves with the picking's date_done.
 */
async function ensureDone(ctx: RuleContext, pickingId: number, knownState: string, knownDoneAt?: string): Promise<string | undefined> {
  if (knownState === 'done') return knownDoneAt;
  if (knownState === 'cancel') throw odooError('permanent', `consumption picking ${pickingId} was cancelled in Odoo`);
  const answer = await ctx.odoo.call<unknown>('stock.picking', 'button_validate', {}, {
    ids: [pickingId],
    context: { skip_backorder: true, picking_ids_not_to_backorder: [pickingId], skip_expired: true },
  });
  const [after] = await read(ctx.odoo, 'stock.picking', [pickingId], ['state', 'date_done']);
  if (after?.['state'] !== 'done') {
    const wizard = answer && typeof answer === 'object' ? String((answer as Record<string, unknown>)['res_model'] ?? 'an action') : String(answer);
    throw odooError('transient', `consumption picking ${pickingId} is ${String(after?.['state'])} after button_validate (Odoo answered ${wizard})`, { odooName: 'button_validate' });
  }
  const doneAt = after?.['date_done'];
  return typeof doneAt === 'string' && doneAt ? doneAt : undefined;
}

/**
 * What to make of a segment found in Odoo (`settle`, walkPosted): its events are covered (the
 * picking's date_done, when known; `cancelled`: the picking was cancelled in Odoo and its head
 * discarded, so its events are covered with nothing booked); or `keep`: the walk of its partition
 * stops there and its events are left to post; or `drop`: the partition is left out altogether
 * (the caller failed it).
 */
type Settled = { doneAt: string | undefined } | { cancelled: true } | 'keep' | 'drop';

/**
 * A segment found in Odoo through another event than the run's head: the segment's own head is
 * no longer in the partition (an operator discarded it), and `head` is the recorded segment's
 * (consumption-segments.ts).
 */
interface Via {
  head: string;
}

/**
 * Each partition walked from its head through the segments Odoo already holds (the rule's step 1
 * and the stock watch's look-up; one walk, so both read a marker the same way): the head's marker
 * (findPosted, one `search_read` per segment depth for every partition at once) covers `<count>`
 * events as `settle` decides, and the walk repeats from the next event. A head whose own marker
 * misses and that a recorded segment holds after its head (the head discarded while its picking
 * was left unvalidated) is looked up by that segment's marker, which covers the recorded members
 * from it on. Returns the segments covered, in the order found, and per partition the events left
 * (none: not listed).
 */
async function walkPosted(
  ctx: LookupContext,
  runs: Map<string, StoredEvent[]>,
  book: ConsumptionSegments,
  settle: (hit: PostedSegment, head: StoredEvent, events: StoredEvent[], via?: Via) => Promise<Settled>,
  covered?: (head: StoredEvent) => { count: number; note?: string } | undefined,
): Promise<{ segments: Array<{ found: FoundSegment; hit: PostedSegment; events: StoredEvent[]; via?: Via; cancelled?: true }>; local: Array<{ note?: string; events: StoredEvent[] }>; left: Map<string, StoredEvent[]> }> {
  const left = new Map([...runs].filter(([, run]) => run.length > 0));
  const segments: Array<{ found: FoundSegment; hit: PostedSegment; events: StoredEvent[]; via?: Via; cancelled?: true }> = [];
  const local: Array<{ note?: string; events: StoredEvent[] }> = [];
  /** The run continues after `count` events: looked up again from its next event. */
  const advance = (key: string, run: StoredEvent[], count: number, next: string[]): void => {
    const rest = run.slice(count);
    if (rest.length > 0) {
      left.set(key, rest);
      next.push(key);
    } else left.delete(key);
  };
  let heads = [...left.keys()];
  while (heads.length > 0) {
    const hits = await findPosted(ctx, heads.map((k) => ({ id: left.get(k)![0]!.event.id, legacy: k.startsWith(LEGACY_PARTITION_PREFIX) })));
    // Heads whose own marker missed, held by a recorded segment after its head: that segment's marker.
    const held = new Map<string, { head: string; count: number; from: string[]; rest?: number }>();
    for (const key of heads) {
      const head = left.get(key)![0]!;
      if (hits.has(head.event.id) || covered?.(head)) continue;
      const seg = book.holding(head.event.id, key);
      if (seg) held.set(key, seg);
    }
    const viaHits = held.size > 0 ? await findPosted(ctx, [...new Set([...held.values()].map((h) => h.head))].map((id) => ({ id, legacy: false }))) : new Map<string, PostedSegment>();
    const next: string[] = [];
    for (const key of heads) {
      const run = left.get(key)!;
      const head = run[0]!;
      let hit = hits.get(head.event.id);
      let count = hit?.count ?? 0;
      let via: Via | undefined;
      if (!hit) {
        const seg = held.get(key);
        const other = seg ? viaHits.get(seg.head) : undefined;
        if (seg && other && other.count === seg.count) {
          // The run's events that are the segment's next members, in order.
          let n = 0;
          while (n < run.length && n < seg.from.length && run[n]!.event.id === seg.from[n]) n++;
          // The rest of a segment covered in part: the partition's next events.
          if (seg.rest !== undefined) n = Math.min(run.length, seg.rest);
          hit = other;
          count = n;
          via = { head: seg.head };
        } else {
          // A segment that posted nothing (all of it below Odoo's precision, carried): its events are covered.
          const mine = covered?.(head);
          if (mine) {
            local.push({ ...(mine.note ? { note: mine.note } : {}), events: run.slice(0, mine.count) });
            advance(key, run, mine.count, next);
          }
          // Not in Odoo: a recorded segment of this head never landed (or its picking was deleted there).
          book.covered(head.event.id);
          if (seg) book.covered(seg.head);
          continue;
        }
      }
      const events = run.slice(0, count);
      const settled = await settle(hit, head, events, via);
      if (settled === 'keep') continue;
      if (settled === 'drop') {
        left.delete(key);
        continue;
      }
      const segHead = via?.head ?? head.event.id;
      book.covered(segHead, events[events.length - 1]?.event.id);
      // A run holding only part of the segment (a batch posted again in halves after a proxy's
      // 413, a shorter lease): its later events head the partition next, and their own marker is
      // found nowhere. Recorded, they are found in it; before, they were posted again
      // (test/integration/stock-consumption-split-413-audit.test.ts).
      if (events.length > 0 && (via ? held.get(key)?.rest !== undefined : events.length < hit.count)) {
        book.coveredPart(segHead, key, events.map((e) => e.event.id), hit.count, (ctx as { now?: () => number }).now?.() ?? Date.now());
      }
      const found: FoundSegment = { marker: segmentOrigin(segHead, hit.count), pickingId: hit.pickingId, moveIds: hit.moveIds, legacy: hit.legacy, ...('doneAt' in settled && settled.doneAt ? { doneAt: settled.doneAt } : {}) };
      segments.push({ found, hit, events, ...(via ? { via } : {}), ...('cancelled' in settled ? { cancelled: true as const } : {}) });
      advance(key, run, count, next);
    }
    heads = next;
  }
  return { segments, local, left };
}

interface FoundSegment {
  marker: string;
  pickingId: number;
  doneAt?: string;
  moveIds: number[];
  legacy: boolean;
}

/**
 * Debit the local stock for segments found posted in Odoo, from the move lines Odoo holds for
 * them (the lots a fresh picking chose are not known any more): the moves bearing the segment's
 * marker, or the whole picking for a marker of the earlier scheme. ReferenceData.debitPosted
 * applies each marker once, and skips pickings done before the last pull read the quants.
 * A failed read only loses the estimate until the next pull: it is logged, not thrown (`strict`:
 * thrown, for the stock watch, which then holds its comparison).
 */
async function debitFound(ctx: LookupContext, found: FoundSegment[], strict = false): Promise<Set<number>> {
  const products = new Set<number>();
  try {
    const lineQty = ctx.odoo.fields.pick('stock.move.line', 'quantity', 'qty_done') ?? 'quantity';
    const moveIds = [...new Set(found.flatMap((f) => f.moveIds))];
    const legacyPickings = [...new Set(found.filter((f) => f.legacy).map((f) => f.pickingId))];
    const leaves: unknown[][] = [];
    if (moveIds.length > 0) leaves.push(['move_id', 'in', moveIds]);
    if (legacyPickings.length > 0) leaves.push(['picking_id', 'in', legacyPickings]);
    if (leaves.length === 0) return products;
    const lines = await searchRead(ctx.odoo, 'stock.move.line', anyOf(leaves), ['id', 'move_id', 'picking_id', 'product_id', 'lot_id', 'location_id', lineQty], { order: 'id' });
    const debits: PostedDebit[] = found.map((f) => {
      const mine = lines.filter((l) => (f.legacy ? m2oId(l['picking_id']) === f.pickingId : f.moveIds.includes(m2oId(l['move_id']) ?? -1)));
      const out: DebitLine[] = mine.map((l) => {
        const lotId = m2oId(l['lot_id']);
        const locationId = m2oId(l['location_id']);
        return { productId: m2oId(l['product_id']) ?? 0, ...(lotId === undefined ? {} : { lotId }), ...(locationId === undefined ? {} : { locationId }), qty: Number(l[lineQty] ?? 0) };
      });
      return { marker: f.marker, ...(f.doneAt ? { doneAt: f.doneAt } : {}), lines: out };
    });
    await ctx.ref.debitPosted(debits);
    for (const d of debits) for (const l of d.lines) products.add(l.productId);
  } catch (err) {
    if (strict) throw err;
    ctx.log.warn('could not debit the local stock for consumption found in Odoo', { error: err instanceof Error ? err.message : String(err) });
  }
  return products;
}

/**
 * Unresolved consumption events Odoo already holds in a DONE picking, for the stock watch (no
 * write to Odoo): a validation whose answer was lost, a lease reopened at start-up, a delivery
 * the store could not record. `runs` are the store's unresolved events per partition, in
 * partition order. As the rule does, each partition is walked from its head: the head's marker
 * (`lab-gateway:cons:<head>:<count>`, findPosted) found on a done picking covers `<count>` events,
 * and the walk repeats from the next one; a marker on a picking not done yet (Odoo has not moved
 * the stock) and events never posted stay unposted. Found segments are debited from the local
 * stock once per marker (debitFound; a picking done before the quants were read is already in
 * them), and their products' quants are read again. Returns the ids of the covered events. A
 * failed look-up (or debit, or read) throws: the caller must not take "not found" from it.
 */
export async function consumptionInOdoo(ctx: LookupContext, runs: Map<string, StoredEvent[]>): Promise<Set<string>> {
  // Nothing is validated here: a segment in a picking not done yet ends its partition's walk.
  // A segment cancelled in Odoo whose head was discarded is covered with nothing booked (the rule
  // delivers its events so): not consumption to come, and nothing to debit.
  const book = await ConsumptionSegments.load(ctx.ref);
  const { segments } = await walkPosted(ctx, runs, book, async (hit, _head, _events, via) => (hit.state === 'done' ? { doneAt: hit.doneAt } : hit.state === 'cancel' && via ? { cancelled: true } : 'keep'));
  const covered = new Set(segments.flatMap((s) => s.events.map((e) => e.event.id)));
  const found = segments.filter((s) => !s.cancelled).map((s) => s.found);
  if (found.length > 0) {
    const products = await debitFound(ctx, found, true);
    // A picking done within the second the quants were read (date_done has whole seconds) may or
    // may not be in them: debitPosted debits it, and the estimate could count it twice (a false
    // breach right after a restart). Read those products' quants again: this read begins after
    // the pickings were seen done, so it holds them, and the debits recorded before it are not
    // applied to it again.
    await ctx.ref.refreshStock([...products]);
  }
  return covered;
}
