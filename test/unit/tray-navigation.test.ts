import { describe, expect, it } from 'vitest';
import { navigationDecision, sameOrigin } from '../../desktop/src/navigation.ts';

describe('status window navigation lock', () => {
  const gw = 'http://10.0.0.5:8484';
  it('allows the gateway page and its paths', () => {
    expect(navigationDecision('http://10.0.0.5:8484/', gw)).toBe('allow');
    expect(navigationDecision('http://10.0.0.5:8484/api/status?x=1#y', gw)).toBe('allow');
  });
  it('denies other hosts, ports, schemes and garbage', () => {
    expect(navigationDecision('http://10.0.0.5:8485/', gw)).toBe('deny');
    expect(navigationDecision('https://10.0.0.5:8484/', gw)).toBe('deny');
    expect(navigationDecision('http://evil.example/', gw)).toBe('deny');
    expect(navigationDecision('file:///etc/passwd', gw)).toBe('deny');
    expect(navigationDecision('javascript:alert(1)', gw)).toBe('deny');
    expect(sameOrigin('not a url', gw)).toBe(false);
  });
});
