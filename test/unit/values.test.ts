import { clipChars, isRecord } from '../../src/values';

describe('isRecord', () => {
  test.each([[{}], [{ a: 1 }], [Object.create(null) as object]])('%p is a record', (value) => {
    expect(isRecord(value)).toBe(true);
  });
  test.each([[null], [undefined], [[]], ['text'], [1]])('%p is not', (value) => {
    expect(isRecord(value)).toBe(false);
  });
});

describe('clipChars', () => {
  test('text within the limit is left alone', () => {
    expect(clipChars('abc', 3)).toBe('abc');
  });
  test('a cut keeps max - 1 units and marks the cut', () => {
    expect(clipChars('abcdef', 4)).toBe('abc…');
  });
  test('a cut never splits a surrogate pair', () => {
    const clipped = clipChars('ab😀cd', 4);
    expect(clipped).toBe('ab…');
    expect(clipped.length).toBeLessThanOrEqual(4);
  });
  test('the mark may be left out', () => {
    expect(clipChars('abcdef', 4, '')).toBe('abcd');
  });
});
