/**
 * The routing decisions of per-user mode, as pure pieces: where an inbound job goes, which queue an
 * outbound event runs in, who an outbound event is for, and the media_url of inbound media.
 */
import { inboundJobs } from '../../../src/bridge/accept-inbound';
import { planOutbound } from '../../../src/bridge/outbound';
import { recipientFromBody, recipientFromConversation } from '../../../src/bridge/outbound-recipient';
import { SqliteStore } from '../../../src/store/sqlite-store';
import { parseRtcEvent } from '../../../src/vonage/webhook';
import { readWeChatMessage } from '../../../src/wechat/message';

const xml = (inner: string) =>
  `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1700000000</CreateTime>${inner}</xml>`;
const text = readWeChatMessage(xml('<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId>'));
const image = readWeChatMessage(xml('<MsgType>image</MsgType><PicUrl>https://mmbiz.qpic.cn/x</PicUrl><MediaId>MEDIA_1</MediaId><MsgId>2</MsgId>'));
const location = readWeChatMessage(xml('<MsgType>location</MsgType><Location_X>1</Location_X><Location_Y>2</Location_Y><MsgId>3</MsgId>'));

describe('inboundJobs', () => {
  test('fixed mode names the conversation; per-user mode carries the route for the worker', () => {
    const [fixed] = inboundJobs(text, { conversationId: 'CON-1' });
    expect(fixed!.payload).toEqual({
      conversationId: 'CON-1',
      event: { type: 'custom:wechat:message', body: expect.objectContaining({ content: 'hi' }) },
      replyWindow: expect.objectContaining({ account: 'default', openid: 'oUser' }),
    });
    const [perUser] = inboundJobs(text, { conversationId: undefined });
    expect(perUser!.payload).toEqual({
      route: { openid: 'oUser', account: 'gh_1' },
      event: expect.objectContaining({ type: 'custom:wechat:message' }),
      replyWindow: expect.objectContaining({ account: 'default', openid: 'oUser' }),
    });
    // Both in the user's queue, with the same dedup key: routing changes nothing else.
    expect([fixed!.orderKey, fixed!.dedupKey]).toEqual([perUser!.orderKey, perUser!.dedupKey]);
  });

  test('media messages get a media_url when the bridge has one to give; others never', () => {
    const mediaUrl = (id: string) => `https://bridge.example/media/${id}?signed`;
    const [withLink] = inboundJobs(image, { conversationId: undefined }, { mediaUrl });
    expect((withLink!.payload as { event: { body: Record<string, unknown> } }).event.body).toMatchObject({
      media_id: 'MEDIA_1',
      pic_url: 'https://mmbiz.qpic.cn/x',
      media_url: 'https://bridge.example/media/MEDIA_1?signed',
    });
    const [withoutLink] = inboundJobs(image, { conversationId: undefined });
    expect((withoutLink!.payload as { event: { body: Record<string, unknown> } }).event.body).not.toHaveProperty('media_url');
    const [other] = inboundJobs(location, { conversationId: undefined }, { mediaUrl });
    expect((other!.payload as { event: { body: Record<string, unknown> } }).event.body).not.toHaveProperty('media_url');
  });
});

describe('planOutbound in per-user mode', () => {
  const event = (body: Record<string, unknown>, id = 7) =>
    parseRtcEvent({ type: 'custom:wechat:message', body, id, conversation_id: 'CON-9', application_id: 'app', timestamp: '2026-11-21T12:00:00.000Z' });

  test('every outbound event of a conversation shares its queue, with or without `to`', () => {
    const options = { perUserConversations: true };
    expect(planOutbound(event({ direction: 'outbound', content: 'a' }), options)?.orderKey).toBe('conversation:CON-9');
    expect(planOutbound(event({ direction: 'outbound', to: 'oUser', content: 'b' }), options)?.orderKey).toBe('conversation:CON-9');
    // Fixed mode is unchanged: the user's queue.
    expect(planOutbound(event({ direction: 'outbound', to: 'oUser', content: 'b' }))?.orderKey).toBe('wechat:oUser');
  });
});

describe('who an outbound event is for', () => {
  test('fixed mode: `to`, required', async () => {
    await expect(recipientFromBody({ conversationId: 'CON-1', body: { to: 'oUser' } })).resolves.toEqual({ ok: true, openid: 'oUser' });
    await expect(recipientFromBody({ conversationId: 'CON-1', body: { to: ' ' } })).resolves.toMatchObject({ ok: false, errorCode: 'missing_to' });
  });

  test('per-user mode: the conversation\'s user; `to` optional but never someone else; unknown conversations refused', async () => {
    const store = SqliteStore.open(':memory:');
    try {
      await store.saveConversationMapping({ openid: 'oUser', conversationId: 'CON-1' });
      const recipientOf = recipientFromConversation(store);
      await expect(recipientOf({ conversationId: 'CON-1', body: {} })).resolves.toEqual({ ok: true, openid: 'oUser', accountId: 'default' });
      await expect(recipientOf({ conversationId: 'CON-1', body: { to: 'oUser' } })).resolves.toEqual({ ok: true, openid: 'oUser', accountId: 'default' });
      await expect(recipientOf({ conversationId: 'CON-1', body: { to: 'oOther' } })).resolves.toMatchObject({ ok: false, errorCode: 'recipient_mismatch' });
      await expect(recipientOf({ conversationId: 'CON-2', body: { to: 'oUser' } })).resolves.toMatchObject({
        ok: false,
        errorCode: 'unknown_conversation',
        errorMessage: expect.stringContaining('CON-2'),
      });
    } finally {
      await store.close();
    }
  });
});
