/**
 * Media both ways, end to end through the real bridge:
 * - inbound: a user's image, voice or video event carries a signed `media_url`; opening it gives
 *   the file byte for byte (fetched once from WeChat's media/get, then from the cache); forged,
 *   expired or malformed links are refused; a JSON error from media/get is never served as a file;
 * - outbound: an agent's `media_url` is downloaded (limits, types), uploaded with media/upload,
 *   and sent by media_id; oversized or wrong-type files fail with a status event.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mediaLink, mediaLinkKey } from '../../src/bridge/media/links';
import type { RecordedEvent } from '../support/fake-vonage';
import { startHarness, TEST_APP_SECRET, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { pushToBridge } from '../support/wechat-push';
import { waitFor } from '../support/wait';

const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.from(Array.from({ length: 5000 }, (_, n) => n % 256))]);
const AMR = Buffer.concat([Buffer.from('#!AMR\n', 'latin1'), Buffer.alloc(2000, 0x3c)]);
const MP4 = Buffer.concat([Buffer.from('0000001c6674797069736f6d', 'hex'), Buffer.alloc(3000, 7)]);


const inboundOfType = (harness: Harness, msgType: string, mediaId: string): RecordedEvent | undefined =>
  harness.vonage.events.find((e) => e.type === 'custom:wechat:message' && e.body.msg_type === msgType && e.body.media_id === mediaId);

describe('inbound media: media_url', () => {
  let harness: Harness;
  let openid: string;
  const mediaGets = () => harness.weChat.traffic.recent().filter((t) => t.path.startsWith('/cgi-bin/media/get')).length;

  beforeAll(async () => {
    harness = await startHarness({ perUser: true, publicUrl: 'self' });
    harness.weChat.connect({ url: `${harness.baseUrl}/weChatEvent`, token: TEST_TOKEN, mode: 'plain' });
    openid = (await harness.weChat.addUser({ nickname: 'Li Wei' })).openid;
  });
  afterAll(() => harness.close());

  test('an image sent by a user downloads byte for byte through media_url, from WeChat once', async () => {
    const push = await harness.weChat.sendImage(openid, { bytes: PNG, contentType: 'image/png', filename: 'photo.png' });
    expect(push.acknowledged).toBe(true);
    const mediaId = harness.weChat.chat(openid).at(-1)!.mediaId!;
    const event = await waitFor('the image event', () => inboundOfType(harness, 'image', mediaId));
    expect(event.body).toMatchObject({ content: '[image]', media_id: mediaId, pic_url: expect.stringContaining('/mmbiz/') });
    const mediaUrl = String(event.body.media_url);
    expect(mediaUrl).toMatch(new RegExp(`^${harness.baseUrl}/media/${mediaId}\\?expires=\\d+&signature=[\\w-]{43}$`));
    // The link lasts as long as WeChat keeps the file: 3 days.
    const expires = Number(new URL(mediaUrl).searchParams.get('expires')) * 1000;
    expect(Math.abs(expires - (Date.now() + 3 * 24 * 3600_000))).toBeLessThan(60_000);

    const gets = mediaGets();
    const first = await fetch(mediaUrl);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('image/png');
    expect(first.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await first.arrayBuffer()).equals(PNG)).toBe(true);
    const again = await Promise.all([fetch(mediaUrl), fetch(mediaUrl)]);
    for (const response of again) expect(Buffer.from(await response.arrayBuffer()).equals(PNG)).toBe(true);
    expect(mediaGets()).toBe(gets + 1);

    // Ranges (video players need them).
    const part = await fetch(mediaUrl, { headers: { range: 'bytes=0-7' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(PNG.subarray(0, 8))).toBe(true);
  });

  test('voice and video events carry a media_url too; a video is fetched through WeChat\'s video_url', async () => {
    const voice = harness.weChat.storeMedia({ type: 'voice', bytes: AMR, contentType: 'audio/amr', filename: 'voice.amr' });
    const video = harness.weChat.storeMedia({ type: 'video', bytes: MP4, contentType: 'video/mp4' });
    const xml = (type: string, inner: string, msgId: string) =>
      `<xml><ToUserName><![CDATA[${harness.weChat.accountId}]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
      `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[${type}]]></MsgType>${inner}<MsgId>${msgId}</MsgId></xml>`;
    await harness.weChat.pushXml(xml('voice', `<MediaId><![CDATA[${voice.mediaId}]]></MediaId><Format><![CDATA[amr]]></Format>`, '7001'));
    await harness.weChat.pushXml(xml('video', `<MediaId><![CDATA[${video.mediaId}]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId>`, '7002'));

    const voiceEvent = await waitFor('the voice event', () => inboundOfType(harness, 'voice', voice.mediaId));
    const voiceFile = await fetch(String(voiceEvent.body.media_url));
    expect(voiceFile.headers.get('content-type')).toBe('audio/amr');
    expect(Buffer.from(await voiceFile.arrayBuffer()).equals(AMR)).toBe(true);

    const videoEvent = await waitFor('the video event', () => inboundOfType(harness, 'video', video.mediaId));
    const videoFile = await fetch(String(videoEvent.body.media_url));
    expect(videoFile.headers.get('content-type')).toBe('video/mp4');
    expect(Buffer.from(await videoFile.arrayBuffer()).equals(MP4)).toBe(true);
  });

  test('forged, expired and malformed links are refused; the route is no open proxy', async () => {
    const stored = harness.weChat.storeMedia({ type: 'image', bytes: PNG, contentType: 'image/png' });
    const key = mediaLinkKey({ appSecret: TEST_APP_SECRET });
    const good = mediaLink(harness.baseUrl, key, stored.mediaId, Date.now() + 60_000);
    const url = new URL(good);
    const gets = mediaGets();

    const forgedSignature = new URL(good);
    forgedSignature.searchParams.set('signature', `${url.searchParams.get('signature')!.slice(0, -2)}AA`);
    const extended = new URL(good);
    extended.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 86_400));
    const otherMedia = good.replace(stored.mediaId, `${stored.mediaId.slice(0, -1)}x`);
    const otherKey = mediaLink(harness.baseUrl, mediaLinkKey({ appSecret: 'someone-elses-secret' }), stored.mediaId, Date.now() + 60_000);
    for (const forged of [forgedSignature.toString(), extended.toString(), otherMedia, otherKey]) {
      const response = await fetch(forged);
      expect([forged, response.status, await response.text()]).toEqual([forged, 403, 'invalid link']);
    }
    const expired = await fetch(mediaLink(harness.baseUrl, key, stored.mediaId, Date.now() - 1_000));
    expect([expired.status, await expired.text()]).toEqual([403, 'link expired']);
    for (const malformed of [`${harness.baseUrl}/media/${stored.mediaId}`, `${harness.baseUrl}/media/${stored.mediaId}?expires=1&signature=x`, `${harness.baseUrl}/media/a%2Fb?expires=1&signature=${'A'.repeat(43)}`]) {
      expect((await fetch(malformed)).status).toBe(404);
    }
    expect(mediaGets()).toBe(gets); // none of them reached WeChat

    expect((await fetch(good)).status).toBe(200);
    // A well-signed link to media WeChat does not have (or no longer has): 404.
    const unknown = await fetch(mediaLink(harness.baseUrl, key, 'no-such-media-id', Date.now() + 60_000));
    expect(unknown.status).toBe(404);
  });

  test('a JSON error from media/get is an error, never served as a file', async () => {
    const stored = harness.weChat.storeMedia({ type: 'image', bytes: PNG, contentType: 'image/png' });
    const link = mediaLink(harness.baseUrl, mediaLinkKey({ appSecret: TEST_APP_SECRET }), stored.mediaId, Date.now() + 60_000);
    harness.weChat.inject('/cgi-bin/media/get', [{ errcode: 48001 }, { errcode: -1 }]);
    const refused = await fetch(link);
    expect([refused.status, refused.headers.get('content-type'), await refused.text()]).toEqual([502, 'text/plain; charset=utf-8', 'media unavailable']);
    const busy = await fetch(link);
    expect([busy.status, busy.headers.get('retry-after')]).toEqual([503, '5']);
    // Nothing was cached from the errors: the next request gets the file.
    const ok = await fetch(link);
    expect(Buffer.from(await ok.arrayBuffer()).equals(PNG)).toBe(true);
    expect(harness.logs.join('')).not.toMatch(/access_token=[^[]/);
  });
});

test('without PUBLIC_URL, media events carry no media_url, and the start-up log says why', async () => {
  const harness = await startHarness();
  try {
    const xml = `<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[https://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>8001</MsgId></xml>`;
    expect(await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
    const [event] = await harness.vonage.waitForEvents(1);
    expect(event!.body).toMatchObject({ msg_type: 'image', media_id: 'm1' });
    expect(event!.body).not.toHaveProperty('media_url');
    expect(harness.logs.join('')).toContain('PUBLIC_URL is not set');
  } finally {
    await harness.close();
  }
});

describe('outbound media: media_url', () => {
  let harness: Harness;
  let files: http.Server;
  let filesBase: string;
  const served = new Map<string, { type: string; bytes: Buffer }>();
  const uploads = () => harness.weChat.traffic.recent().filter((t) => t.path.startsWith('/cgi-bin/media/upload')).length;
  const statusOf = async (eventId: unknown) =>
    (await waitFor('the status', () => harness.vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(eventId)))).body;

  beforeAll(async () => {
    files = http.createServer((req, res) => {
      const file = served.get(req.url ?? '');
      if (!file) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': file.type, 'content-length': String(file.bytes.length) }).end(file.bytes);
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    filesBase = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    // The files live on loopback here, which only tests may allow (production: https, public addresses).
    harness = await startHarness({ allowPrivateMediaUrls: true });
  });
  afterAll(async () => {
    await harness.close();
    await new Promise<void>((resolve) => files.close(() => resolve()));
  });

  test('an agent\'s image URL arrives in WeChat as an uploaded image; the same URL is uploaded once', async () => {
    served.set('/pic.png', { type: 'image/png', bytes: PNG });
    const before = harness.weChat.sent.length;
    const event = outboundMessage('oUser1', { msg_type: 'image', media_url: `${filesBase}/pic.png` });
    expect(await postRtcEvent(harness.baseUrl, event)).toEqual({ status: 200, text: 'ok' });
    const sent = (await harness.weChat.waitForSends(before + 1))[before]!;
    const json = sent.json as { touser: string; msgtype: string; image: { media_id: string } };
    expect(json).toEqual({ touser: 'oUser1', msgtype: 'image', image: { media_id: expect.any(String) } });
    const uploaded = harness.weChat.media(json.image.media_id)!;
    expect(uploaded.type).toBe('image');
    expect(uploaded.contentType).toBe('image/png');
    expect(uploaded.bytes.equals(PNG)).toBe(true);
    // oUser1 never wrote to this bridge: it knows no window for them.
    expect(await statusOf(event.id)).toEqual({
      status: 'delivered',
      ref_event_id: String(event.id),
      to: 'oUser1',
      reply_window: { closes_at: 0, replies_left: 0 },
    });

    const uploadsBefore = uploads();
    const nested = outboundMessage('oUser2', { msg_type: 'image', image: { media_url: `${filesBase}/pic.png` } });
    await postRtcEvent(harness.baseUrl, nested);
    const second = (await harness.weChat.waitForSends(before + 2))[before + 1]!;
    expect((second.json as { image: { media_id: string } }).image.media_id).toBe(json.image.media_id);
    expect(uploads()).toBe(uploadsBefore);
  });

  test('an oversized or wrong-type file fails with a clear status, and nothing is sent', async () => {
    served.set('/huge.png', { type: 'image/png', bytes: Buffer.concat([PNG, Buffer.alloc(10 * 1024 * 1024)]) });
    served.set('/page.png', { type: 'text/html', bytes: Buffer.from('<html>login</html>') });
    served.set('/voice.wav', { type: 'audio/wav', bytes: Buffer.from('RIFF....WAVE') });
    const requests = harness.weChat.requests.length;

    const huge = outboundMessage('oUser1', { msg_type: 'image', media_url: `${filesBase}/huge.png` });
    const page = outboundMessage('oUser1', { msg_type: 'image', media_url: `${filesBase}/page.png` });
    const wav = outboundMessage('oUser1', { msg_type: 'voice', media_url: `${filesBase}/voice.wav` });
    const missing = outboundMessage('oUser1', { msg_type: 'video', media_url: `${filesBase}/missing.mp4` });
    for (const event of [huge, page, wav, missing]) await postRtcEvent(harness.baseUrl, event);

    expect(await statusOf(huge.id)).toMatchObject({ status: 'failed', error_code: 'media_too_large', error_message: expect.stringContaining('10485760') });
    expect(await statusOf(page.id)).toMatchObject({ status: 'failed', error_code: 'unsupported_media_type', error_message: expect.stringContaining('PNG, JPEG or GIF') });
    expect(await statusOf(wav.id)).toMatchObject({ status: 'failed', error_code: 'unsupported_media_type', error_message: expect.stringContaining('AMR or MP3') });
    expect(await statusOf(missing.id)).toMatchObject({ status: 'failed', error_code: 'media_download_failed', error_message: expect.stringContaining('404') });
    expect(harness.weChat.requests.length).toBe(requests);
  });
});

test('in production settings an agent\'s URL must be https and public', async () => {
  const harness = await startHarness();
  try {
    const events = [
      outboundMessage('oUser1', { msg_type: 'image', media_url: 'http://127.0.0.1:9/a.png' }),
      outboundMessage('oUser1', { msg_type: 'image', media_url: 'https://169.254.169.254/latest/meta-data' }),
    ];
    for (const event of events) await postRtcEvent(harness.baseUrl, event);
    for (const event of events) {
      const status = await waitFor('the status', () => harness.vonage.events.find((e) => e.body.ref_event_id === String(event.id)));
      expect(status.body).toMatchObject({ status: 'failed', error_code: 'media_url_refused' });
    }
    expect(harness.weChat.requests).toHaveLength(0);
  } finally {
    await harness.close();
  }
});
