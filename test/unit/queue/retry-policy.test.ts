import { backoffCeilingMs, backoffDelayMs, DEFAULT_RETRY_POLICY, givesUpBeforeNextRun, giveUpAt, retryDelayMs } from '../../../src/queue/retry-policy';

const DEFAULT_BACKOFF = DEFAULT_RETRY_POLICY.backoff;

describe('backoff with full jitter', () => {
  test('the ceiling doubles from the base per retry and stops at the cap', () => {
    const ceilings = [1, 2, 3, 4, 5, 8, 9, 10, 50].map((retry) => backoffCeilingMs(retry, DEFAULT_BACKOFF));
    expect(ceilings).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 128_000, 256_000, 300_000, 300_000]);
  });

  test('absurd retry numbers stay at the cap, never Infinity or NaN', () => {
    expect(backoffCeilingMs(10_000, DEFAULT_BACKOFF)).toBe(300_000);
    expect(backoffCeilingMs(Number.MAX_SAFE_INTEGER, DEFAULT_BACKOFF)).toBe(300_000);
    expect(backoffCeilingMs(0, DEFAULT_BACKOFF)).toBe(1_000);
    expect(backoffCeilingMs(-3, DEFAULT_BACKOFF)).toBe(1_000);
  });

  test('the delay is the random fraction of the ceiling, in whole milliseconds', () => {
    expect(backoffDelayMs(1, DEFAULT_BACKOFF, () => 0)).toBe(0);
    expect(backoffDelayMs(1, DEFAULT_BACKOFF, () => 0.5)).toBe(500);
    expect(backoffDelayMs(3, DEFAULT_BACKOFF, () => 0.25)).toBe(1_000);
    expect(backoffDelayMs(3, DEFAULT_BACKOFF, () => 0.9999999)).toBe(3_999);
    expect(backoffDelayMs(20, { baseMs: 10, maxMs: 50 }, () => 0.5)).toBe(25);
  });

  test('every delay lies in [0, ceiling) whatever the random source gives', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let retry = 1; retry <= 30; retry += 1) {
      for (let sample = 0; sample < 50; sample += 1) {
        const delay = backoffDelayMs(retry, DEFAULT_BACKOFF, random);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(backoffCeilingMs(retry, DEFAULT_BACKOFF));
      }
    }
    // A misbehaving source is clamped rather than trusted.
    expect(backoffDelayMs(1, DEFAULT_BACKOFF, () => -1)).toBe(0);
    expect(backoffDelayMs(1, DEFAULT_BACKOFF, () => 7)).toBe(1_000);
  });
});

describe('the retry policy', () => {
  const HOUR = 60 * 60 * 1000;

  test('by default: 1 s doubling to 5 min, given up a day after the job was stored', () => {
    expect(DEFAULT_RETRY_POLICY).toEqual({ giveUpAfterMs: 24 * HOUR, backoff: { baseMs: 1_000, maxMs: 300_000 } });
    expect(giveUpAt(1_000, DEFAULT_RETRY_POLICY)).toBe(1_000 + 24 * HOUR);
  });

  test('a retry never comes sooner than the remote asked, nor sooner than its backoff', () => {
    expect(retryDelayMs(3, undefined, DEFAULT_BACKOFF, () => 0.5)).toBe(2_000);
    expect(retryDelayMs(3, 60_000, DEFAULT_BACKOFF, () => 0.5)).toBe(60_000);
    expect(retryDelayMs(3, 10, DEFAULT_BACKOFF, () => 0.5)).toBe(2_000);
  });

  test('a job may be given up before its next run when the longest wait (the cap or Retry-After) and a minute pass the deadline', () => {
    const createdAt = 0;
    const deadline = 24 * HOUR;
    const cap = DEFAULT_BACKOFF.maxMs;
    expect(givesUpBeforeNextRun(createdAt, undefined, deadline - cap - 60_000, DEFAULT_RETRY_POLICY)).toBe(false);
    expect(givesUpBeforeNextRun(createdAt, undefined, deadline - cap - 60_000 + 1, DEFAULT_RETRY_POLICY)).toBe(true);
    expect(givesUpBeforeNextRun(createdAt, HOUR, deadline - HOUR - 60_000, DEFAULT_RETRY_POLICY)).toBe(false);
    expect(givesUpBeforeNextRun(createdAt, HOUR, deadline - HOUR - 60_000 + 1, DEFAULT_RETRY_POLICY)).toBe(true);
    // A Retry-After shorter than the cap changes nothing.
    expect(givesUpBeforeNextRun(createdAt, 10, deadline - cap - 60_000 + 1, DEFAULT_RETRY_POLICY)).toBe(true);
  });
});
