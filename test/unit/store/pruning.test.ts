import { PruneSchedule, toPruneResult } from '../../../src/store/pruning';

describe('PruneSchedule', () => {
  test('a pass runs once the interval has passed since the last, not before', () => {
    const schedule = new PruneSchedule(1_000, 0, undefined);
    const passes: number[] = [];
    for (const now of [0, 999, 1_000, 1_500, 2_000]) schedule.runIfDue(now, () => passes.push(now));
    expect(passes).toEqual([1_000, 2_000]);
  });

  test('a pass still running keeps the next one from starting', async () => {
    const schedule = new PruneSchedule(10, 0, undefined);
    let finish: () => void = () => undefined;
    const passes: number[] = [];
    schedule.runIfDue(10, () => new Promise<void>((resolve) => ((finish = resolve), passes.push(10))));
    schedule.runIfDue(100, () => passes.push(100));
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    schedule.runIfDue(200, () => passes.push(200));
    expect(passes).toEqual([10, 200]);
  });

  test('a failing pass, thrown or rejected, is logged and never thrown', async () => {
    const warnings: string[] = [];
    const schedule = new PruneSchedule(10, 0, { warn: (_details, message) => warnings.push(message) });
    expect(() =>
      schedule.run(() => {
        throw new Error('disk I/O error');
      }),
    ).not.toThrow();
    schedule.run(() => Promise.reject(new Error('connection lost')));
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([
      'pruning expired dedup keys failed; will retry later',
      'pruning expired dedup keys failed; will retry later',
    ]);
  });
});

test('a pass reports the dedup and seen keys it deleted', () => {
  expect(toPruneResult(new Map([['dedup_keys', 2], ['locks', 5], ['seen_keys', 1]]))).toEqual({ dedupKeys: 2, seenKeys: 1 });
  expect(toPruneResult(new Map())).toEqual({ dedupKeys: 0, seenKeys: 0 });
});
