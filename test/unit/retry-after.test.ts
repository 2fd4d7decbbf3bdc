import { parseRetryAfter } from '../../src/retry-after';

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1);
  test.each([
    ['0', 0],
    ['120', 120_000],
    [' 3 ', 3000],
    [new Date(now + 60_000).toUTCString(), 60_000],
    [new Date(now - 60_000).toUTCString(), 0],
  ])('%p → %p ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
  test.each([[undefined], [''], ['-1'], ['soon'], ['12abc']])('%p → undefined', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});
