/**
 * A gateway renamed on a site broker (Mosquitto): IT changes `gateway.id` from lab-old to lab-new
 * and restarts it. The broker kept lab-old's retained topics for ever: its availability `offline`,
 * its last status, its endpoints and its last alert. Every dashboard (or tray) subscribing to
 * `lab-gateway/+/…` later was handed a second gateway, offline, with an alert, that no longer
 * exists: the lab technician saw "Gateway lab-old offline" next to the running lab-new, every day.
 * Now the data directory remembers the ids the gateway published under on that broker
 * (`mqtt-published.json`), and a gateway started under a new id clears the old id's retained
 * topics — unless that id still reads `online` (a gateway runs under it elsewhere), then at a
 * later start once it does not.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
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
    const config = makeConfig(path.join(tmp.dir, box), { id, mqtt: { broker: `mqtt://127.0.0.1:${broker.port}`, publishIntervalMs: 60_000 } });
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

  const idsFile = (box: string): unknown => JSON.parse(readFileSync(path.join(tmp.dir, box, 'mqtt-published.json'), 'utf8'));

  it("clears the old id's retained status, availability, endpoints and last alert, and leaves other gateways' alone", async () => {
    const neighbour = await start('lab-next-door', 'box-2');
    const old = await start('lab-old', 'box-1');
    old.telemetry.alert('warning', 'GW_TEST_ALERT', 'an alert of the gateway before its rename');
    await waitFor(async () => (await retainedByGateway()).get('lab-old')?.includes('alerts'), 'the retained alert of lab-old');
    await old.stop();
    expect((await retainedByGateway()).get('lab-old')).toEqual(['alerts', 'availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);

    await start('lab-new', 'box-1');
    // start() waits for the clearing (at most 2 s): on a slow machine it may end just after.
    const seen = await waitFor(async () => {
      const s = await retainedByGateway();
      return s.has('lab-old') ? undefined : s;
    }, 'lab-old gone from the broker');
    expect(seen.get('lab-new')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
    expect(seen.get('lab-next-door')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
    expect(idsFile('box-1')).toEqual({ broker: `mqtt://127.0.0.1:${broker.port}`, gatewayIds: ['lab-new'] });
    await neighbour.stop();
  }, 30_000);

  it('leaves an old id that reads online (a gateway still runs under it), and clears it at a later start once it is offline', async () => {
    // box-3's data directory was copied to box-4, which runs as lab-a; box-3 is renamed lab-b.
    const first = await start('lab-a', 'box-3');
    await first.stop();
    const twin = await start('lab-a', 'box-4');
    const renamed = await start('lab-b', 'box-3');
    expect((await retainedByGateway()).get('lab-a')).toEqual(['availability', 'endpoints/lis', 'endpoints/xn-1', 'status']);
    expect(idsFile('box-3')).toEqual({ broker: `mqtt://127.0.0.1:${broker.port}`, gatewayIds: ['lab-b', 'lab-a'] });

    await twin.stop();
    await renamed.stop();
    await start('lab-b', 'box-3');
    await waitFor(async () => !(await retainedByGateway()).has('lab-a'), 'lab-a gone from the broker');
    expect(idsFile('box-3')).toEqual({ broker: `mqtt://127.0.0.1:${broker.port}`, gatewayIds: ['lab-b'] });
  }, 30_000);
});
