/**
 * media/get and media/upload against the WeChat platform emulator: files, the video_url indirection,
 * JSON errors that must never become files, the access token refetched once.
 */
import { buffer } from 'node:stream/consumers';
import { PermanentError, RetryableError } from '../../../src/errors';
import { startWeChatPlatform, type WeChatPlatform } from '../../../src/sandbox/wechat/platform';
import { SqliteStore } from '../../../src/store/sqlite-store';
import { WeChatApiError } from '../../../src/wechat/api-client';
import { createWeChatMediaClient, filenameOf, type WeChatMediaClient } from '../../../src/wechat/media';
import { AccessTokenManager } from '../../../src/wechat/token-manager';

const APP = { appId: 'wx2c2769f8efd9abc2', appSecret: 'test-app-secret' };
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(300, 9)]);

describe('WeChat media client', () => {
  let weChat: WeChatPlatform;
  let store: SqliteStore;
  let media: WeChatMediaClient;

  beforeEach(async () => {
    weChat = await startWeChatPlatform({ ...APP, unknownUsers: 'accept' });
    store = SqliteStore.open(':memory:');
    const tokens = new AccessTokenManager({ ...APP, baseUrl: weChat.baseUrl, store });
    media = createWeChatMediaClient({ baseUrl: weChat.baseUrl, tokens, timeoutMs: 2_000 });
  });
  afterEach(async () => {
    await store.close();
    await weChat.close();
  });

  const mediaGets = () => weChat.traffic.recent().filter((t) => t.path.startsWith('/cgi-bin/media/get'));

  test('an image comes back as a stream with its type and name', async () => {
    const stored = weChat.storeMedia({ type: 'image', bytes: PNG, contentType: 'image/png', filename: 'photo.png' });
    const file = await media.getMedia(stored.mediaId);
    expect(file).toMatchObject({ contentType: 'image/png', filename: 'photo.png', contentLength: PNG.length });
    expect((await buffer(file.body)).equals(PNG)).toBe(true);
  });

  test('a video answer ({"video_url"}) is followed to the file', async () => {
    const mp4 = Buffer.concat([Buffer.from('0000001c6674797069736f6d', 'hex'), Buffer.alloc(100, 3)]);
    const stored = weChat.storeMedia({ type: 'video', bytes: mp4, contentType: 'video/mp4' });
    const file = await media.getMedia(stored.mediaId);
    expect(file.contentType).toBe('video/mp4');
    expect((await buffer(file.body)).equals(mp4)).toBe(true);
  });

  test('40007 is a WeChatApiError, never a file', async () => {
    const error = await media.getMedia('no-such-media').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeChatApiError);
    expect((error as WeChatApiError).errcode).toBe(40007);
    expect((error as Error).message).not.toMatch(/access_token/);
  });

  test('a rejected token is refetched once and the download repeated', async () => {
    const stored = weChat.storeMedia({ type: 'voice', bytes: Buffer.from('#!AMR\n1234'), contentType: 'audio/amr' });
    await media.getMedia(stored.mediaId).then((file) => buffer(file.body)); // a token is now stored
    weChat.expireTokens();
    const file = await media.getMedia(stored.mediaId);
    expect((await buffer(file.body)).toString('latin1')).toBe('#!AMR\n1234');
    expect(mediaGets().map((t) => /"errcode":(\d+)/.exec(t.responseBody ?? '')?.[1] ?? 'file')).toEqual(['file', '42001', 'file']);
  });

  test('other JSON errors become errors: busy is retryable, refusals permanent', async () => {
    const stored = weChat.storeMedia({ type: 'image', bytes: PNG, contentType: 'image/png' });
    weChat.inject('/cgi-bin/media/get', [{ errcode: -1 }, { errcode: 48001 }, { status: 502 }]);
    await expect(media.getMedia(stored.mediaId)).rejects.toBeInstanceOf(RetryableError);
    await expect(media.getMedia(stored.mediaId)).rejects.toMatchObject({ code: '48001' });
    await expect(media.getMedia(stored.mediaId)).rejects.toBeInstanceOf(RetryableError);
  });

  test('upload: media_id and creation time; the file then exists on WeChat', async () => {
    const uploaded = await media.uploadMedia({ type: 'image', bytes: PNG, contentType: 'image/png', filename: 'image.png' });
    expect(uploaded.mediaId).toEqual(expect.any(String));
    expect(Math.abs(uploaded.createdAtMs - Date.now())).toBeLessThan(5_000);
    expect(weChat.media(uploaded.mediaId)?.bytes.equals(PNG)).toBe(true);
  });

  test('upload refusals keep WeChat\'s errcode (40009 image size, 40005 type)', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 1);
    await expect(media.uploadMedia({ type: 'image', bytes: big, contentType: 'image/png', filename: 'image.png' })).rejects.toMatchObject({ code: '40009' });
    const refused = await media.uploadMedia({ type: 'image', bytes: PNG, contentType: 'text/plain', filename: 'notes.txt' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PermanentError);
    expect((refused as PermanentError).code).toBe('40005');
  });

  test('a WeChat that never answers is a retryable timeout', async () => {
    const stored = weChat.storeMedia({ type: 'image', bytes: PNG, contentType: 'image/png' });
    weChat.inject('/cgi-bin/media/get', [{ delayMs: 5_000 }]);
    const slow = createWeChatMediaClient({ baseUrl: weChat.baseUrl, tokens: { getToken: async () => 'x', invalidate: async () => 'y' }, timeoutMs: 100 });
    const error = await slow.getMedia(stored.mediaId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toContain('timed out');
  });

  test('filenameOf keeps only plain names', () => {
    expect(filenameOf('attachment; filename="a b.jpg"')).toBe('a b.jpg');
    expect(filenameOf('attachment; filename=x.amr')).toBe('x.amr');
    expect(filenameOf('attachment; filename="../../etc/passwd"')).toBeUndefined();
    expect(filenameOf(null)).toBeUndefined();
  });
});
