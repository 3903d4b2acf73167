/**
 * A dashboard or tray that connects with MQTT keepalive 0 (no PINGREQ: allowed by MQTT 3.1.1
 * §3.1.2.10, and the default of some MQTT libraries) on a laptop that is then closed, unplugged or
 * taken off the Wi-Fi, sends no FIN. The broker never hears from it again and, without TCP
 * keepalive, keeps the socket, and with it one of `mqtt.maxConnections`' slots, for good: a few
 * such laptops a week and the trays are refused "server unavailable". The HL7 and analyzer links
 * already turn TCP keepalive on; the broker's accepted sockets did not. Linux shows a socket's
 * active timer in /proc/net/tcp (`tr` 2 = keepalive), which an idle established socket has only
 * with keepalive on. Real aedes broker, real mqtt.js client.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { useMqttStatus, waitFor } from '../fixtures/status/harness.ts';

/** The timer of the established TCP socket from 127.0.0.1:`localPort` to `remotePort`: `tr` of /proc/net/tcp. */
function timerOf(localPort: number, remotePort: number): number | undefined {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const [, local, remote, state, , timer] = f;
    if (state !== '01' || !local!.endsWith(`:${hex(localPort)}`) || !remote!.endsWith(`:${hex(remotePort)}`)) continue;
    return Number.parseInt(timer!.split(':')[0]!, 16);
  }
  return undefined;
}

describe('the embedded MQTT broker and subscribers that vanish without a word', () => {
  const rig = useMqttStatus('status-mqtt-keepalive-', { config: { id: 'lab-keepalive' } });

  it('turns TCP keepalive on for each subscriber it accepts, so a vanished laptop frees its slot', async () => {
    const client = await mqtt.connectAsync(rig.url, { clientId: 'laptop-dashboard', keepalive: 0, reconnectPeriod: 0 });
    try {
      const clientPort = (client.stream as unknown as { localPort: number }).localPort;
      // The broker's side of the connection: local port = the broker's, remote = the client's.
      let timer: number | undefined;
      await waitFor(() => {
        timer = timerOf(rig.port, clientPort);
        return timer === 2;
      }, 'a keepalive timer on the broker side', 3_000).catch(() => undefined);
      expect(timer, 'the broker side of an idle subscriber connection has a keepalive timer (tr 2), not none (0)').toBe(2);
    } finally {
      await client.endAsync(true);
    }
  });
});
