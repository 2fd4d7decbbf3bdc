/**
 * Exponential backoff with full jitter: the n-th retry waits a uniformly random time in
 * [0, min(maxMs, baseMs · 2^(n-1))). Full jitter spreads the retries of many jobs that failed
 * together (a remote outage) instead of sending them back in waves.
 */

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 300_000 };

/** The ceiling of the wait before retry number `retry` (1 for the first retry). */
export function backoffCeilingMs(retry: number, policy: BackoffPolicy): number {
  const exponent = Math.min(Math.max(0, Math.floor(retry) - 1), 1023);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
}

/** The wait before retry number `retry`; `random` returns a number in [0, 1) like Math.random. */
export function backoffDelayMs(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const fraction = Math.min(Math.max(random(), 0), 1);
  return Math.floor(fraction * backoffCeilingMs(retry, policy));
}
