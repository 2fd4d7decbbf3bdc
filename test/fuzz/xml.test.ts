/**
 * Fuzzing the WeChat XML parser and message reader: arbitrary text, damaged official samples and
 * generated valid messages. The only error ever allowed is InvalidInputError(400); a valid message
 * survives buildWeChatXml → parse with every value exactly as it was (strings stay strings).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { InvalidInputError } from '../../src/errors';
import { parseWeChatMessage, readWeChatMessage, type WeChatMessage } from '../../src/wechat/message';
import {
  buildWeChatXml,
  MAX_XML_DEPTH,
  parseWeChatXml,
  type XmlBuildFields,
  type XmlBuildValue,
  type XmlElement,
  type XmlNode,
} from '../../src/wechat/xml';
import { anyText, attributeSoup, mutated, nestedElements, onlyThrows, RUNS } from './support';

const OFFICIAL_DIR = path.join(__dirname, '../fixtures/messages/official');
const OFFICIAL_SAMPLES = readdirSync(OFFICIAL_DIR)
  .filter((name) => name.endsWith('.xml'))
  .map((name) => readFileSync(path.join(OFFICIAL_DIR, name), 'utf8'));

const is400 = (error: InvalidInputError) => error.status === 400;

/**
 * Parses, then reads the message model from the tree (what readWeChatMessage does, without parsing
 * twice); only InvalidInputError(400) may come out, and a success is well-formed.
 */
function parseBoth(text: string): void {
  const parsed = onlyThrows(InvalidInputError, () => parseWeChatXml(text), is400);
  if (!parsed.ok) return;
  expectWellFormedTree(parsed.value, 2);
  const message = onlyThrows(InvalidInputError, () => parseWeChatMessage(parsed.value), is400);
  if (message.ok) expectWellFormedMessage(message.value);
}

function expectWellFormedTree(element: XmlElement, depth: number): void {
  expect(Object.getPrototypeOf(element)).toBeNull();
  expect(depth).toBeLessThanOrEqual(MAX_XML_DEPTH + 1);
  for (const [tag, node] of Object.entries(element)) {
    expect(['__proto__', 'constructor', 'prototype']).not.toContain(tag);
    expectWellFormedNode(node, depth);
  }
}

function expectWellFormedNode(node: XmlNode, depth: number): void {
  if (typeof node === 'string') return;
  if (Array.isArray(node)) node.forEach((item) => expectWellFormedNode(item, depth));
  else expectWellFormedTree(node, depth + 1);
}

function expectWellFormedMessage(message: WeChatMessage): void {
  for (const value of [message.toUserName, message.fromUserName, message.createTime, message.msgType]) {
    expect(typeof value).toBe('string');
    expect(value).not.toBe('');
  }
  expect(message.createTime).toMatch(/^\d{1,15}$/);
  expect(Object.getPrototypeOf(message.fields)).toBeNull();
  for (const value of Object.values(message.fields)) expect(typeof value).toBe('string');
}

describe('parseWeChatXml / readWeChatMessage on arbitrary input', () => {
  it('arbitrary strings: a result or InvalidInputError(400), nothing else', () => {
    fc.assert(
      fc.property(anyText(300), (text) => parseBoth(text)),
      { numRuns: RUNS.cheap },
    );
  });

  it('XML-alphabet strings (reach deep into the tokenizer), bare and inside <xml>', () => {
    const xmlish = fc.string({
      unit: fc.constantFrom('<', '>', '/', '!', '?', '[', ']', '-', '&', ';', '#', '"', "'", '=', ' ', 'x', 'm', 'l', 'a', 'CDATA', 'DOCTYPE', 'ENTITY', '\u0000', '\uFFFE'),
      maxLength: 120,
    });
    fc.assert(
      fc.property(xmlish, fc.boolean(), (inner, wrap) => parseBoth(wrap ? `<xml>${inner}</xml>` : inner)),
      { numRuns: RUNS.cheap },
    );
  });

  it('non-string values are refused with InvalidInputError, never a TypeError', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        fc.pre(typeof value !== 'string');
        parseBoth(value as string);
      }),
      { numRuns: RUNS.medium },
    );
  });

  // Found by this suite's running time: sax went on after the first error and built an Error for every
  // following character, ~0.4 s of blocked event loop for a 64 KiB body (now ~1 ms: the parser stops at
  // the first error). No timing is asserted; these pin the behaviour: refused, the first error as cause.
  it.each([
    ['junk before the root', 'x'.repeat(64 * 1024)],
    ['junk after the root', `<xml></xml>${'x'.repeat(64 * 1024)}`],
    ['a run of "<"', `<xml>${'<'.repeat(64 * 1024)}`],
    ['a run of "&"', `<xml><a>${'&'.repeat(64 * 1024)}</a></xml>`],
  ])('64 KiB of %s is refused at the first error', (_name, text) => {
    const result = onlyThrows(InvalidInputError, () => parseWeChatXml(text), is400);
    expect(result.ok).toBe(false);
    const column = /Column: (\d+)/.exec(String((result as { error: InvalidInputError }).error.cause))?.[1];
    expect(Number(column)).toBeLessThan(20);
  });
});

describe('parseWeChatXml / readWeChatMessage on damaged official samples', () => {
  it('byte flips, truncations, deletions, duplications and hostile insertions', () => {
    fc.assert(
      fc.property(mutated(fc.constantFrom(...OFFICIAL_SAMPLES), 5), (text) => parseBoth(text)),
      { numRuns: RUNS.cheap },
    );
  });

  it('a DTD or entity declaration anywhere in the markup is refused', () => {
    const dtd = fc.constantFrom('<!DOCTYPE xml [<!ENTITY a "b">]>', '<!DOCTYPE xml>', '<!doctype xml>', '<!ENTITY a "b">');
    fc.assert(
      fc.property(fc.constantFrom(...OFFICIAL_SAMPLES), dtd, fc.double({ min: 0, max: 1, noNaN: true }), (sample, decl, where) => {
        // Between two tags, so that it is markup and not text inside a CDATA section.
        const cuts = [...sample.matchAll(/>/g)].map((m) => m.index + 1);
        const cut = cuts[Math.min(cuts.length - 1, Math.floor(where * cuts.length))]!;
        const text = sample.slice(0, cut) + decl + sample.slice(cut);
        const result = onlyThrows(InvalidInputError, () => parseWeChatXml(text), is400);
        expect(result.ok).toBe(false);
      }),
      { numRuns: RUNS.medium },
    );
  });

  it('the same snippets inside CDATA are text, kept exactly', () => {
    const snippet = fc.constantFrom('<!DOCTYPE xml [<!ENTITY a "b">]>', '&lol;', '<__proto__>x</__proto__>', '<xml>', '&amp;');
    fc.assert(
      fc.property(snippet, anyText(20), (evil, around) => {
        const content = `${around}${evil}${around}`;
        const xml = buildWeChatXml({ ToUserName: 'gh_1', FromUserName: 'o1', CreateTime: 1, MsgType: 'text', Content: content });
        expect(readWeChatMessage(xml).fields['content']).toBe(content);
      }),
      { numRuns: RUNS.medium },
    );
  });

  it('deep nesting and attribute soup anywhere finish and give only InvalidInputError', () => {
    const hostile = fc.oneof(
      fc.integer({ min: 1, max: 3000 }).map((depth) => nestedElements(depth)),
      fc.integer({ min: 1, max: 3000 }).map((count) => attributeSoup(count)),
      fc.integer({ min: 1, max: 600 }).map((count) => '<a>x</a>'.repeat(count)),
    );
    fc.assert(
      fc.property(fc.constantFrom(...OFFICIAL_SAMPLES), hostile, (sample, insert) => {
        parseBoth(sample.replace('</xml>', `${insert}</xml>`));
      }),
      { numRuns: RUNS.expensive / 2 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Generated valid documents: build → parse keeps everything.

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
/** Tag names: WeChat's own, the names xml2js uses internally, Object.prototype members, and random ones. */
const tagName = fc.oneof(
  fc.constantFrom(
    'Content', 'MsgId', 'PicUrl', 'Location_X', 'EventKey', 'ScanCodeInfo', 'item', 'Encrypt',
    '_', 'cdata', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf', 'a.b-c',
  ),
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,10}$/).filter((name) => !FORBIDDEN.has(name)),
);

/** Values: arbitrary text (controls, lone surrogates, `]]>` included), 64-bit-looking digits, numbers. */
const leafValue: fc.Arbitrary<string | number> = fc.oneof(
  { weight: 6, arbitrary: anyText(60) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String) },
  { weight: 1, arbitrary: fc.stringMatching(/^0\d{0,20}$/) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
);

/** A document tree within the parser's limits: depth ≤ 6 below <xml>, a few hundred elements at most. */
const documentFields: fc.Arbitrary<XmlBuildFields> = fc.letrec<{ fields: XmlBuildFields; value: XmlBuildValue }>((tie) => ({
  fields: fc.dictionary(tagName, tie('value'), { minKeys: 1, maxKeys: 5, noNullPrototype: true }),
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 5 },
    { weight: 5, arbitrary: leafValue },
    { weight: 1, arbitrary: tie('fields') },
    // A repeated tag (two or more: a single occurrence parses as a plain value).
    { weight: 1, arbitrary: fc.array(fc.oneof(leafValue, tie('fields')), { minLength: 2, maxLength: 3 }) },
  ),
})).fields;

/** What parseWeChatXml gives back for a built value: numbers as their text, everything else as built. */
function expected(value: XmlBuildValue): XmlNode {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.map((item) => expected(item as XmlBuildValue));
  const out: XmlElement = Object.create(null) as XmlElement;
  for (const [tag, item] of Object.entries(value as XmlBuildFields)) out[tag] = expected(item);
  return out;
}

describe('buildWeChatXml → parseWeChatXml round trip', () => {
  it('keeps every value of every generated document exactly', () => {
    fc.assert(
      fc.property(documentFields, (fields) => {
        expect(parseWeChatXml(buildWeChatXml(fields))).toStrictEqual(expected(fields));
      }),
      { numRuns: RUNS.medium },
    );
  });

  it('keeps the common fields, 64-bit MsgIds and every unicode field value of a message exactly', () => {
    const message = fc.record({
      ToUserName: anyText(40).filter((s) => s !== ''),
      FromUserName: anyText(40).filter((s) => s !== ''),
      CreateTime: fc.stringMatching(/^\d{1,15}$/),
      MsgType: fc.oneof(fc.constantFrom('text', 'image', 'voice', 'video', 'location', 'link', 'event'), anyText(10)).filter((s) => s !== ''),
      MsgId: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), fc.stringMatching(/^0\d{0,25}$/)),
      Content: anyText(200),
    });
    fc.assert(
      fc.property(message, (fields) => {
        const parsed = readWeChatMessage(buildWeChatXml(fields));
        expect(parsed.toUserName).toBe(fields.ToUserName);
        expect(parsed.fromUserName).toBe(fields.FromUserName);
        expect(parsed.createTime).toBe(fields.CreateTime);
        expect(parsed.msgType).toBe(fields.MsgType);
        expect(parsed.msgId).toBe(fields.MsgId);
        // Content is a named field for text and carried generically (same name) for every other type.
        expect(parsed.fields['content']).toBe(fields.Content);
      }),
      { numRuns: RUNS.medium },
    );
  });
});
