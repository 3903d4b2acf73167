/**
 * The tray's tooltip while the gateway refuses the name in gatewayUrl (421, its status.allowedHosts)
 * and its status still comes by MQTT: Windows shows 127 characters of it, the state line first.
 */
import { describe, expect, it } from 'vitest';
import { gatewayAnswerProblem, TOOLTIP_MAX, trayTooltip, type TrayStatus } from '../../desktop/src/tray-state.ts';

const NOW = Date.parse('2026-03-06T10:00:00.000Z');

describe('the tooltip of a tray refused by status.allowedHosts', () => {
  /**
   * User sees: the tray, installed with the site's DNS name for the gateway, follows the gateway's
   * status over MQTT (it needs no name) — amber, "Analyzer chem-04 disconnected …" — and is refused
   * on every HTTP request. Its tooltip's second line read 'Tray settings: gateway's
   * status.allowedHosts lacks "la…': the name to add, the one thing IT needs, cut off.
   * Promise (desktop/README.md): the settings problem names the host and status.allowedHosts, in
   * the tooltip too, within Windows' 127 characters.
   */
  it('names the host and the key within 127 characters, whatever the state line', () => {
    const degraded: TrayStatus = {
      gatewayId: 'lab-hosts',
      health: 'degraded',
      healthReasons: [
        { level: 'degraded', code: 'ENDPOINT_DOWN', message: 'Analyzer chem-04 disconnected for 12 min (connect ECONNREFUSED 10.0.0.1:5000: the analyzer refuses the connection)' },
        { level: 'degraded', code: 'ENDPOINT_DOWN', message: 'Analyzer chem-08 disconnected for 12 min' },
      ],
    } as TrayStatus;
    for (const host of ['lab-gw.example', 'gw01.pathology.example.org']) {
      const problem = gatewayAnswerProblem(`http://${host}:8484`, 421)!;
      for (const input of [
        { connection: 'connected' as const, availability: 'online' as const, status: degraded, statusAt: NOW, now: NOW, configIssues: [problem] },
        { connection: 'connecting' as const, now: NOW, configIssues: [problem] },
      ]) {
        const t = trayTooltip(input);
        expect(t.length).toBeLessThanOrEqual(TOOLTIP_MAX);
        expect(t).toContain(`status.allowedHosts lacks "${host}"`);
        expect(t.split('\n')[0]).toMatch(/^Lab gateway( lab-hosts)?: (needs attention|offline)/);
      }
    }
  });
});
