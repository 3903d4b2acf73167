import type { DraftEvent, RunType } from '../events/types.ts';
import type { Profile } from '../profiles/types.ts';
import type { AstmDelimiters } from './delimiters.ts';

export interface NormalizeContext {
  analyzerId: string;
  endpoint: string;
  profile: Profile;
  /** ISO 8601 time the message's last byte arrived. */
  receivedAt: string;
}

/** One specimen named in a Q record (LIS2-A2 §11: Q.3 starting range, Q.4 ending range). */
export interface QueriedSpecimen {
  specimenId: string;
  /** Q.3 component 1 (computer system patient id), when sent. */
  patientId?: string;
  /** All components of this Q.3/Q.4 repeat, unescaped (echoed back where the analyzer requires it). */
  components: string[];
}

/** One request record (Q, LIS2-A2 §11) of a host query message. */
export interface HostQueryRequest {
  /** Q.2 sequence number. */
  sequence: string;
  specimens: QueriedSpecimen[];
  /**
   * Q.3 and Q.4 name different specimens: a range (LIS2-A2 §11.1.3/§11.1.4, Fig. 5 asks for
   * `^032989325` to `^032989327`): the specimens between them are asked for too. Both ends are
   * also in `specimens`. Absent when Q.4 is empty or repeats Q.3 (Centaur sends both).
   */
  range?: { from: QueriedSpecimen; to: QueriedSpecimen };
  /** Q.3 was `ALL`. */
  all: boolean;
  /** Q.5 universal test ids (analyzer codes), or 'ALL'. */
  tests: string[] | 'ALL';
  /** Q.13 request information status code (O = orders only; A = cancel the last request). */
  statusCode: string;
  /**
   * Q.13 = A: the analyzer cancels its last request (cobas e411 after 15 s): not answered, and it
   * withdraws the Q right before it in the same message when that Q names the same tube; a
   * message of cancels only gets nothing.
   */
  cancel: boolean;
}

/**
 * A host query (download on demand) read from a message's Q records (LIS2-A2 §11, protocols.md
 * §2.4). Its own fields are the first Q record's, as they always were; a message with several Q
 * records (an analyzer asking for a whole rack at once) lists all of them in `requests`.
 */
export interface HostQuery extends HostQueryRequest {
  /**
   * Every Q record of the message, in order, the first one included (the same values as the
   * fields above). Absent when the message has one Q record. All are answered in one reply.
   */
  requests?: HostQueryRequest[];
  /** The query message's header, for addressing the reply. */
  header: {
    controlId?: string;
    /** H.5 components (sender name or ID). */
    sender: string[];
    /** H.10 receiver id. */
    receiver: string[];
    /** H.11 comment or special instructions (cobas `TSREQ^REAL`). */
    comment: string[];
    processingId: string;
    version: string;
  };
  delimiters: AstmDelimiters;
}

export interface RunSummary {
  specimenId: string;
  runType: RunType;
  /** Canonical codes of the results kept. */
  tests: string[];
  /** Analyzer codes that had no mapping (profile `unmappedTests: report`). */
  unmapped: string[];
}

export interface NormalizeResult {
  events: DraftEvent[];
  controlId?: string;
  sender?: string;
  messageType: string;
  searchTerms: string[];
  hostQuery?: HostQuery;
  /** Set when the text is not a valid LIS2-A2 message: store it as rejected raw. */
  reject?: string;
  /** Tolerated problems (unmapped codes, missing specimen id, missing L). */
  warnings: string[];
  runs: RunSummary[];
  /**
   * Per undated calibration not keyed as earlier releases keyed it (calibration-keys.ts): the keys
   * of its events now, and the same keys in each form an earlier release may have stored them
   * under. Resolved against the store before the commit (`keepCalibrationKeysOfEarlierReleases`).
   */
  earlierCalibrationKeys?: EarlierCalibrationKeys[];
}

/** The keys of one undated calibration's events, now and as earlier releases may have made them. */
export interface EarlierCalibrationKeys {
  /** The idempotency keys of its events, in order. */
  keys: string[];
  /** Each earlier form: the keys of the same events, in the same order. */
  earlier: string[][];
}
