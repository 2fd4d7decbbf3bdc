/**
 * When a failing job runs again, and when it is given up: the one retry policy. The worker decides
 * by it, and a handler that must report every outcome (an outbound send's status) asks it whether
 * the worker would give the job up before its next run.
 *
 * Backoff is exponential with full jitter: the n-th retry waits a uniformly random time in
 * [0, min(maxMs, baseMs · 2^(n-1))), and never less than the remote asked for (Retry-After). Full
 * jitter spreads the retries of many jobs that failed together (a remote outage) instead of sending
 * them back in waves.
 */

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export interface RetryPolicy {
  /** A job still failing this long after it was stored is given up. */
  giveUpAfterMs: number;
  backoff: BackoffPolicy;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  giveUpAfterMs: 24 * 60 * 60 * 1000,
  backoff: { baseMs: 1_000, maxMs: 300_000 },
};

/** A minute for clock reads and the run itself, when a handler asks whether a job outlives the deadline. */
const NEXT_RUN_SLACK_MS = 60_000;

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

/** The wait before retry number `retry`: the backoff, or the remote's Retry-After when longer. */
export function retryDelayMs(retry: number, retryAfterMs: number | undefined, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.max(retryAfterMs ?? 0, backoffDelayMs(retry, policy, random));
}

/** When a job stored at `createdAt` is given up: a retry due later is not made. */
export const giveUpAt = (createdAt: number, policy: RetryPolicy): number => createdAt + policy.giveUpAfterMs;

/**
 * Whether a job failing at `now` may be given up before it runs again: its next run may wait as
 * long as the backoff's cap (or the remote's Retry-After when longer), plus a minute of slack.
 */
export function givesUpBeforeNextRun(createdAt: number, retryAfterMs: number | undefined, now: number, policy: RetryPolicy): boolean {
  return now + Math.max(retryAfterMs ?? 0, policy.backoff.maxMs) + NEXT_RUN_SLACK_MS > giveUpAt(createdAt, policy);
}
