import type { DraftEvent } from '../events/types.ts';
import { idempotencyKey } from '../events/keys.ts';
import type { AckError } from './ack.ts';
import type { Hl7Message } from './message.ts';
import { senderOf } from './msh.ts';

/**
 * The contract between HL7 intake and whatever turns a parsed message into canonical events.
 * The default is the LIS normalizer (normalize-lis.ts); the composition root injects another one
 * for HL7 analyzers (e.g. Mindray BS, whose results carry one test per ORU and QC data in OBR).
 *
 * A normalizer is pure: same message → same events with the same idempotency keys. It must not
 * put patient names (or other demographics than the patient id) in events.
 */
export interface Hl7NormalizeContext {
  message: Hl7Message;
  /** Configured endpoint id (`hl7[].id`). */
  endpoint: string;
  /** Analyzer id when the endpoint is an HL7 analyzer. */
  analyzer?: string;
  /** ISO 8601 time the message arrived. */
  receivedAt: string;
  /** Things the normalizer chose to skip (logged at debug level by the intake). */
  notes: string[];
  /**
   * Things the operator must act on (an analyzer code the profile does not map): logged at warn
   * level by the intake, once per message. A normalizer given no list puts them in `notes`.
   */
  warnings?: string[];
  /**
   * Terms the stored message is found by in the message browser besides the intake's own
   * (`unmapped:<code>`, as ASTM messages have them). Ignored when the caller gives no list.
   */
  searchTerms?: string[];
  /** The message's content fingerprint (msh.ts `messageFingerprints`): part of the event keys. */
  fingerprint?: string;
  /** The sender the event keys name, when not `senderOf(message.header)` (inbound.ts `keySender`). */
  keySender?: string;
  /**
   * Facts of the message the normalizer could not record (an order without any order number,
   * results tied to no order or specimen): the intake then keeps the message as rejected, with
   * the first problem's text as the reason, commits none of its events and answers with that
   * problem's ERR (`reject` → AR/CR, `error` → AE/CE). Without this list (a caller that does not
   * ask) such facts are only noted.
   */
  problems?: Hl7NormalizeProblem[];
}

/** A fact the message states and the normalizer cannot record: the message is refused with it. */
export interface Hl7NormalizeProblem {
  /** `reject`: the message itself lacks what is required (AR); `error`: it cannot be applied (AE). */
  severity: 'reject' | 'error';
  error: AckError;
}

export type Hl7Normalizer = (ctx: Hl7NormalizeContext) => DraftEvent[];

/**
 * Deterministic idempotency key of the event derived from segment `position` of the message:
 * endpoint + sender (MSH-3^MSH-4) + MSH-10 + content fingerprint + position + event type. The
 * sender is part of the key because two applications on one endpoint may use the same control
 * ids; the fingerprint because one sender may reuse a control id for a different message.
 */
export function hl7EventKey(ctx: Hl7NormalizeContext, position: number | string, type: string): string {
  const h = ctx.message.header;
  return idempotencyKey('hl7', ctx.endpoint, ctx.keySender ?? senderOf(h), h.controlId, ctx.fingerprint, String(position), type);
}

/** Message codes the gateway understands (others follow `unknownMessageTypes`). */
export const KNOWN_MESSAGE_CODES: ReadonlySet<string> = new Set(['ORM', 'OML', 'ORU', 'OUL', 'ADT']);
