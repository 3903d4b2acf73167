import { Duplex, Transform, pipeline, type TransformCallback } from 'node:stream';

/**
 * The largest packet a client of the embedded broker may send, until it has authenticated as the
 * gateway's own publisher (which is not limited). Subscribers only send CONNECT (client id, user
 * name, password, a will), SUBSCRIBE, UNSUBSCRIBE and PINGREQ: 64 KiB holds a SUBSCRIBE of about
 * a thousand topic filters. A PUBLISH from them is refused anyway (mqtt-broker.ts).
 *
 * Why a limit of our own: aedes has none, and its parser (mqtt-packet) keeps a packet whole in
 * memory until its last byte, whatever the Remaining Length announced (up to 256 MB, MQTT 3.1.1
 * §2.2.3) — before `authenticate` has seen a user name, for a CONNECT.
 */
export const MAX_SUBSCRIBER_PACKET_BYTES = 64 * 1024;

/** A client's packet refused for its size (the broker hangs up; logged at warn, not an error code of the gateway's). */
export class MqttPacketTooLarge extends Error {
  override readonly name = 'MqttPacketTooLarge';
}

/**
 * Reads the fixed header of every MQTT control packet passing from a client to the broker
 * (MQTT 3.1.1 §2.2: one byte of type and flags, then the Remaining Length in 1 to 4 bytes of 7
 * bits, least significant first) and fails as soon as one announces more than `maxPacketBytes`,
 * before its body is read. The bytes pass through unchanged.
 */
export class MqttPacketLimit extends Transform {
  /** Largest Remaining Length accepted; `Infinity` lifts the limit. */
  maxPacketBytes: number;
  /** Bytes of the current packet's body still to pass; 0 between packets. */
  #bodyLeft = 0;
  /** Where the fixed header being read is: 0 = expects the type byte, 1..4 = length bytes read. */
  #headerPos = 0;
  #length = 0;
  #multiplier = 1;

  constructor(maxPacketBytes: number) {
    super();
    this.maxPacketBytes = maxPacketBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= take;
        i += take;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.#headerPos === 0) {
        this.#headerPos = 1;
        this.#length = 0;
        this.#multiplier = 1;
        continue;
      }
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      if (this.#length > this.maxPacketBytes) {
        callback(new MqttPacketTooLarge(`an MQTT packet of more than ${this.maxPacketBytes} bytes was announced: connection closed`));
        return;
      }
      if (byte & 0x80) {
        // §2.2.3: at most four bytes of Remaining Length.
        if (++this.#headerPos > 4) {
          callback(new MqttPacketTooLarge('malformed MQTT Remaining Length (more than 4 bytes): connection closed'));
          return;
        }
        continue;
      }
      this.#headerPos = 0;
      this.#bodyLeft = this.#length;
    }
    callback(null, chunk);
  }
}

/**
 * The connection aedes is handed: reads pass through a `MqttPacketLimit`, writes go straight to
 * the socket; destroying either end destroys the socket. `limit` lifts or changes the limit.
 */
export function limitedConnection(socket: Duplex, maxPacketBytes: number, onRefused: (err: Error) => void): { conn: Duplex; limit: MqttPacketLimit } {
  const limit = new MqttPacketLimit(maxPacketBytes);
  pipeline(socket, limit, (err) => {
    if (err instanceof MqttPacketTooLarge) onRefused(err);
  });
  const conn = Duplex.from({ readable: limit, writable: socket });
  return { conn, limit };
}
