/**
 * A gateway renamed on a site broker (Mosquitto): IT changes `gateway.id` from lab-old to lab-new
 * and restarts it. The broker kept lab-old's retained topics for ever: its availability `offline`,
 * its last status, its endpoints and its last alert. Every dashboard (or tray) subscribing to
 * `lab-gateway/+/…` later was handed a second gateway, offline, with an alert, that no longer
 * exists: the lab technician saw "Gateway lab-old offline" next to the running lab-new, every day.
 * Now the data directory remembers the ids the gateway published under on that broker
 * (`mqtt-published.json`), and a gateway started under a new id clears the old id's retained
 * topics. Only its own: an old id another gateway publishes under now (its data directory or its
 * configuration copied to another box) is that gateway's, whether it is online, stopped, or slow
 * to come back, and is never cleared.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig, mosquittoSubLines, openStore, tempDir, useMosquitto, waitFor } from '../fixtures/status/harness.ts';

interface Running {
  telemetry: Telemetry;
  mq: MqttStatus;
  stop: () => Promise<void>;
}

describe('a gateway renamed (gateway.id) on an external broker', () => {
  const broker = useMosquitto('status-mqtt-retired-broker-');
  const tmp = tempDir('status-mqtt-retired-');
  afterAll(() => tmp.cleanup());
  const running: Running[] = [];
  afterAll(async () => {
    for (const r of running.splice(0)) await r.stop();
  });

  async function start(id: string, box: string): Promise<Running> {
    // A former id is watched for two publish intervals and a second before it is cleared (3 s here).
    const config = makeConfig(path.join(tmp.dir, box), { id, mqtt: { broker: `mqtt://127.0.0.1:${broker.port}`, publishIntervalMs: 1_000 } });
    const store: EventStore = await openStore(config.gateway.dataDir);
    const telemetry = new Telemetry();
    const model = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString() });
    const mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    const r: Running = {
      telemetry,
      mq,
      stop: async () => {
        const at = running.indexOf(r);
        if (at >= 0) running.splice(at, 1);
        await mq.stop();
        await model.stop();
        await store.close();
      },
    };
    running.push(r);
    return r;
  }

  /** What a dashboard subscribing to every gateway now is handed: the retained topics, by gateway id. */
  async function retainedByGateway(): Promise<Map<string, string[]>> {
    const lines = await mosquittoSubLines(broker.port, 'lab-gateway/+/#', ['--retained-only', '-W', '1']);
    const by = new Map<string, string[]>();
    for (const l of lines) {
      const id = l.topic.split('/')[1]!;
      by.set(id, [...(by.get(id) ?? []), l.topic.split('/').slice(2).join('/')].sort());
    }
    return by;
  }

  const idsFile = (box: string): { broker: string; gatewayIds: string[] } => JSON.parse(readFileSync(path.join(tmp.dir, box, 'mqtt-published.json'), 'utf8'));
  const idsIn = (box: string): string => idsFile(box).gatewayIds.join(',');

  it("clears the old id's retained status, availability, endpoints and last alert, and leaves other gateways' alone", async () => {
    const neighbour = await start('lab-next-door', 'box-2');
    const old = await start('lab-old', 'box-1');
    old.telemetry.alert('warning', 'GW_TEST_ALERT', 'an alert of the gateway before its rename');
    await waitFor(async () => (await retainedByGateway()).get('lab-old')?.includes('alerts'), 'the retained alert of lab-old');
    await old.stop();
    expect((await retainedByGateway()).get('lab-old')).toEqual(['alerts', 'availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);

    await start('lab-new', 'box-1');
    // Cleared once lab-old has been watched (3 s here) without a gateway publishing under it.
    const seen = await waitFor(async () => {
      const s = await retainedByGateway();
      return s.has('lab-old') ? undefined : s;
    }, 'lab-old gone from the broker', 20_000);
    expect(seen.get('lab-new')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
    expect(seen.get('lab-next-door')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
    expect(idsFile('box-1')).toMatchObject({ broker: `mqtt://127.0.0.1:${broker.port}`, gatewayIds: ['lab-new'] });
    await neighbour.stop();
  }, 60_000);

  it('leaves an old id another gateway runs under (its data directory copied), online, and still when it is stopped', async () => {
    // box-3's data directory was copied to box-4, which runs as lab-a; box-3 is renamed lab-b.
    const first = await start('lab-a', 'box-3');
    await first.stop();
    mkdirSync(path.join(tmp.dir, 'box-4'), { recursive: true });
    writeFileSync(path.join(tmp.dir, 'box-4', 'mqtt-published.json'), readFileSync(path.join(tmp.dir, 'box-3', 'mqtt-published.json')));
    const twin = await start('lab-a', 'box-4');
    const renamed = await start('lab-b', 'box-3');
    // lab-a is box-4's now: box-3 lets it go at once.
    await waitFor(() => idsIn('box-3') === 'lab-b', "lab-a out of box-3's file", 20_000);
    expect((await retainedByGateway()).get('lab-a')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);

    // box-4 stopped for a while (maintenance): a dashboard shows lab-a offline, and box-3's next start leaves it so.
    await twin.stop();
    await renamed.stop();
    await start('lab-b', 'box-3');
    expect((await retainedByGateway()).get('lab-a')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
  }, 60_000);

  it("leaves the topics of a live gateway whose id a copy of its configuration ran under, though the copy's stop left it reading offline", async () => {
    const broker_ = `mqtt://127.0.0.1:${broker.port}`;
    const live = await start('lab-c', 'box-5');
    live.telemetry.alert('warning', 'GW_TEST_ALERT', 'an alert of the live gateway');
    await waitFor(async () => (await retainedByGateway()).get('lab-c')?.includes('alerts'), 'the retained alert of lab-c');
    // box-6 ran a copy of box-5's configuration (lab-c) for a moment, and its stop published lab-c
    // `offline` over the live gateway's `online`; then IT renamed it lab-d.
    mkdirSync(path.join(tmp.dir, 'box-6'), { recursive: true });
    writeFileSync(path.join(tmp.dir, 'box-6', 'mqtt-published.json'), JSON.stringify({ broker: broker_, gatewayIds: ['lab-c'], instances: { 'lab-c': ['box-6-run-1'] } }));
    const pub = await mqtt.connectAsync(broker_, { clientId: 'copy-of-lab-c' });
    await pub.publishAsync('lab-gateway/lab-c/availability', JSON.stringify({ gatewayId: 'lab-c', state: 'offline', at: new Date().toISOString(), reason: 'gateway stopped', instance: 'box-6-run-1' }), { qos: 1, retain: true });
    await pub.endAsync();
    await start('lab-d', 'box-6');
    // box-6 watches lab-c, sees the live gateway publish, and lets it go.
    await waitFor(() => idsIn('box-6') === 'lab-d', "lab-c out of box-6's file", 20_000);
    const seen = await retainedByGateway();
    expect(seen.get('lab-c')).toEqual(['alerts', 'availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
    await live.stop();
  }, 60_000);
});
