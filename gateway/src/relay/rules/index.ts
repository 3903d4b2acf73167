import type { RelayConfig } from '../../config/types.ts';
import type { EventType } from '../../events/types.ts';
import { consumableUsedRule } from './consumable-used.ts';
import { invoiceEligibleRule } from './invoice-eligible.ts';
import { milestoneNotesRule } from './milestone-notes.ts';
import { orderCancelledRule } from './order-cancelled.ts';
import { orderCreatedRule } from './order-created.ts';
import { resultValidatedRule } from './result-validated.ts';
import { thresholdBreachedRule } from './threshold-breached.ts';
import type { PostingRule } from './types.ts';

export const ALL_RULES: readonly PostingRule[] = [
  orderCreatedRule,
  orderCancelledRule,
  resultValidatedRule,
  invoiceEligibleRule,
  milestoneNotesRule,
  consumableUsedRule,
  thresholdBreachedRule,
];

/** The rule per event type that relay.rules turns on (absent key = on). */
export function rulesFor(config: Pick<RelayConfig, 'rules'>): Map<EventType, PostingRule> {
  const out = new Map<EventType, PostingRule>();
  for (const rule of ALL_RULES) for (const t of rule.types) if (config.rules[t] !== false) out.set(t, rule);
  return out;
}

export type { PostingRule, RuleContext, RuleResult } from './types.ts';
