import type { MshHeader } from './msh.ts';
import type { Hl7Normalizer } from './normalizer.ts';

/**
 * MSH-11 processing id (HL7 v2.5 §2.15.9.11, table 0103): `P` production, `T` training, `D`
 * debugging; the Mindray BC-5380 (and LIS systems forwarding their analyzers' QC) use `Q` for a
 * QC run. The first component only: MSH-11.2 is the processing mode (archive, restore, …).
 */
export function processingIdOf(header: MshHeader): string {
  const { processingId, encodingCharacters } = header;
  const end = processingId.indexOf(encodingCharacters[0] ?? '^');
  return (end === -1 ? processingId : processingId.slice(0, end)).trim().toUpperCase();
}

/**
 * MSH-11.2 processing mode (HL7 v2.5 table 0207): `A` archive, `R` restore from archive, `I`
 * initial load, `T` current processing; empty means current processing (`T`). Upper case, trimmed.
 */
export function processingModeOf(header: MshHeader): string {
  const { processingId, encodingCharacters } = header;
  const sep = encodingCharacters[0] ?? '^';
  const start = processingId.indexOf(sep);
  if (start === -1) return '';
  const end = processingId.indexOf(sep, start + 1);
  return processingId.slice(start + 1, end === -1 ? undefined : end).trim().toUpperCase();
}

/** The processing modes that are not current processing (table 0207), in the lab's words. */
const NOT_CURRENT: Readonly<Record<string, string>> = { A: 'archive', R: 'restore from archive', I: 'initial load' };

/**
 * `archive` / `restore from archive` / `initial load` for MSH-11.2 A / R / I, else undefined
 * (`T`, empty or anything else: current processing). Such a message is the LIS's history — an
 * archive replayed, a new system's initial load — not a fact happening now: the LIS normalizer
 * stores it and makes no event of it (normalize-lis.ts), so an order billed before is not billed
 * again.
 */
export function historicalModeKind(header: MshHeader): string | undefined {
  return NOT_CURRENT[processingModeOf(header)];
}

/** The message browser's term for an archived, restored or initially loaded message (`processingMode:I`). */
export function processingModeTerm(header: MshHeader): string | undefined {
  return historicalModeKind(header) === undefined ? undefined : `processingMode:${processingModeOf(header)}`;
}

/**
 * Whether MSH-11.1 is `Q`, a QC run (Mindray BC-5380, LIS systems forwarding their analyzers'
 * QC), read as T and D are: trimmed, any case. The LIS normalizer read `Q` exactly, so a LIS
 * sending `q` had the control's result validated on the patient's order.
 */
export function isQcProcessingId(header: MshHeader): boolean {
  return processingIdOf(header) === 'Q';
}

/** The processing ids that are not the lab's real work, in the lab's words. */
const NOT_PRODUCTION: Readonly<Record<string, string>> = { T: 'training', D: 'debugging' };

/**
 * `training` / `debugging` for the processing id T / D (HL7 MSH-11.1, ASTM H.12: the same table
 * 0103), any case, trimmed; else undefined (P, Q, empty: production traffic).
 */
export function nonProductionKindOf(processingId: string): string | undefined {
  return NOT_PRODUCTION[processingId.trim().toUpperCase()];
}

/** `training` / `debugging` for MSH-11 T / D, else undefined (P, Q, empty: production traffic). */
export function nonProductionKind(header: MshHeader): string | undefined {
  return nonProductionKindOf(processingIdOf(header));
}

/**
 * The message browser's term for a training or debugging message or run (`processingId:T`), so IT
 * finds a training session's traffic; undefined for production traffic. HL7 LIS and analyzers
 * (processingIdTerm) and ASTM analyzers (H.12) alike.
 */
export function processingIdSearchTerm(processingId: string): string | undefined {
  const id = processingId.trim().toUpperCase();
  return nonProductionKindOf(id) === undefined ? undefined : `processingId:${id}`;
}

/** processingIdSearchTerm of MSH-11. */
export function processingIdTerm(header: MshHeader): string | undefined {
  return processingIdSearchTerm(processingIdOf(header));
}

/**
 * `normalize` on a link whose gateway posts to a production Odoo: a training (MSH-11 T) or
 * debugging (D) message is refused — AR with ERR 202 "Unsupported processing id" at MSH^1^11
 * (HL7 v2.5 §2.9.2.1: a processing id the receiver does not take is rejected; table 0357) — and
 * kept, raw, as rejected with the reason; none of its events is made. A LIS training session's
 * practice orders would otherwise become draft sale orders of the real clinic in the production
 * Odoo, and their results invoices. The LIS sees the refusal in its interface log at once; a
 * production system mistakenly sending T is found the same day rather than at month end.
 *
 * On the sandbox (no `odoo.url`) the composition root does not wrap: a site commissioning there
 * connects its LIS's training system on purpose, and its messages are taken as usual (found with
 * `processingId:T`). An inbound ACK is never answered, so it is passed through.
 */
export function productionOnly(normalize: Hl7Normalizer): Hl7Normalizer {
  return (ctx) => {
    const { header } = ctx.message;
    const kind = header.messageCode === 'ACK' ? undefined : nonProductionKind(header);
    if (kind === undefined) return normalize(ctx);
    const text = `processing id ${processingIdOf(header)} (${kind}) is not taken: this gateway posts to the production Odoo; send ${kind} traffic to a gateway on its sandbox`;
    if (ctx.problems) ctx.problems.push({ severity: 'reject', error: { code: 202, text, location: 'MSH^1^11' } });
    else ctx.notes.push(`${text}: no events`);
    return [];
  };
}
