/**
 * Fuzzing the template and subscription notification bodies: any event body gives either WeChat's
 * request or InvalidInputError(400), never another throw; a built request has string leaves only
 * (WeChat's ids and values are strings), and `fallbackOf` accepts only the two notification kinds.
 */
import fc from 'fast-check';
import { InvalidInputError } from '../../src/errors';
import { buildSubscribeSendBody, buildTemplateSendBody, fallbackOf } from '../../src/wechat/template-message';
import { anyText, onlyThrows, RUNS } from './support';

const FIELDS = ['template_id', 'url', 'page', 'miniprogram', 'data', 'client_msg_id', 'msg_type', 'fallback', '__proto__', 'constructor'];

const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: anyText(20) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, '', {}, [], { appid: 'wx', pagepath: 'p' }, { thing1: 'x' }, { thing1: { value: 'x', color: 1 } }) },
);

const body = fc
  .array(fc.tuple(fc.constantFrom(...FIELDS), value), { maxLength: 8 })
  .map((entries) => {
    const out: Record<string, unknown> = { template_id: 'T1', data: { thing1: { value: 'ok' } } };
    for (const [name, item] of entries) Object.defineProperty(out, name, { value: structuredClone(item), enumerable: true, writable: true, configurable: true });
    return JSON.parse(JSON.stringify(out)) as Record<string, unknown>;
  });

function expectStringLeaves(item: unknown): void {
  if (Array.isArray(item)) throw new Error('no arrays in a template request');
  if (item !== null && typeof item === 'object') Object.values(item).forEach(expectStringLeaves);
  else expect(typeof item).toBe('string');
}

test('template and subscribe bodies: built with string leaves, or refused with a 400', () => {
  fc.assert(
    fc.property(body, (input) => {
      for (const build of [
        () => buildTemplateSendBody({ to: 'oUser', body: input, clientMsgId: '42' }),
        () => buildSubscribeSendBody({ to: 'oUser', body: input }),
      ]) {
        const result = onlyThrows(InvalidInputError, build, (error) => error.status === 400);
        if (result.ok) {
          expect(result.value.touser).toBe('oUser');
          expectStringLeaves(result.value);
        }
      }
      const fallback = onlyThrows(InvalidInputError, () => fallbackOf(input), (error) => error.status === 400);
      if (fallback.ok && fallback.value !== undefined) expect(['template', 'subscribe']).toContain(fallback.value.msg_type);
    }),
    { numRuns: RUNS.cheap },
  );
});
