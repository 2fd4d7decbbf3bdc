/**
 * Fuzzing the outbound mapping: any event body (arbitrary JSON, the official examples damaged field by
 * field) gives either a WeChat customer-service body or InvalidInputError(400), never another throw.
 * A body that is built is well-formed: the recipient, a supported msgtype, its object, string leaves.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { InvalidInputError } from '../../src/errors';
import { serializeWeChatJson } from '../../src/wechat/transport';
import { buildCustomSendBody, buildTypingBody, CUSTOM_MESSAGE_TYPES, type CustomSendInput } from '../../src/wechat/custom-message';
import { anyText, onlyThrows, RUNS } from './support';

const FIXTURE_DIR = path.join(__dirname, '../fixtures/custom-send');
/** The official examples, as event bodies in nested form: `{ msg_type, [type]: {…}, customservice? }`. */
const OFFICIAL_BODIES: Record<string, unknown>[] = readdirSync(FIXTURE_DIR)
  .filter((name) => name.endsWith('.json') && name !== 'index.json')
  .map((name) => JSON.parse(readFileSync(path.join(FIXTURE_DIR, name), 'utf8')) as Record<string, unknown>)
  .filter((example) => typeof example.msgtype === 'string')
  .map((example) => {
    const { touser: _touser, msgtype, ...rest } = example;
    return { msg_type: msgtype, ...rest };
  });

/** The same examples in flat form: the type object's fields directly on the body. */
const FLAT_BODIES = OFFICIAL_BODIES.map((body) => {
  const type = body.msg_type as string;
  const inner = body[type];
  return { msg_type: type, ...(inner !== null && typeof inner === 'object' ? inner : {}) };
});

const FIELD_NAMES = [
  'msg_type', 'content', 'media_id', 'thumb_media_id', 'title', 'description', 'musicurl', 'hqmusicurl', 'article_id',
  'card_id', 'appid', 'pagepath', 'articles', 'list', 'head_content', 'tail_content', 'id', 'kf_account', 'customservice',
  'url', 'picurl', '__proto__', 'constructor', 'toString', ...CUSTOM_MESSAGE_TYPES,
];

/** JSON values, weighted towards the shapes the mapping looks for. */
const jsonish: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: anyText(30) },
  { weight: 1, arbitrary: fc.constantFrom(null, '', 0, true, [], {}, [{}], [{ title: 't' }], [{ id: '1', content: 'c' }]) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(...CUSTOM_MESSAGE_TYPES, 'TEXT', 'event', 'typing') },
);

/** A body with fields set to arbitrary values, deleted, or nested one level down. */
const damagedBody = fc
  .tuple(
    fc.constantFrom(...OFFICIAL_BODIES, ...FLAT_BODIES, {}),
    fc.array(
      fc.tuple(fc.constantFrom(...FIELD_NAMES), fc.option(jsonish, { nil: undefined }), fc.boolean()),
      { minLength: 1, maxLength: 6 },
    ),
  )
  .map(([original, edits]) => {
    const body = JSON.parse(JSON.stringify(original)) as Record<string, unknown>;
    for (const [name, value, nested] of edits) {
      const type = typeof body.msg_type === 'string' ? body.msg_type : 'text';
      const target = nested && body[type] !== null && typeof body[type] === 'object' ? (body[type] as Record<string, unknown>) : body;
      if (value === undefined) delete target[name];
      // A copy: fast-check hands out the same constant objects run after run, and an edit nested into one of
      // them would otherwise outlive its run (and can close a cycle through a later run's edit).
      else Object.defineProperty(target, name, { value: structuredClone(value), enumerable: true, writable: true, configurable: true });
    }
    return JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
  });

const openid = fc.oneof({ weight: 4, arbitrary: fc.constant('oUser-abcdefghijklmnopqrstuv') }, { weight: 1, arbitrary: fc.jsonValue() });

function expectBuiltOrInvalid(input: CustomSendInput): void {
  const result = onlyThrows(InvalidInputError, () => buildCustomSendBody(input), (error) => error.status === 400);
  if (!result.ok) return;
  const out = result.value;
  expect(out.touser).toBe(input.to);
  const msgtype = out.msgtype as string;
  expect(CUSTOM_MESSAGE_TYPES).toContain(msgtype);
  expect(out[msgtype] !== null && typeof out[msgtype] === 'object').toBe(true);
  expectStringLeaves(out);
  // And it serialises as WeChat wants it (raw UTF-8, no \uXXXX escapes).
  expect(serializeWeChatJson(out)).not.toMatch(/(?<!\\)(?:\\\\)*\\u[0-9a-fA-F]{4}/);
}

function expectStringLeaves(value: unknown): void {
  if (Array.isArray(value)) value.forEach(expectStringLeaves);
  else if (value !== null && typeof value === 'object') Object.values(value).forEach(expectStringLeaves);
  else expect(typeof value).toBe('string');
}

describe('buildCustomSendBody', () => {
  it('builds every official example, in nested and in flat form', () => {
    for (const body of [...OFFICIAL_BODIES, ...FLAT_BODIES]) {
      expectBuiltOrInvalid({ to: 'OPENID', body });
      expect(buildCustomSendBody({ to: 'OPENID', body }).msgtype).toBe(body.msg_type);
    }
  });

  it('official examples damaged field by field: a WeChat body or InvalidInputError(400)', () => {
    fc.assert(
      fc.property(openid, damagedBody, (to, body) => expectBuiltOrInvalid({ to: to as string, body })),
      { numRuns: RUNS.cheap },
    );
  });

  it('arbitrary JSON bodies and msgType overrides: a WeChat body or InvalidInputError(400)', () => {
    const body = fc.oneof(
      fc.dictionary(fc.constantFrom(...FIELD_NAMES), jsonish, { maxKeys: 8 }),
      fc.jsonValue({ maxDepth: 4 }),
    );
    fc.assert(
      fc.property(openid, fc.option(jsonish, { nil: undefined }), body, (to, msgType, value) => {
        expectBuiltOrInvalid({ to: to as string, msgType: msgType as string | undefined, body: value as Record<string, unknown> });
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('arbitrary JavaScript values anywhere in the input: a WeChat body or InvalidInputError(400)', () => {
    fc.assert(
      fc.property(fc.anything(), fc.option(fc.anything(), { nil: undefined }), fc.anything({ withNullPrototype: true }), (to, msgType, body) => {
        expectBuiltOrInvalid({ to: to as string, msgType: msgType as string | undefined, body: body as Record<string, unknown> });
      }),
      { numRuns: RUNS.medium },
    );
  });
});

describe('buildTypingBody', () => {
  it('a typing body or InvalidInputError(400), whatever the arguments', () => {
    fc.assert(
      fc.property(fc.oneof(openid, fc.anything()), fc.oneof(fc.constantFrom('Typing', 'CancelTyping'), fc.anything()), (to, command) => {
        const result = onlyThrows(InvalidInputError, () => buildTypingBody(to as string, command as 'Typing'), (error) => error.status === 400);
        if (result.ok) expect(result.value).toEqual({ touser: to, command });
      }),
      { numRuns: RUNS.medium },
    );
  });
});
