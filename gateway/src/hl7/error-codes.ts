/**
 * HL7 table 0357 "Message error condition codes" (HL7 v2.5 §2.15.5.3, ERR-3). The ERR segment of
 * every negative acknowledgement carries one of these, plus a readable text in ERR-8.
 */
export const Hl7ErrorCodes = {
  0: 'Message accepted',
  100: 'Segment sequence error',
  101: 'Required field missing',
  102: 'Data type error',
  103: 'Table value not found',
  200: 'Unsupported message type',
  201: 'Unsupported event code',
  202: 'Unsupported processing id',
  203: 'Unsupported version id',
  204: 'Unknown key identifier',
  205: 'Duplicate key identifier',
  206: 'Application record locked',
  207: 'Application internal error',
} as const;

export type Hl7ErrorCode = keyof typeof Hl7ErrorCodes;
