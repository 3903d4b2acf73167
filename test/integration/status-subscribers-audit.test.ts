import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import mqtt from 'mqtt';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { makeConfig, openStore, tempDir, waitFor } from '../fixtures/status/harness.ts';

/**
 * The programs that watch the gateway over a working day: a building-management dashboard on the
 * embedded broker that goes away and comes back.
 */
describe('a dashboard with a persistent MQTT session on the embedded broker', () => {
  const tmp = tempDir('status-subscribers-');
  let store: EventStore;
  const telemetry = new Telemetry();
  let model: StatusModel;
  let mq: MqttStatus;
  let url: string;

  beforeAll(async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-bms', mqtt: { publishIntervalMs: 60_000 } });
    store = await openStore(config.gateway.dataDir);
    model = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString() });
    mq = new MqttStatus({ config, model, log: silentLogger, coalesceMs: 5 });
    await mq.start();
    url = `mqtt://127.0.0.1:${mq.broker!.address().port}`;
  });

  afterAll(async () => {
    await mq.stop();
    await model.stop();
    await store.close();
    tmp.cleanup();
  });

  // What IT saw: a building-management dashboard subscribed to `lab-gateway/<id>/#` with QoS 1 and
  // a persistent session (clean session 0, the default of several dashboard tools) was taken
  // away. The embedded broker queued every status publish for it from then on — each change and
  // every publishIntervalMs tick, a few KB each, ~100 MB a day of a working lab — in the gateway's
  // memory, without limit; when the dashboard came back it was replayed hours of stale states, one
  // after the other. Broke: bounded memory of the gateway (a subscriber that is away must not grow
  // it), and the retained topics' promise that a subscriber sees the current state.
  it('keeps no backlog of stale states for it while it is away', async () => {
    const options = { clientId: 'bms-dashboard', clean: false, reconnectPeriod: 0 } as const;
    const first = await mqtt.connectAsync(url, options);
    let retained = 0;
    first.on('message', (_t, _p, packet) => void (packet.retain && retained++));
    await first.subscribeAsync('lab-gateway/lab-bms/#', { qos: 1 });
    await waitFor(() => retained >= 3, 'the retained topics');
    await first.endAsync();

    // A morning of intake while the dashboard is away: each message changes the status (the LIS
    // link's count of messages received).
    const published = mq.publisher!.published;
    for (let i = 0; i < 60; i++) {
      telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
      await new Promise((r) => setTimeout(r, 12));
    }
    await waitFor(() => mq.publisher!.published - published >= 40, 'status publishes while the dashboard is away');

    // It comes back with its session; one more message, and it waits for that state.
    const statuses: Array<{ received: number }> = [];
    const back = await mqtt.connectAsync(url, options);
    back.on('message', (topic, payload) => {
      if (topic !== 'lab-gateway/lab-bms/status') return;
      const body = JSON.parse(payload.toString()) as { endpointDetail: Array<{ id: string; received: number }> };
      statuses.push({ received: body.endpointDetail.find((e) => e.id === 'lis')!.received });
    });
    telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
    await waitFor(() => statuses.some((s) => s.received === 61), 'the current status');
    await back.endAsync();
    const stale = statuses.filter((s) => s.received < 61);
    expect(stale.length, `stale statuses replayed to the returning dashboard: ${stale.length}`).toBe(0);
  });
});
