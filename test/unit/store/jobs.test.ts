import { claimLimit, compareJobIds, parseJobId, prepareJob } from '../../../src/store/jobs';

describe('job ids', () => {
  test('only the decimal rendering of a sequence number names a job', () => {
    expect(parseJobId('1')).toBe('1');
    expect(parseJobId('123456789012345678')).toBe('123456789012345678');
    for (const id of ['', '0', '01', '-1', '1.5', ' 1', '1e3', 'no-such-job', '1234567890123456789']) expect(parseJobId(id)).toBeUndefined();
  });

  test('ids order as the numbers they render', () => {
    expect(['10', '9', '100', '11'].sort(compareJobIds)).toEqual(['9', '10', '11', '100']);
  });
});

test('a claim takes nothing for no positive limit or no kinds', () => {
  expect(claimLimit({ limit: 3.7, leaseMs: 1 })).toBe(3);
  expect(claimLimit({ limit: 0.5, leaseMs: 1 })).toBe(0);
  expect(claimLimit({ limit: Number.NaN, leaseMs: 1 })).toBe(0);
  expect(claimLimit({ limit: 5, leaseMs: 1, kinds: [] })).toBe(0);
  expect(claimLimit({ limit: 5, leaseMs: 1, kinds: ['send'] })).toBe(5);
});

describe('prepareJob', () => {
  test('serialises the payload and floors runAt', () => {
    expect(prepareJob({ kind: 'deliver', orderKey: 'a', payload: { n: 1 }, runAt: 1.9 })).toEqual({
      kind: 'deliver',
      orderKey: 'a',
      payloadJson: '{"n":1}',
      dedupKey: undefined,
      runAt: 1,
    });
  });

  test('refuses what no store can keep', () => {
    expect(() => prepareJob({ kind: '', orderKey: 'a', payload: 1 })).toThrow(TypeError);
    expect(() => prepareJob({ kind: 'k', orderKey: 'a', payload: undefined })).toThrow(/JSON-serialisable/);
    expect(() => prepareJob({ kind: 'k', orderKey: 'a', payload: 1, runAt: Number.POSITIVE_INFINITY })).toThrow(/finite/);
  });

  test('refuses unstorable text in keys only when asked, never in the payload', () => {
    const job = { kind: 'k', orderKey: 'nul\u0000key', payload: 'nul \u0000' };
    expect(prepareJob(job).orderKey).toBe('nul\u0000key');
    expect(() => prepareJob(job, { refuseUnstorableText: true })).toThrow(/orderKey must not contain NUL/);
    expect(prepareJob({ ...job, orderKey: 'a' }, { refuseUnstorableText: true }).payloadJson).toBe('"nul \\u0000"');
  });
});
