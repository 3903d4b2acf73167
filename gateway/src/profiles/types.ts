import type { RunType } from '../events/types.ts';

/**
 * A firmware profile: everything the gateway needs to know about one analyzer model/firmware
 * range. One JSON file per profile in firmware-profiles/, validated against
 * firmware-profiles/schema.json (additionalProperties: false everywhere) and by `checkProfile`.
 * See firmware-profiles/README.md for how to write and commission one.
 */

export const ProfileProtocols = ['astm-e1381', 'astm-records-over-tcp', 'hl7-mllp'] as const;
export type ProfileProtocol = (typeof ProfileProtocols)[number];

export const TransportKinds = ['serial', 'tcp-server', 'tcp-client'] as const;
export type TransportKind = (typeof TransportKinds)[number];

export const LowLevels = ['e1381', 'records-only'] as const;
export type LowLevel = (typeof LowLevels)[number];

/**
 * The link mode a protocol means, and so the default of `quirks.lowLevel`: bare CR-separated
 * records for `astm-records-over-tcp`, E1381 framing otherwise (HL7 profiles do not read it). The
 * link layer takes its mode from `quirks.lowLevel` alone, so the protocol must reach it this way.
 */
export function protocolLowLevel(protocol: ProfileProtocol): LowLevel {
  return protocol === 'astm-records-over-tcp' ? 'records-only' : 'e1381';
}

/**
 * Link-layer and record-layer behaviour. Timer defaults are the LIS1-A §6.5.2 values; a site can
 * override any key per analyzer (`analyzers[].overrides`).
 */
export interface ProfileQuirks {
  /**
   * 'e1381': ENQ/STX…ETX/checksum/EOT framing; 'records-only': bare CR-separated records. Defaults
   * to the protocol's mode (`protocolLowLevel`); `check` refuses a value contradicting the protocol.
   */
  lowLevel: LowLevel;
  /** LIS1-A §6.5.2.1: sender waits this long for a reply to ENQ (15 s). */
  establishmentTimeoutMs: number;
  /** LIS1-A §6.5.2.3: receiver waits this long for the next frame or EOT (30 s). */
  frameTimeoutMs: number;
  /** LIS1-A §6.5.2.2: sender waits this long for ACK/NAK/EOT after a frame (15 s). */
  replyTimeoutMs: number;
  /** LIS1-A §6.2.6: after NAK to ENQ wait at least this long before the next ENQ (10 s). */
  nakRetryDelayMs: number;
  /** LIS1-A §6.3.5: after honouring a receiver interrupt, no establishment for this long (15 s). */
  interruptHoldoffMs: number;
  /** LIS1-A §6.2.7.1: the computer waits this long for the instrument's ENQ after contention (20 s). */
  contentionTimeoutMs: number;
  /** LIS1-A §6.5.1.2: a frame not accepted this many times aborts the message (6). */
  maxRetries: number;
  /** Text characters per outgoing frame (LIS1-A §6.3.1: 240 for E1381-95/-02 peers). */
  maxFrameText: number;
  /** Largest incoming frame accepted (LIS1-A: up to 64 000 characters). */
  maxIncomingFrame: number;
  /** Delimiters for outgoing messages (`|\^&`); incoming ones are always read from H.2. */
  delimiters: string;
  /** The analyzer ends every frame but the last with ETB even when a record is complete (cobas c111). */
  etbAfterEveryRecord: boolean;
  /** Outgoing layout: one record per frame (standard) or the whole message in one frame. */
  outgoingFrameLayout: 'record-per-frame' | 'message-per-frame';
  /** The analyzer ignores a receiver interrupt (EOT as reply) until the message is complete. */
  ignoresReceiverInterrupt: boolean;
  /** The analyzer closes TCP right after EOT (MALDI Biotyper): FIN after EOT is normal. */
  closesAfterEot: boolean;
  /** The analyzer sends ENQ then EOT as a link test/keep-alive (GeneXpert, Yumizen H550). */
  sendsEmptySessions: boolean;
  /** Text encoding of the analyzer: LIS1-A is 7-bit ASCII; most send Latin-1. */
  charset: 'ascii' | 'latin1' | 'utf8';
  /** Trim leading/trailing blanks of values (Sysmex pads ids and results with spaces). */
  trimValues: boolean;
  // Link-layer options read by ingress/astm/link-options.ts under their own names (all optional):
  /** Send EOT instead of ACK at a message boundary when the gateway has something to send (LIS1-A §6.3.5). */
  receiverInterrupt?: boolean;
  /** Honour the analyzer's receiver interrupt when the gateway sends (LIS1-A §6.3.5). */
  honourInterrupt?: boolean;
  /** What ends a message: the L record, or any end frame for senders without L. */
  messageEnd?: 'l-record' | 'end-frame';
  /** Reply to a message the record layer rejects (it is kept raw either way). */
  rejectedReply?: 'nak' | 'ack';
  /** Record separator when sending records-only. */
  recordSeparator?: '\r' | '\r\n' | '\n';
  /** ENQ attempts before a send fails (cobas e411: 6). */
  maxEnqAttempts?: number;
  /** Largest message accepted (bytes). */
  maxMessageBytes?: number;
  /** Link timers under the link layer's names (same meaning as the *TimeoutMs keys above). */
  timers?: Partial<Record<'establishmentMs' | 'senderFrameReplyMs' | 'receiverFrameMs' | 'receiverReplyDelayMs' | 'busyRetryMs' | 'contentionMs' | 'interruptHoldoffMs' | 'trailerGraceMs' | 'silentPeerMs', number>>;
}

export const QUIRK_DEFAULTS: Readonly<ProfileQuirks> = Object.freeze({
  lowLevel: 'e1381',
  establishmentTimeoutMs: 15_000,
  frameTimeoutMs: 30_000,
  replyTimeoutMs: 15_000,
  nakRetryDelayMs: 10_000,
  interruptHoldoffMs: 15_000,
  contentionTimeoutMs: 20_000,
  maxRetries: 6,
  maxFrameText: 240,
  maxIncomingFrame: 64_000,
  delimiters: '|\\^&',
  etbAfterEveryRecord: false,
  outgoingFrameLayout: 'record-per-frame',
  ignoresReceiverInterrupt: false,
  closesAfterEot: false,
  sendsEmptySessions: false,
  charset: 'latin1',
  trimValues: true,
});

export interface SerialDefaults {
  baudRate: number;
  dataBits: 7 | 8;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits: 1 | 2;
  rtscts: boolean;
}

export interface ProfileTransport {
  /** Transports the analyzer supports, as seen from the gateway. */
  supported: TransportKind[];
  /** What commissioning should pick first. */
  default: TransportKind;
  serial?: SerialDefaults;
  /** Typical TCP port (site-specific; informative). */
  tcpPort?: number;
  note?: string;
}

/** A condition on one field: `field` is a reference like `O.12`, `O.4.3`, `H.12`, `P.3`. */
export interface FieldCondition {
  field: string;
  equals?: string;
  /** One of these values. */
  in?: string[];
  /** A regular expression (JavaScript syntax, case-insensitive). */
  pattern?: string;
  /** true: the field must be non-empty; false: it must be empty. */
  present?: boolean;
}

/** A run is of `runType` when all conditions hold (rules are tried in order, first match wins). */
export interface RunTypeRule {
  runType: Exclude<RunType, 'patient'>;
  when: FieldCondition[];
  note?: string;
}

/** How the analyzer's test code is read from R.3 / O.5 (the universal test ID). */
export interface TestIdLayout {
  /** Component holding the code: 4 in LIS2-A2 (`^^^GLU`), 5 for Sysmex (`^^^^WBC^1`). */
  codeComponent: number;
  /** More components appended with `^` when non-empty (Centaur `^^^VitD^^^1^DOSE` → `VitD^DOSE`). */
  qualifierComponents?: number[];
  /** Keep only the text before this separator (cobas `5/1/not` → `5`). */
  cutAt?: string;
  /** Component holding a LOINC code (Pentra `^^^WBC^804-5^1`). */
  loincComponent?: number;
  /** Component of O.5 holding the code in orders, when it differs from results (GeneXpert: 4). */
  orderCodeComponent?: number;
}

export interface TestMapping {
  /** Canonical (LIS) test code, matched against Odoo product default_code. */
  code: string;
  name?: string;
  loinc?: string;
  units?: string;
  /** false: a result-only parameter that cannot be ordered (not sent in host query answers). */
  orderable?: boolean;
  /** true: results with this code produce no events (raw instrument values, image paths). */
  ignore?: boolean;
}

export interface ConsumptionRow {
  /** Canonical test code, or '*' for any test. Ignored for `per: 'run'` rows without it. */
  test?: string;
  /** 'test': once per distinct matching test in a run; 'run': once per run (dead volume, wash). */
  per: 'test' | 'run';
  /** Run types the row applies to; absent = every run type. */
  runTypes?: RunType[];
  /** Odoo product default_code. */
  productCode: string;
  quantity: number;
  uom: string;
  /** Marks the dead-volume row of a run. */
  deadVolume?: boolean;
  /** The reagent's name in the analyzer's lot report (see `reagentLots`): its lot goes on the event. */
  reagent?: string;
  note?: string;
}

/**
 * Where an analyzer reports the lots of its reagents, e.g. Yumizen
 * `M|4|REAGENT|CLEANER\DILUENT\LYSE|221114I1*^20230317^20230617\…`: M records matching `when`,
 * names in field `namesField` (one repeat per reagent), lots in `lotsField` component
 * `lotComponent` (same repeat order). A trailing `*` (Yumizen: the bottle in use) is dropped.
 */
export interface ReagentLotSource {
  when: FieldCondition[];
  namesField: number;
  lotsField: number;
  lotComponent: number;
}

/**
 * Calibrations an analyzer reports in manufacturer records of their own instead of an O/R run:
 * the cobas c 111 sends `H`, `M|1|CR^BM^c111^1|413^ALB|<reagent lot>|…|<calibration time>|…|
 * SD^^^<calibrator lot>|<levels>`, `L` (host interface manual v2.1, M.CR). Each M record matching
 * `when` is one calibration run (run type `calibration`) of the test named at `testCode`: it
 * consumes what a run of that test consumes under the profile's `consumption` rows.
 */
export interface CalibrationRecordSource {
  /** Conditions on the M record (with the H record): c 111 `M.3.1 = CR`. */
  when: FieldCondition[];
  /** Where the M record names the calibrated test, the analyzer's code (c 111 `M.4.1`, the application number). */
  testCode: string;
  /** The calibration time, first valid date wins (c 111 `M.11`): the run's time and its consumption identity. */
  time: string[];
  /** The consumption's specimen id, first non-empty wins (c 111 `M.15.4`, the calibrator lot); default `CAL-<analyzer code>`. */
  specimenId?: string[];
  note?: string;
}

export interface HostQuerySettings {
  supported: boolean;
  /** Q.3 component holding the specimen id: 2 in LIS2-A2 (`^specimen`), 3 for cobas e411. */
  specimenIdComponent: number;
  /** H.11 of the reply (cobas e411: `TSDWN^REPLY`). */
  replyHeaderComment?: string;
  /** H.13 version of the reply, e.g. `LIS2-A2`, `1`. */
  replyVersion?: string;
  /** Copy Q.3 components after the specimen id into O.4 (cobas: sequence, rack, position must echo). */
  echoInstrumentSpecimenId: boolean;
  /** O.26 report type(s) of orders in a query answer: ['O'], ['Q'], or ['O','Q'] (Centaur `O\Q`). */
  reportTypes: string[];
  /** O.12 action code of downloaded orders (N new, A add). */
  actionCode: string;
  /** L.3 ending an answer that carries orders: 'N' (cobas) or 'F' (LIS2-A2 Fig. 6, Centaur). */
  terminationCode: string;
  /**
   * Unknown specimen: 'terminator-I' = H, L|1|I (LIS2-A2 §12: no information available);
   * 'order-Y' / 'order-Z' = an O record without tests and O.26 Y (no order) / Z (no patient).
   */
  noOrderReply: 'terminator-I' | 'order-Y' | 'order-Z';
  /** O.16 specimen descriptor of downloaded orders (e.g. `ORH` GeneXpert, `SC` cobas). */
  specimenDescriptor?: string;
}

export const HOST_QUERY_DEFAULTS: Readonly<HostQuerySettings> = Object.freeze({
  supported: false,
  specimenIdComponent: 2,
  echoInstrumentSpecimenId: false,
  reportTypes: ['O'],
  actionCode: 'N',
  terminationCode: 'F',
  noOrderReply: 'terminator-I',
});

export interface ProfileRecordFields {
  /** Where the specimen id / LIS accession is read, first non-empty wins (e.g. ['O.3.1', 'O.4.3']). */
  specimenId: string[];
  /** Where the patient id is read (for searching; never names). */
  patientId: string[];
  /** Run time candidates, first valid date wins (default R.13, R.12, O.7): a result's completedAt and its events' occurredAt. */
  runTime: string[];
  /**
   * Time candidates of the idempotency keys and the consumption run identity, first valid date
   * wins (default: `runTime`; a time from an O or H field is keyed with a hash of the result, see
   * astm/README.md). Keys of a shipped profile never change: when a better time source is found,
   * it goes to `runTime` (completedAt, occurredAt) and the old list stays here, so a result stored
   * before the change and resent after it keeps its key. DxH: R.13, R.12, O.23, O.7 (its runTime
   * became R.14).
   */
  keyTime: string[];
  /**
   * Where a result's abnormal flags are read, first non-empty wins (default R.7, LIS2-A2 §9.7):
   * the whole field as sent unless the reference names a component. DxH: R.8 (one extra field
   * after the units shifts range, flags, status and times one field later).
   */
  abnormalFlags: string[];
  /**
   * Where a result's status is read, first non-empty wins (default R.9, LIS2-A2 §9.9): the first
   * component unless the reference names one. DxH: R.10.
   */
  resultStatus: string[];
  /** Test ID layout of R.3 and O.5. */
  testId: TestIdLayout;
}

export interface Profile {
  /** `$schema` reference kept so editors complete and check the file. */
  $schema?: string;
  /** The file name without .json; `analyzers[].profile` refers to it. */
  name: string;
  vendor: string;
  model: string;
  /** Firmware / software range the profile was written for, e.g. `00-19 … 00-24`. */
  firmware?: string;
  description?: string;
  protocol: ProfileProtocol;
  transport: ProfileTransport;
  quirks: ProfileQuirks;
  fields: ProfileRecordFields;
  /** Analyzer code → canonical mapping. */
  tests: Record<string, TestMapping>;
  /** A code missing from `tests`: 'pass-through' (generic) or 'report' (event + `unmapped:` search term + warning). */
  unmappedTests: 'pass-through' | 'report';
  /** Result records must satisfy all of these to become events (e.g. GeneXpert: R.9 present). */
  resultFilter?: FieldCondition[];
  /** QC / calibration / rerun recognition, first match wins; no match = patient run. */
  runTypeRules: RunTypeRule[];
  consumption: ConsumptionRow[];
  /** Reagent lots reported in M records, put on consumption events as `reagentLot`. */
  reagentLots?: ReagentLotSource;
  /** Calibrations reported as M records rather than as an O/R run (cobas c 111 M.CR). */
  calibrationRecords?: CalibrationRecordSource;
  hostQuery: HostQuerySettings;
  /** HL7 analyzers only (protocol hl7-mllp): how the message kind is read. */
  hl7?: Hl7AnalyzerSettings;
  /** Glob-ish names of matching captures in the corpus (`sysmex_xn-550_*`). */
  corpusPatterns: string[];
  sources?: string[];
  /** `sha256:<hex>` of the canonical JSON of the profile without this field; checked by `check`. */
  revision: string;
}

import type { WorklistModes } from '../hl7/host-query.ts';

export interface Hl7AnalyzerSettings {
  /** Where the run kind is read: 'MSH-16' (Mindray BS: 0 patient, 1 calibration, 2 QC) or 'MSH-11' (BC-5380: Q = QC). */
  runTypeField: 'MSH-16' | 'MSH-11';
  /** Value → run type for that field. */
  runTypeValues: Record<string, RunType>;
  /** OBX-3 component holding the analyzer code (1-based). */
  codeComponent: number;
  /** Where the specimen id is read: 'OBR-2' (BS sample barcode) or 'OBR-3'. */
  specimenIdField: 'OBR-2' | 'OBR-3';
  /** OBX-2 value types that carry results (BC-5380: NM; IS/ST rows are modes and remarks). */
  valueTypes?: string[];
  /**
   * BC-5380 worklist answers (ORR^O02): the run settings sent as OBX 08001 take mode, 08002 blood
   * mode, 08003 test mode. Default: the manual's example, A / W / CBC.
   */
  worklist?: WorklistModes;
}

export interface ProfileIssue {
  severity: 'error' | 'warning';
  /** JSON path of the key, e.g. `tests.WBC.code` or `consumption[2].quantity`. */
  path: string;
  message: string;
}

export interface ProfileSummary {
  name: string;
  vendor: string;
  model: string;
  firmware?: string;
  protocol: ProfileProtocol;
  transports: TransportKind[];
  hostQuery: boolean;
  tests: number;
  consumptionRows: number;
  revision: string;
  file: string;
}
