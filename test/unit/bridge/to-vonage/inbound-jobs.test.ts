/**
 * The jobs of an accepted WeChat message: where an inbound job goes in fixed and per-user mode, and
 * the media_url of inbound media.
 */
import { inboundJobs } from '../../../../src/bridge/to-vonage/inbound-jobs';
import { readWeChatMessage } from '../../../../src/wechat/message';

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
