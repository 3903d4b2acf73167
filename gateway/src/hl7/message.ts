import { Message } from 'node-hl7-client';
import { GatewayError } from '../errors.ts';
import type { Hl7ErrorCode } from './error-codes.ts';
import type { MshHeader } from './msh.ts';

/**
 * A parsed HL7 v2 message: node-hl7-client does the field splitting and unescaping (HL7 v2.5
 * §2.7: \F\ \S\ \T\ \R\ \E\ \Xhh\); this wrapper gives normalizers a small, 1-based API in HL7's
 * own numbering (`seg.get(4, 1)` is OBR-4.1) and hides the library's quirks (see README.md).
 */

/** Minimal view of node-hl7-client's HL7Node (its `index.d.mts` exports the class, not the interface). */
interface Node {
  get(path: number | string): Node;
  toString(): string;
  readonly length: number;
  readonly name: string;
  forEach(cb: (value: Node, index: number) => void): void;
}

export class Hl7Segment {
  readonly name: string;
  /** Position in the message, 0 = MSH. */
  readonly index: number;
  readonly #node: Node;

  constructor(name: string, index: number, node: Node) {
    this.name = name;
    this.index = index;
    this.#node = node;
  }

  #field(field: number): Node {
    // node-hl7-client numbers MSH children from MSH-2 (MSH-1 is the separator itself).
    return this.#node.get(this.name === 'MSH' ? field - 1 : field);
  }

  /** Unescaped value of field[rep].component.subcomponent (1-based field/component/subcomponent, 0-based repetition). */
  get(field: number, component = 1, subcomponent = 1, repetition = 0): string {
    const f = this.#field(field);
    if (f.length === 0) return '';
    const value = f.get(repetition).get(component - 1).get(subcomponent - 1).toString().trim();
    // HL7 v2.5 §2.5.3: "" is an explicit null ("delete this value"); for reading it is empty.
    return value === '""' ? '' : value;
  }

  /** Number of repetitions of a field (0 when empty). */
  repetitions(field: number): number {
    const f = this.#field(field);
    if (f.length === 0) return 0;
    return f.length === 1 && f.get(0).toString() === '' ? 0 : f.length;
  }
}

export class Hl7Message {
  readonly header: MshHeader;
  readonly segments: readonly Hl7Segment[];

  constructor(header: MshHeader, segments: Hl7Segment[]) {
    this.header = header;
    this.segments = segments;
  }

  first(name: string): Hl7Segment | undefined {
    return this.segments.find((s) => s.name === name);
  }

  all(name: string): Hl7Segment[] {
    return this.segments.filter((s) => s.name === name);
  }
}

/** Characters used to pad MSH-2 for the parser when the sender sent fewer than four. */
const PAD_CANDIDATES = ['\x1a', '\x1e', '\x1f', '\x7f'];

export function parseError(code: Hl7ErrorCode, text: string, location?: string, cause?: unknown): GatewayError {
  return new GatewayError('GW_HL7_PARSE', text, { cause, details: { hl7ErrorCode: code, ...(location ? { location } : {}) } });
}

/**
 * Parse one message from its segment texts (terminators already removed; MSH first).
 * Throws GatewayError GW_HL7_PARSE with `details.hl7ErrorCode` (table 0357) on failure.
 */
export function parseMessage(header: MshHeader, segmentTexts: string[]): Hl7Message {
  for (let i = 0; i < segmentTexts.length; i++) {
    const name = (segmentTexts[i] as string).slice(0, 3);
    if (!/^[A-Z][A-Z0-9]{2}$/.test(name)) {
      throw parseError(100, `segment ${i + 1} has no valid segment id ("${name.replace(/[^\x20-\x7e]/g, '?')}")`, `${name}^1`);
    }
    const after = (segmentTexts[i] as string)[3];
    if (after !== undefined && after !== header.fieldSeparator) {
      throw parseError(100, `segment ${i + 1} (${name}) is not followed by the field separator`, `${name}^1`);
    }
  }
  let lines = segmentTexts;
  const enc = header.encodingCharacters;
  if (enc.length < 4) {
    // Quirk: node-hl7-client reads the separators from text.slice(3, 8); with only three encoding
    // characters ('^~}' in HAPI's npac samples) it would take the field separator as the
    // subcomponent separator. Pad MSH-2 with unused characters for the parser only.
    const joined = segmentTexts.join('\r');
    const pads = PAD_CANDIDATES.filter((c) => !joined.includes(c)).slice(0, 4 - enc.length);
    const msh = segmentTexts[0] as string;
    lines = [msh.slice(0, 4) + enc + pads.join('') + msh.slice(4 + enc.length), ...segmentTexts.slice(1)];
  }
  let parsed: Message;
  try {
    parsed = new Message({ text: lines.join('\r') });
  } catch (err) {
    throw parseError(100, `the message could not be parsed: ${(err as Error).message}`, undefined, err);
  }
  const segments: Hl7Segment[] = [];
  try {
    // Segments in message order. node-hl7-client's Message iterates its segments with forEach.
    (parsed as unknown as Node).forEach((node, index) => {
      segments.push(new Hl7Segment(node.name, index, node));
    });
  } catch (err) {
    throw parseError(100, `the message could not be parsed: ${(err as Error).message}`, undefined, err);
  }
  if (segments.length !== lines.length) {
    throw parseError(100, `parser saw ${segments.length} segments, expected ${lines.length}`);
  }
  return new Hl7Message(header, segments);
}
