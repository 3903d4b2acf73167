/**
 * The alerts topic as DESIGN.md §5 fixes it: "MQTT topics (retained, JSON): … `lab-gateway/
 * <gatewayId>/alerts`". The gateway's real publisher, on its embedded broker (aedes) and on a real
 * Mosquitto, and real MQTT clients (the `mqtt` package) subscribing before and after an alert.
 */
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { useMosquitto, useMqttStatus, waitFor } from '../fixtures/status/harness.ts';

interface AlertMessage {
  retain: boolean;
  body: { gatewayId?: string; severity?: string; code?: string; message?: string; at?: string };
}

/** An MQTT client subscribed to `topic`, collecting what arrives there with its RETAIN flag. */
async function subscriber(url: string, topic: string): Promise<{ messages: AlertMessage[]; end: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { clean: true, reconnectPeriod: 0 });
  const messages: AlertMessage[] = [];
  client.on('message', (t, payload, packet) => {
    if (t === topic) messages.push({ retain: packet.retain, body: JSON.parse(payload.toString()) as AlertMessage['body'] });
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return { messages, end: () => client.endAsync(true) };
}

/**
 * What the lab saw: a lab's dashboard (and another team's monitoring program) was written to
 * DESIGN.md §5, which names the alerts topic among the retained ones. Restarted after an update, it
 * subscribed to `lab-gateway/<id>/alerts` and got nothing: "the reagent lot expires tomorrow",
 * raised ten minutes before, was published not retained, so only a subscriber connected at that
 * moment heard of it. Promise broken: DESIGN.md §5 "MQTT topics (retained, JSON)", the alerts
 * topic among them. Now each alert is published retained: a subscriber that connects later gets
 * the last one (RETAIN 1, with the `at` it was raised), those subscribed get each one live (RETAIN 0).
 */
function lateSubscriberGetsTheLastAlert(rig: ReturnType<typeof useMqttStatus>, gatewayId: string, url: () => string): void {
  const topic = `lab-gateway/${gatewayId}/alerts`;

  it('a subscriber connecting after an alert gets it retained, with when it was raised; one subscribed before got it live', async () => {
    const live = await subscriber(url(), topic);
    try {
      rig.telemetry.alert('warning', 'REAGENT_LOT_EXPIRING', 'reagent lot 4711 expires tomorrow');
      const heard = await waitFor(() => live.messages.find((m) => m.body.code === 'REAGENT_LOT_EXPIRING'), 'the alert, live');
      expect(heard.retain, 'a live alert arrives with RETAIN 0 (MQTT 3.1.1 §3.3.1.3)').toBe(false);

      const late = await subscriber(url(), topic);
      try {
        const got = await waitFor(() => late.messages[0], 'the retained alert, for a subscriber connecting later', 5_000);
        expect(got.retain, 'the copy the broker kept').toBe(true);
        expect(got.body).toMatchObject({ gatewayId, severity: 'warning', code: 'REAGENT_LOT_EXPIRING', message: 'reagent lot 4711 expires tomorrow' });
        expect(got.body.at, 'dated, so a consumer tells an old one').toBe(heard.body.at);
      } finally {
        await late.end();
      }

      // A topic keeps one retained message: the newest alert replaces it.
      rig.telemetry.alert('critical', 'TEST_LAST', 'the last alert');
      await waitFor(() => live.messages.find((m) => m.body.code === 'TEST_LAST'), 'the second alert, live');
      expect(live.messages.every((m) => !m.retain), 'every alert to the subscriber already there is live').toBe(true);
      const later = await subscriber(url(), topic);
      try {
        const got = await waitFor(() => later.messages[0], 'the retained alert', 5_000);
        await new Promise((r) => setTimeout(r, 300)); // nothing else follows
        expect(later.messages.map((m) => [m.body.code, m.retain])).toEqual([['TEST_LAST', true]]);
        expect(got.body.severity).toBe('critical');
      } finally {
        await later.end();
      }
    } finally {
      await live.end();
    }
  });
}

describe('alerts topic retained, embedded broker (aedes)', () => {
  const rig = useMqttStatus('alerts-retained-aedes-', { config: { id: 'lab-ret-a', mqtt: { publishIntervalMs: 60_000 } } });
  lateSubscriberGetsTheLastAlert(rig, 'lab-ret-a', () => rig.url);
});

describe('alerts topic retained, external broker (Mosquitto)', () => {
  const broker = useMosquitto('alerts-retained-mosq-');
  const rig = useMqttStatus('alerts-retained-mosq-gw-', { config: () => ({ id: 'lab-ret-m', mqtt: { broker: `mqtt://127.0.0.1:${broker.port}`, publishIntervalMs: 60_000 } }) });
  const url = (): string => `mqtt://127.0.0.1:${broker.port}`;
  lateSubscriberGetsTheLastAlert(rig, 'lab-ret-m', url);

  /**
   * The gateway stopped (an update; the site broker stays): the last alert stays retained, as
   * raised, with its `at`. It is the last alert of this gateway, dated; the `availability` and
   * `status` topics say the gateway is stopped. Nothing in DESIGN.md or the README asks for it to
   * be cleared, and a dashboard reading the topic after the stop still learns what the last alert
   * was and when.
   */
  it('keeps the last alert retained after a graceful stop', async () => {
    const topic = 'lab-gateway/lab-ret-m/alerts';
    rig.telemetry.alert('warning', 'BEFORE_STOP', 'said just before the stop');
    const live = await subscriber(url(), topic);
    await waitFor(() => live.messages.find((m) => m.body.code === 'BEFORE_STOP'), 'the alert');
    await live.end();
    await rig.mq.stop();
    const after = await subscriber(url(), topic);
    try {
      const got = await waitFor(() => after.messages[0], 'the retained alert after the stop', 5_000);
      expect(got).toMatchObject({ retain: true, body: { code: 'BEFORE_STOP', at: expect.any(String) } });
    } finally {
      await after.end();
    }
  });
});
