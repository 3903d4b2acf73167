/**
 * One lifecycle for every long-lived component (STYLE.md practice 6): `new` constructs,
 * `start()` starts, `stop()` is idempotent, graceful and bounded by a deadline.
 */
export type ComponentStatus = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface Component {
  readonly name: string;
  readonly status: ComponentStatus;
  start(): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
}
