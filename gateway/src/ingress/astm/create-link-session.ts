import { E1381Session } from './e1381-session.ts';
import type { AstmLinkSession, LinkSessionOptions } from './link-session.ts';
import { RecordsOnlySession } from './records-only-session.ts';

/** The link state machine for the configured low-level mode. */
export function createLinkSession(options: LinkSessionOptions): AstmLinkSession {
  switch (options.link.lowLevel) {
    case 'e1381':
      return new E1381Session(options);
    case 'records-only':
      return new RecordsOnlySession(options);
    default:
      options.link.lowLevel satisfies never;
      throw new Error(`unknown low-level mode ${String(options.link.lowLevel)}`);
  }
}
