import { describe, expect, it } from 'vitest';
import net from 'node:net';
import path from 'node:path';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import { MAX_SUBSCRIBER_PACKET_BYTES } from '../../gateway/src/status/mqtt-packet-limit.ts';
import mqtt from 'mqtt';
import { makeConfig, mosquittoSubLines, useMqttStatus, waitFor, writeMqttCredentials } from '../fixtures/status/harness.ts';

/** MQTT 3.1.1 §2.2.3: the Remaining Length, 1 to 4 bytes of 7 bits, least significant first. */
function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 0x80;
    out.push(digit);
  } while (n > 0);
  return Buffer.from(out);
}

/** An MQTT 3.1.1 CONNECT (§3.1) with a clean session, a user name and a password. */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(clientId), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

/**
 * Sends `prelude` (a CONNECT, answered by a CONNACK before going on) if any, then a fixed header
 * announcing `announced` bytes, and streams bytes toward that length until the broker closes the
 * connection or all of it is sent; how many bytes went out. (A raw socket: an MQTT client library
 * hands its whole packet to the socket at once, which then counts it all as written.)
 */
async function streamPacket(port: number, firstByte: number, announced: number, prelude?: Buffer): Promise<{ sent: number; closedByBroker: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (prelude) {
    const connack = new Promise<Buffer>((r) => socket.once('data', r));
    socket.write(prelude);
    // §3.2: 0x20, length 2, flags, return code 0 (accepted).
    expect([...(await connack)]).toEqual([0x20, 2, 0, 0]);
  }
  let closed = false;
  socket.on('error', () => {});
  const onClose = new Promise<void>((r) => socket.once('close', () => ((closed = true), r())));
  socket.write(Buffer.concat([Buffer.from([firstByte]), remainingLength(announced)]));
  const chunk = Buffer.alloc(1 << 20, 0x41);
  let sent = 0;
  while (sent + chunk.length <= announced && !closed) {
    const more = socket.write(chunk);
    sent += chunk.length;
    if (!more) await Promise.race([new Promise<void>((r) => socket.once('drain', () => r())), onClose]);
  }
  // All of it written (or the broker hung up): give the broker a moment to answer the header.
  await new Promise((r) => setTimeout(r, 500));
  const closedByBroker = closed;
  socket.destroy();
  return { sent, closedByBroker };
}

describe('the embedded MQTT broker and an oversized packet', () => {
  // What the user sees: the gateway, reachable on the lab LAN for the trays (mqtt.listen beyond
  // loopback, with mqtt.usernameFile/passwordFile), is killed by the kernel's out-of-memory killer
  // or crawls: any machine on the LAN — no credentials needed — opened a connection and sent an
  // MQTT CONNECT announcing 200 MB (the Remaining Length allows 256 MB, MQTT 3.1.1 §2.2.3), and the
  // broker kept every byte of it in the gateway's memory before it even looked at the user name;
  // a few such connections and intake stops, every tray grey. A read-only subscriber (a dashboard
  // with the trays' credentials, any local program on the default 127.0.0.1) does the same with a
  // 100 MB PUBLISH that the broker reads in full before refusing it.
  // Promise broken: DESIGN.md §2 "Bad input never takes the gateway down"; status/README.md
  // "Beyond loopback, anonymous access is off".
  // Cause: gateway/src/status/mqtt-broker.ts hands each socket straight to aedes, which has no
  // packet size limit: its parser (mqtt-packet) buffers a packet whole, whatever its announced length.
  // Fix: a guard between the socket and aedes reads each packet's fixed header and closes the
  // connection as soon as a packet announces more than the limit (the gateway's own publisher,
  // once authenticated, is not limited).
  const rig = useMqttStatus('status-mqtt-limits-', {
    config: (dir) => ({ id: 'lab-limits', mqtt: { listen: { host: '0.0.0.0', port: 0 }, ...writeMqttCredentials(dir, 'mq', 'tray', 's3cret-pass') } }),
  });

  it('closes a connection whose CONNECT announces 200 MB, before it is read (no credentials needed)', async () => {
    const { port } = rig;
    const announced = 200 * 1024 * 1024;
    const { sent, closedByBroker } = await streamPacket(port, 0x10 /* CONNECT */, announced);
    expect(closedByBroker, 'the broker hung up on the oversized CONNECT').toBe(true);
    expect(sent, 'bytes the broker took before hanging up').toBeLessThan(announced / 4);
  }, 60_000);

  it('closes a subscriber that publishes 100 MB, and the gateway keeps publishing', async () => {
    const { port, mq } = rig;
    const announced = 100 * 1024 * 1024;
    const { sent, closedByBroker } = await streamPacket(port, 0x30 /* PUBLISH, QoS 0 */, announced, connectPacket('big-publisher', 'tray', 's3cret-pass'));
    expect(closedByBroker, 'the broker hung up on the oversized PUBLISH').toBe(true);
    expect(sent, 'bytes the broker took before hanging up').toBeLessThan(announced / 4);
    // The trays are unaffected: the retained status still reads.
    const lines = await mosquittoSubLines(port, 'lab-gateway/lab-limits/status', ['-u', 'tray', '-P', 's3cret-pass', '-C', '1', '-W', '10']);
    expect(JSON.parse(lines[0]!.payload).gatewayId).toBe('lab-limits');
    expect(mq.publisher?.connected).toBe(true);
  }, 60_000);

  it("the gateway's own status is not limited: a site with 400 analyzers still reaches the trays", async () => {
    // Its status grows with the analyzers (each one in `endpoints` and `endpointDetail`): the limit
    // is the subscribers', lifted for the publisher once it has authenticated.
    const { dir, store } = rig;
    const config = makeConfig(path.join(dir, 'data'), { id: 'lab-big' });
    config.analyzers = Array.from({ length: 400 }, (_, i) => ({ id: `analyzer-with-a-long-name-${i}`, profile: 'sysmex-xn', tcp: { listen: { host: '127.0.0.1', port: 0 } } }));
    const bigModel = new StatusModel({ config, store, telemetry: new Telemetry(), version: 't', startedAt: new Date().toISOString() });
    const big = new MqttStatus({ config, model: bigModel, log: silentLogger });
    await big.start();
    try {
      const lines = await mosquittoSubLines(big.broker!.address().port, 'lab-gateway/lab-big/status', ['-C', '1', '-W', '10']);
      expect(lines[0]!.payload.length, 'the status is larger than a subscriber may send').toBeGreaterThan(MAX_SUBSCRIBER_PACKET_BYTES);
      expect(JSON.parse(lines[0]!.payload).endpoints).toHaveLength(401);
      expect(big.publisher?.connected).toBe(true);
    } finally {
      await big.stop();
      await bigModel.stop();
    }
  }, 60_000);
});

/**
 * The SUBACK return codes of one SUBSCRIBE (MQTT 3.1.1 §3.9.3: the QoS granted, or 0x80 for a
 * filter refused). mqtt.js rejects a SUBACK with a 0x80 in it; the codes are on its packet.
 */
async function subscribeCodes(client: mqtt.MqttClient, filters: string | string[], qos: 0 | 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

describe('the embedded MQTT broker and a subscriber that subscribes without end', () => {
  // What the user sees: the gateway's memory climbs all week and it is eventually killed (intake
  // stops, every tray grey): a dashboard with a persistent session (clean session 0, as Node-RED
  // and Grafana's MQTT source can be set) subscribed in a loop to one topic per order, sample or
  // timestamp — 200,000 topic filters held 200 MB in the gateway, kept after it disconnected (the
  // broker keeps a persistent session's subscriptions until the client comes back to end it).
  // Promise broken: DESIGN.md §2 "Bad input never takes the gateway down"; status/README.md
  // "subscribers are read-only" — a reader can still make the broker hold any amount of memory.
  // Cause: gateway/src/status/mqtt-broker.ts gives aedes no authorizeSubscribe: every filter of
  // every client is granted and stored (aedes has no limit of its own).
  // Fix: at most MAX_SUBSCRIPTIONS_PER_CLIENT (1,000) distinct filters per client, each at most
  // MAX_TOPIC_FILTER_BYTES (1 KiB); more are refused with the SUBACK failure code 0x80 (MQTT 3.1.1
  // §3.9.3), the client stays connected with the subscriptions it has.
  const rig = useMqttStatus('status-mqtt-subs-', { config: { id: 'lab-subs' } });

  it('grants a client at most 1,000 topic filters; the next are refused (0x80) and it keeps reading the status', async () => {
    const { port } = rig;
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'looping-dashboard', clean: false, reconnectPeriod: 0 });
    const statuses: string[] = [];
    client.on('message', (topic, payload) => topic.endsWith('/status') && statuses.push(payload.toString()));
    await client.subscribeAsync('lab-gateway/lab-subs/status', { qos: 0 });
    let granted = 0;
    let refused = 0;
    for (let batch = 0; batch < 20; batch++) {
      const filters = Array.from({ length: 250 }, (_, i) => `lab-gateway/lab-subs/orders/ACC-${batch}-${i}`);
      for (const code of await subscribeCodes(client, filters, 1)) (code === 128 ? refused++ : granted++);
    }
    // One filter of 2 KiB: no gateway topic is longer than about 150 bytes.
    const [long] = await subscribeCodes(client, `lab-gateway/lab-subs/${'x'.repeat(2048)}`, 0);
    expect(granted + 1, 'filters granted, with the status one').toBe(1000);
    expect(refused).toBe(5000 - 999);
    expect(long).toBe(128);
    expect(client.connected, 'a refused filter does not cost the client its connection').toBe(true);
    // Subscribing again to one it has is not a new one; after an unsubscribe there is room again.
    expect(await subscribeCodes(client, 'lab-gateway/lab-subs/orders/ACC-0-0', 1)).toEqual([1]);
    await client.unsubscribeAsync('lab-gateway/lab-subs/orders/ACC-0-1');
    expect(await subscribeCodes(client, 'lab-gateway/lab-subs/orders/ACC-new', 1)).toEqual([1]);
    await waitFor(() => statuses.length > 0, 'the status');
    await client.endAsync();
  }, 60_000);
});

