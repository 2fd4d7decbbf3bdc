import { inboundJobs } from '../../../src/bridge/to-vonage/inbound-jobs';
import { planOutbound } from '../../../src/bridge/to-wechat/plan-outbound';
import { accountOfJobPayload } from '../../../src/cli/account';
import { parseWeChatMessage } from '../../../src/wechat/message';
import { parseWeChatXml } from '../../../src/wechat/xml';

const message = parseWeChatMessage(
  parseWeChatXml('<xml><ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName><CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>'),
);

describe('accountOfJobPayload (dead-letters list --account)', () => {
  test('inbound jobs, fixed or per-user, name the account that received the message', () => {
    expect(accountOfJobPayload(inboundJobs(message, { conversationId: 'CON-1', accountId: 'sales' })[0]!.payload)).toBe('sales');
    expect(accountOfJobPayload(inboundJobs(message, { conversationId: undefined, accountId: 'sales' })[0]!.payload)).toBe('sales');
    expect(accountOfJobPayload(inboundJobs(message, { conversationId: undefined })[0]!.payload)).toBe('default');
  });

  test('jobs stored before accounts existed are the default account’s', () => {
    expect(accountOfJobPayload({ route: { openid: 'oUser', account: 'gh_1' }, event: { type: 'custom:wechat:message', body: { direction: 'inbound' } } })).toBe('default');
    expect(accountOfJobPayload({ conversationId: 'CON-1', event: { type: 'custom:wechat:message', body: { direction: 'inbound', from: 'oUser' } } })).toBe('default');
  });

  test('outbound jobs name the account only when the event did', () => {
    const event = (body: Record<string, unknown>) => ({ type: 'custom:wechat:message', id: '5', conversationId: 'CON-1', body: { direction: 'outbound', to: 'oUser', ...body } }) as never;
    expect(accountOfJobPayload(planOutbound(event({ account: 'sales' }))!.payload)).toBe('sales');
    expect(accountOfJobPayload(planOutbound(event({}))!.payload)).toBeUndefined();
    expect(accountOfJobPayload(undefined)).toBeUndefined();
  });
});
