/** Outbound bodies → template/send and subscribe/bizsend JSON (pure). */
import { InvalidInputError } from '../../../src/errors';
import { buildSubscribeSendBody, buildTemplateSendBody, fallbackOf, msgIdOf } from '../../../src/wechat/template-message';
import { templateResultOutcome } from '../../../src/bridge/to-wechat/template-result';

describe('buildTemplateSendBody', () => {
  test('the documented fields in order; plain strings become {value}; color is kept', () => {
    const request = buildTemplateSendBody({
      to: 'oUser',
      clientMsgId: '42',
      body: {
        msg_type: 'template',
        template_id: 'T1',
        url: 'https://example.com',
        miniprogram: { appid: 'wxmini', pagepath: 'index?foo=bar' },
        data: { thing1: 'Shipped', time2: { value: 'today', color: '#173177' } },
        content: 'ignored',
      },
    });
    expect(JSON.stringify(request)).toBe(
      '{"touser":"oUser","template_id":"T1","url":"https://example.com","miniprogram":{"appid":"wxmini","pagepath":"index?foo=bar"},' +
        '"client_msg_id":"42","data":{"thing1":{"value":"Shipped"},"time2":{"value":"today","color":"#173177"}}}',
    );
  });

  test('a keyword named like an Object property is kept as a keyword', () => {
    const request = buildTemplateSendBody({ to: 'o', clientMsgId: '1', body: JSON.parse('{"template_id":"T","data":{"__proto__":"x","constructor":{"value":"y"}}}') });
    expect(JSON.stringify(request['data'])).toBe('{"__proto__":{"value":"x"},"constructor":{"value":"y"}}');
  });

  test('a missing template_id, empty data, a non-string value or half a miniprogram is refused, naming the field', () => {
    const build = (body: Record<string, unknown>) => () => buildTemplateSendBody({ to: 'o', clientMsgId: '1', body });
    expect(build({ data: { a: 'b' } })).toThrow(/template_id/);
    expect(build({ template_id: 'T', data: {} })).toThrow(/data/);
    expect(build({ template_id: 'T', data: { amount1: { value: 12 } } })).toThrow(/data\.amount1/);
    expect(build({ template_id: 'T', data: { a: 'b' }, miniprogram: { appid: 'wx' } })).toThrow(/pagepath/);
    expect(build({ template_id: 'T', data: { a: 'b' } })).not.toThrow();
    expect(build({ data: {} })).toThrow(InvalidInputError);
  });
});

describe('buildSubscribeSendBody', () => {
  test('template_id, page, miniprogram and data; no client_msg_id and no color', () => {
    expect(
      buildSubscribeSendBody({ to: 'oUser', body: { template_id: 'S1', page: 'https://example.com/p', data: { thing1: { value: 'x', color: '#000' } } } }),
    ).toEqual({ touser: 'oUser', template_id: 'S1', page: 'https://example.com/p', data: { thing1: { value: 'x' } } });
  });
});

describe('fallbackOf, msgIdOf, templateResultOutcome', () => {
  test('a fallback must be a template or a subscription notification', () => {
    expect(fallbackOf({ content: 'hi' })).toBeUndefined();
    expect(fallbackOf({ fallback: { msg_type: 'template', template_id: 'T' } })).toEqual({ msg_type: 'template', template_id: 'T' });
    expect(() => fallbackOf({ fallback: { msg_type: 'text' } })).toThrow(/fallback/);
    expect(() => fallbackOf({ fallback: 'template' })).toThrow(/fallback/);
  });

  test('msgid is read from the text, so a 64-bit id keeps every digit', () => {
    expect(msgIdOf('{"errcode":0,"errmsg":"ok","msgid":24000000000000000123}')).toBe('24000000000000000123');
    expect(msgIdOf('{"errcode":0,"errmsg":"ok"}')).toBeUndefined();
  });

  test("WeChat's result words become the status", () => {
    expect(templateResultOutcome('success')).toEqual({ status: 'delivered' });
    expect(templateResultOutcome('failed:user block')).toMatchObject({ status: 'failed', errorCode: 'user_block' });
    expect(templateResultOutcome('failed: system failed')).toMatchObject({ status: 'failed', errorCode: 'system_failed', errorMessage: 'WeChat reported "failed: system failed"' });
  });
});
