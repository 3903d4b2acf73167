import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mosquittoSubLines, useMosquitto, useMqttStatus, waitFor, writeMqttCredentials } from '../fixtures/status/harness.ts';

describe('the site broker refuses the gateway, then IT fixes the broker', () => {
  // What IT saw: the site's Mosquitto requires a user name and password. The gateway's user was
  // not on the broker yet when the gateway started (or the broker's account was re-created, its
  // authentication backend briefly away: CONNACK "not authorized" / "server unavailable"). IT adds
  // the user on the broker and reloads it — and the gateway never tries again: no status, no
  // availability, the trays and dashboards empty, /api/status `mqtt.connected: false` for as long
  // as the gateway runs, until someone restarts it. A broker that is simply away (connection
  // refused, a timeout) is retried every 2 s; a broker that answers "no" once was never asked again.
  // Promise broken: status/README.md MQTT_UNREACHABLE "cleared when it connects", mqtt-publisher.ts
  // "while the broker is unreachable updates are dropped (the next connect publishes the current
  // state)" — there was no next connect.
  // Cause: gateway/src/status/mqtt-publisher.ts connects with mqtt.js's defaults, under which a
  // CONNACK with a refusal code suppresses every later reconnection (`reconnectOnConnackError`
  // false).
  // Fix: reconnect after a refused CONNACK too, at the same period (the refusal is logged once at
  // warn and stays in the status's `mqtt.lastError` until a connection succeeds).
  // The broker knows the trays' user only: the gateway's is not set up yet.
  const broker = useMosquitto('status-mqtt-refused-broker-', { user: ['tray', 'tray-pass'] });
  const rig = useMqttStatus('status-mqtt-refused-', {
    config: (dir) => ({
      id: 'lab-refused',
      mqtt: { broker: `mqtt://127.0.0.1:${broker.port}`, ...writeMqttCredentials(dir, 'gw', 'gateway', 'gateway-pass'), publishIntervalMs: 60_000 },
    }),
  });

  it('connects and publishes once the broker accepts it, without a restart of the gateway', async () => {
    const { model, mq } = rig;
    const { port: brokerPort, passwords } = broker;
    const refused = await waitFor(() => {
      const link = model.toApiStatus().mqtt;
      return link && !link.connected && link.lastError ? link : undefined;
    }, 'the refusal in the status');
    expect(refused.lastError).toMatch(/not authori[sz]ed/i);

    // IT adds the gateway's user on the broker; Mosquitto reloads its password file on SIGHUP.
    execFileSync('mosquitto_passwd', ['-b', passwords, 'gateway', 'gateway-pass']);
    broker.proc.kill('SIGHUP');
    await waitFor(
      async () => (await mosquittoSubLines(brokerPort, '$SYS/broker/version', ['-u', 'gateway', '-P', 'gateway-pass', '-C', '1', '-W', '1'])).length > 0,
      'the broker accepting the gateway user',
    );

    await waitFor(() => mq.publisher?.connected, 'the gateway connected to the broker', 15_000);
    const lines = await mosquittoSubLines(brokerPort, 'lab-gateway/lab-refused/availability', ['-u', 'tray', '-P', 'tray-pass', '-C', '1', '-W', '5']);
    expect(JSON.parse(lines[0]!.payload)).toMatchObject({ gatewayId: 'lab-refused', state: 'online' });
    expect(model.toApiStatus().mqtt).toMatchObject({ connected: true, lastError: null });
  }, 30_000);
});

describe("the site broker accepts the gateway but drops its publishes (an ACL that does not grant it write)", () => {
  // What IT saw: after a change of the site Mosquitto's ACL file (a typo in the gateway's topic,
  // the gateway's `gateway.id` renamed, write granted to another user), the dashboards and trays
  // showed the retained status of before the change, going stale, while /api/status, the page and
  // `lab-gateway status` said "MQTT connected", health OK. MQTT 3.1.1 gives a publisher no word of
  // a publish the broker's ACL drops (Mosquitto answers a QoS 1 one with PUBACK as well): the
  // gateway cannot tell from the connection alone.
  // Promise broken: status/README.md `mqtt` "the MQTT publisher's broker connection … (a status
  // published is one that got through)" and MQTT_UNREACHABLE "the tray and dashboards get no
  // status" — here they got none and nothing said so.
  // Cause: gateway/src/status/mqtt-publisher.ts takes a CONNACK for proof that its publishes
  // reach the subscribers.
  // Fix: the publisher subscribes to its own availability topic and expects its `online` back;
  // when the broker grants that subscription (the gateway may read) and the `online` it published
  // does not come back, the link is reported down with that reason.
  // Read granted; write only on another gateway's topics (the id was renamed on the gateway).
  const broker = useMosquitto('status-mqtt-acl-broker-', {
    user: ['gateway', 'gateway-pass'],
    acl: 'user gateway\ntopic read lab-gateway/#\ntopic read $SYS/#\ntopic write lab-gateway/lab-old-name/#\n',
  });
  const rig = useMqttStatus('status-mqtt-acl-', {
    config: (dir) => ({
      id: 'lab-acl',
      mqtt: { broker: `mqtt://127.0.0.1:${broker.port}`, ...writeMqttCredentials(dir, 'gw', 'gateway', 'gateway-pass'), publishIntervalMs: 1_000 },
    }),
    model: { pollIntervalMs: 100, mqttGraceMs: 300 },
  });

  it('says in the status that no publish reaches the subscribers, and why', async () => {
    const { model } = rig;
    const { port: brokerPort, acl } = broker;
    // Nothing of the gateway reaches a subscriber with read access to its topics.
    const seen = await mosquittoSubLines(brokerPort, 'lab-gateway/lab-acl/#', ['-u', 'gateway', '-P', 'gateway-pass', '-W', '3']);
    expect(seen).toEqual([]);
    const status = await waitFor(() => {
      const s = model.toApiStatus();
      return s.healthReasons.some((r) => r.code === 'MQTT_UNREACHABLE') ? s : undefined;
    }, 'MQTT_UNREACHABLE', 15_000);
    expect(status.mqtt).toMatchObject({ connected: false });
    expect(status.mqtt?.lastError).toMatch(/does not deliver/);
    expect(status.healthReasons.find((r) => r.code === 'MQTT_UNREACHABLE')!.message).toMatch(/ACL/);

    // IT corrects the ACL (Mosquitto reloads it on SIGHUP): the reason clears with the next
    // publish seen back, and stays clear over the following intervals.
    writeFileSync(acl, 'user gateway\ntopic readwrite lab-gateway/#\ntopic read $SYS/#\n');
    broker.proc.kill('SIGHUP');
    await waitFor(() => model.toApiStatus().mqtt?.connected, 'the link delivering again', 15_000);
    await new Promise((r) => setTimeout(r, 7_000));
    const after = model.toApiStatus();
    expect(after.mqtt).toMatchObject({ connected: true, lastError: null });
    expect(after.healthReasons.map((r) => r.code)).not.toContain('MQTT_UNREACHABLE');
    const lines = await mosquittoSubLines(brokerPort, 'lab-gateway/lab-acl/status', ['-u', 'gateway', '-P', 'gateway-pass', '-C', '1', '-W', '5']);
    expect(JSON.parse(lines[0]!.payload)).toMatchObject({ gatewayId: 'lab-acl' });
  }, 45_000);
});
