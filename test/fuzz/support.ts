/**
 * Shared pieces of the fuzz suites: the "only the documented error" check, run counts, and
 * mutation arbitraries that damage a valid input the way a broken proxy, a truncated body or an
 * attacker would (byte flips, truncations, insertions of hostile snippets, deletions, duplications).
 *
 * fast-check prints the seed and the shrunk counterexample of a failing property; re-run one with
 * `fc.assert(property, { seed, path })` taken from that message.
 */
import fc from 'fast-check';

/**
 * Run counts. The suites together stay well under ~20 s in CI: the cheap pure functions get
 * thousands of inputs, the expensive ones (HMAC/JWT, xml2js on 64 KiB) fewer.
 */
export const RUNS = {
  cheap: 1500,
  medium: 800,
  expensive: 250,
} as const;

/**
 * Runs `fn`. Returning is fine; throwing is fine only with an instance of `allowed` for which
 * `check` holds. Anything else is re-thrown wrapped, so fast-check reports it with the input.
 */
export function onlyThrows<T, E extends Error>(
  allowed: abstract new (...args: never[]) => E,
  fn: () => T,
  check: (error: E) => boolean = () => true,
): { ok: true; value: T } | { ok: false; error: E } {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    if (error instanceof allowed && check(error)) return { ok: false, error };
    const description = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new Error(`expected only ${allowed.name}, got ${description}`, { cause: error });
  }
}

/** Asserts that `fn` throws an instance of `expected` (and returns it). */
export function mustThrow<E extends Error>(expected: abstract new (...args: never[]) => E, fn: () => unknown): E {
  let result: unknown;
  try {
    result = fn();
  } catch (error) {
    if (error instanceof expected) return error;
    const description = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new Error(`expected ${expected.name}, got ${description}`, { cause: error });
  }
  throw new Error(`expected ${expected.name}, but it returned ${JSON.stringify(result)?.slice(0, 200)}`);
}

// ---------------------------------------------------------------------------------------------
// Strings

/** Text of every kind: printable, full Unicode (astral planes), raw UTF-16 code units (lone surrogates), controls. */
export function anyText(maxLength = 40): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength }),
    fc.string({ unit: fc.constantFrom('\u0000', '\u0002', '\u0010', '\u001d', '\t', '\n', '\r', ' ', ']]>', '<', '&', '"'), maxLength }),
  );
}

/** Valid Unicode only (no lone surrogates): what survives a UTF-8 round trip unchanged. */
export function unicodeText(maxLength = 40): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary', maxLength }),
  );
}

// ---------------------------------------------------------------------------------------------
// Mutations

export type Mutation = (input: string) => string;

/** Snippets that have broken XML parsers before: DTDs, entities, CDATA ends, prototype tags, PIs. */
export const HOSTILE_XML_SNIPPETS: readonly string[] = [
  '<!DOCTYPE xml [<!ENTITY lol "lol">]>',
  '<!DOCTYPE xml SYSTEM "file:///etc/passwd">',
  '<!doctype xml>',
  '<!ENTITY x "y">',
  '<!ELEMENT xml ANY>',
  '&lol;',
  '&xxe;',
  '&amp;',
  '&lt;',
  '&#0;',
  '&#x1F600;',
  '&#xD800;',
  '&#1114112;',
  ']]>',
  '<![CDATA[',
  '<![CDATA[]]>',
  '<!-- comment -->',
  '<!--',
  '<?xml version="1.0" encoding="UTF-16"?>',
  '<?php ?>',
  '<__proto__>polluted</__proto__>',
  '<constructor><prototype>x</prototype></constructor>',
  '<toString>x</toString>',
  '<hasOwnProperty>x</hasOwnProperty>',
  '<_>x</_>',
  '<cdata>x</cdata>',
  '<$>x</$>',
  '<xml>',
  '</xml>',
  '<MsgType><![CDATA[event]]></MsgType>',
  '<CreateTime>99999999999999999999</CreateTime>',
  '<a/>',
  '<a b="1" b="2"/>',
  '<',
  '>',
  '/',
  '"',
  "'",
  '=',
  '\u0000',
  '\u0002',
  '\u0010',
  '\u001d',
  '\u007f',
  '\uFEFF',
  '\uFFFE',
  '\uFFFF',
  '\uD800',
  '\uDFFF',
  '\r\n',
];

/** A run of nested elements, `depth` deep. */
export const nestedElements = (depth: number, tag = 'a'): string => `<${tag}>`.repeat(depth) + `</${tag}>`.repeat(depth);

/** One element with `count` attributes. */
export const attributeSoup = (count: number): string =>
  `<Soup ${Array.from({ length: count }, (_, i) => `a${i}="${'v'.repeat(i % 7)}"`).join(' ')}>x</Soup>`;

/** A position inside (or at either end of) a string of length `length`, from a fraction. */
const at = (fraction: number, length: number): number => Math.min(length, Math.floor(fraction * (length + 1)));
const fraction = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

/** Damages a text: one of several kinds of mutation, at an arbitrary place. */
export function textMutation(snippets: readonly string[] = HOSTILE_XML_SNIPPETS): fc.Arbitrary<Mutation> {
  return fc.oneof(
    // Flip one bit of one UTF-8 byte (invalid sequences decode to U+FFFD, as a lenient server would).
    fc.tuple(fraction, fc.integer({ min: 0, max: 7 })).map(([where, bit]): Mutation => (input) => {
      const bytes = Buffer.from(input, 'utf8');
      if (bytes.length === 0) return input;
      const index = Math.min(bytes.length - 1, Math.floor(where * bytes.length));
      bytes[index] = bytes[index]! ^ (1 << bit);
      return bytes.toString('utf8');
    }),
    // Replace one character by an arbitrary one.
    fc.tuple(fraction, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })).map(([where, char]): Mutation => (input) => {
      const index = at(where, input.length - 1);
      return input.slice(0, index) + char + input.slice(index + 1);
    }),
    // Truncate.
    fraction.map((where): Mutation => (input) => input.slice(0, at(where, input.length))),
    // Insert a hostile snippet, a deep nesting or an attribute soup.
    fc
      .tuple(
        fraction,
        fc.oneof(
          { weight: 5, arbitrary: fc.constantFrom(...snippets) },
          { weight: 1, arbitrary: fc.integer({ min: 2, max: 3000 }).map((depth) => nestedElements(depth)) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 2000 }).map((count) => attributeSoup(count)) },
          { weight: 1, arbitrary: anyText(20) },
        ),
      )
      .map(([where, snippet]): Mutation => (input) => {
        const index = at(where, input.length);
        return input.slice(0, index) + snippet + input.slice(index);
      }),
    // Delete a range.
    fc.tuple(fraction, fraction).map(([a, b]): Mutation => (input) => {
      const [from, to] = [at(a, input.length), at(b, input.length)].sort((x, y) => x - y);
      return input.slice(0, from) + input.slice(to);
    }),
    // Duplicate a range in place.
    fc.tuple(fraction, fraction).map(([a, b]): Mutation => (input) => {
      const [from, to] = [at(a, input.length), at(b, input.length)].sort((x, y) => x - y);
      return input.slice(0, to) + input.slice(from, to) + input.slice(to);
    }),
  );
}

/** 1 to `max` mutations applied in order. */
export function mutated(base: fc.Arbitrary<string>, max = 4, snippets?: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(base, fc.array(textMutation(snippets), { minLength: 1, maxLength: max }))
    .map(([input, mutations]) => mutations.reduce((text, mutation) => mutation(text), input));
}
