/**
 * Navigation policy of the status window: it shows the gateway's own page and nothing else.
 * Links elsewhere are refused (not opened in the window, not opened in a new one).
 */
export function sameOrigin(target: string, gatewayUrl: string): boolean {
  try {
    return new URL(target).origin === new URL(gatewayUrl).origin;
  } catch {
    return false;
  }
}

/** What the window does with a navigation or window-open request. */
export function navigationDecision(target: string, gatewayUrl: string): 'allow' | 'deny' {
  return sameOrigin(target, gatewayUrl) ? 'allow' : 'deny';
}
