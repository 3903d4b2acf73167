/**
 * E1381 / LIS1-A control characters (LIS1-A §6.1, protocols.md §1.1). Named once here so that the
 * state machines never spell a control byte as a bare number.
 */
export const STX = 0x02; // start of frame (§6.3)
export const ETX = 0x03; // end of the end frame of a message (§6.3)
export const EOT = 0x04; // termination (§6.4); receiver interrupt when sent in place of ACK (§6.3.5)
export const ENQ = 0x05; // request to become the sender (§6.2)
export const ACK = 0x06; // positive reply (§6.2.5, §6.3.4)
export const NAK = 0x15; // negative reply: busy (§6.2.6) or frame refused (§6.5.1)
export const ETB = 0x17; // end of an intermediate frame (§6.3)
export const CR = 0x0d; // ends every E1394 record; first byte of the frame trailer
export const LF = 0x0a; // last byte of the frame trailer; restricted inside frame text (§6.6)

export const CONTROL_NAMES: Readonly<Record<number, string>> = {
  [STX]: 'STX',
  [ETX]: 'ETX',
  [EOT]: 'EOT',
  [ENQ]: 'ENQ',
  [ACK]: 'ACK',
  [NAK]: 'NAK',
  [ETB]: 'ETB',
  [CR]: 'CR',
  [LF]: 'LF',
};

/** Single-byte replies, allocated once. */
export const BYTE = {
  ENQ: Buffer.from([ENQ]),
  ACK: Buffer.from([ACK]),
  NAK: Buffer.from([NAK]),
  EOT: Buffer.from([EOT]),
} as const;

/** `<ENQ><STX>1H|…` → readable text for logs and test failure messages. */
export function describeBytes(buf: Uint8Array): string {
  let out = '';
  for (const b of buf) {
    const name = CONTROL_NAMES[b];
    if (name !== undefined) out += `<${name}>`;
    else if (b < 0x20 || b > 0x7e) out += `<${b.toString(16).padStart(2, '0')}>`;
    else out += String.fromCharCode(b);
  }
  return out;
}
