/**
 * The WeChat platform emulator on its own, over raw HTTP: how it pushes (signatures, safe mode,
 * retries), and the API rules a bridge must live with (48-hour window, quota, token expiry, media).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startWeChatPlatform, type WeChatPlatform } from '../../../src/sandbox/wechat/platform';
import { FOLLOW_WINDOW_MS, MEDIA_TTL_MS, MESSAGE_WINDOW_MS } from '../../../src/sandbox/wechat/state';
import { WECHAT_ANSWER_TIMEOUT_MS, WECHAT_PUSH_DELIVERIES } from '../../../src/sandbox/wechat/push';
import WXBizMsgCrypt from 'wechat-crypto';
import { readWeChatMessage } from '../../../src/wechat/message';
import { parseWeChatXml } from '../../../src/wechat/xml';
import { sleep } from '../../support/wait';

const APP_ID = 'wx0123456789abcdef';
const APP_SECRET = 'platform-test-secret';
const TOKEN = 'platformToken42';
const AES_KEY_TEXT = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');

interface Received {
  query: URLSearchParams;
  body: string;
}

/** A stand-in for the account's server: records pushes and answers as `respond` says. */
async function startReceiver(respond: (n: number) => { status: number; body: string } | 'silent') {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ query: new URL(req.url ?? '/', 'http://x').searchParams, body });
      const answer = respond(received.length);
      if (answer === 'silent') return; // never answers: WeChat times out
      res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/weChatEvent`,
    received,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function token(platform: WeChatPlatform, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const response = await fetch(`${platform.baseUrl}/cgi-bin/stable_token`, {
    method: 'POST',
    body: JSON.stringify({ grant_type: 'client_credential', appid: APP_ID, secret: APP_SECRET, ...extra }),
  });
  return (await response.json()) as Record<string, unknown>;
}

async function customSend(platform: WeChatPlatform, accessToken: string, body: unknown, path = 'send'): Promise<Record<string, unknown>> {
  const response = await fetch(`${platform.baseUrl}/cgi-bin/message/custom/${path}?access_token=${accessToken}`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  return (await response.json()) as Record<string, unknown>;
}

const text = (touser: string, content = 'hello') => ({ touser, msgtype: 'text', text: { content } });

/** The first push (plain mode) whose XML matches, once it arrives. */
async function waitForPush(receiver: { received: Received[] }, matches: (xml: string) => boolean): Promise<string> {
  for (let waited = 0; waited < 5_000; waited += 10) {
    const found = receiver.received.find((push) => matches(push.body));
    if (found) return found.body;
    await sleep(10);
  }
  throw new Error('no such push');
}

describe('pushes to the account server', () => {
  let platform: WeChatPlatform;
  afterEach(() => platform.close());

  test('a plain push carries signature, timestamp, nonce and openid; the XML is the official layout', async () => {
    const receiver = await startReceiver(() => ({ status: 200, body: 'success' }));
    try {
      platform = await startWeChatPlatform({ appId: APP_ID, appSecret: APP_SECRET });
      platform.connect({ url: receiver.url, token: TOKEN });
      const user = await platform.addUser({ nickname: 'Zhang Min' });
      const result = await platform.sendText(user.openid, '你好 <b>&</b> ]]> end');
      expect(result.acknowledged).toBe(true);
      expect(result.deliveries).toHaveLength(1);

      const [follow, message] = receiver.received;
      expect(readWeChatMessage(follow!.body)).toMatchObject({ msgType: 'event', event: 'subscribe', fromUserName: user.openid });
      const { query, body } = message!;
      // Checked with node-webot's wechat-crypto: an empty fourth part sorts first and adds nothing, so
      // its msg_signature over '' is the plain signature.
      const plainSignature = (token: string) => new WXBizMsgCrypt(token, AES_KEY_TEXT, APP_ID).getSignature(query.get('timestamp')!, query.get('nonce')!, '');
      expect(query.get('signature')).toBe(plainSignature(TOKEN));
      expect(query.get('signature')).not.toBe(plainSignature('otherToken'));
      expect(Math.abs(Number(query.get('timestamp')) - Date.now() / 1000)).toBeLessThan(5);
      expect(query.get('openid')).toBe(user.openid);
      expect(query.has('encrypt_type')).toBe(false);
      const parsed = readWeChatMessage(body);
      expect(parsed).toMatchObject({ msgType: 'text', toUserName: platform.accountId, fromUserName: user.openid, msgId: result.msgId });
      expect(parsed.fields.content).toBe('你好 <b>&</b> ]]> end');
      expect(body).toMatch(/<CreateTime>\d{10}<\/CreateTime>/);
      expect(body).toMatch(new RegExp(`<MsgId>${result.msgId}</MsgId>`));
      // 64-bit, beyond what a JS number holds exactly
      expect(BigInt(result.msgId!)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));
    } finally {
      await receiver.close();
    }
  });

  test('safe mode: only ToUserName + Encrypt, msg_signature over Encrypt, AES with the AppID inside', async () => {
    const receiver = await startReceiver(() => ({ status: 200, body: 'success' }));
    try {
      platform = await startWeChatPlatform({ appId: APP_ID, appSecret: APP_SECRET });
      platform.connect({ url: receiver.url, token: TOKEN, mode: 'safe', encodingAesKey: AES_KEY_TEXT });
      const user = await platform.addUser({ follow: false });
      await platform.follow(user.openid);
      const result = await platform.sendLocation(user.openid, { latitude: 23.134521, longitude: 113.358803, scale: 20, label: '位置信息' });

      const { query, body } = receiver.received[1]!;
      expect(query.get('encrypt_type')).toBe('aes');
      const outer = parseWeChatXml(body);
      expect(Object.keys(outer).sort()).toEqual(['Encrypt', 'ToUserName']);
      const encrypt = outer.Encrypt as string;
      const independent = new WXBizMsgCrypt(TOKEN, AES_KEY_TEXT, APP_ID);
      expect(query.get('msg_signature')).toBe(independent.getSignature(query.get('timestamp')!, query.get('nonce')!, encrypt));
      const { message: plaintext, id } = independent.decrypt(encrypt);
      expect(id).toBe(APP_ID);
      expect(plaintext).toBe(result.xml);
      expect(readWeChatMessage(plaintext).fields).toMatchObject({ location_x: '23.134521', location_y: '113.358803', scale: '20', label: '位置信息' });

      platform.setPushMode('compatible');
      await platform.sendText(user.openid, 'compatible');
      const compatible = parseWeChatXml(receiver.received[2]!.body);
      expect(compatible.Content).toBe('compatible');
      expect(typeof compatible.Encrypt).toBe('string');
    } finally {
      await receiver.close();
    }
  });

  test('no answer: WeChat pushes the same request again, three deliveries in all, one answer timeout apart', async () => {
    expect(WECHAT_ANSWER_TIMEOUT_MS).toBe(5_000);
    expect(WECHAT_PUSH_DELIVERIES).toBe(3);
    const receiver = await startReceiver(() => 'silent');
    try {
      platform = await startWeChatPlatform({ appId: APP_ID, appSecret: APP_SECRET, answerTimeoutMs: 150 });
      const user = await platform.addUser({ follow: false });
      await platform.follow(user.openid).catch(() => undefined); // not connected: no push
      platform.connect({ url: receiver.url, token: TOKEN });
      const result = await platform.sendText(user.openid, 'anyone there?');

      expect(result.acknowledged).toBe(false);
      expect(result.deliveries.map((d) => d.error)).toEqual(Array(3).fill('no answer within 150 ms'));
      expect(receiver.received).toHaveLength(3);
      const msgIds = receiver.received.map((r) => readWeChatMessage(r.body).msgId);
      expect(new Set(msgIds)).toEqual(new Set([result.msgId]));
      const starts = result.deliveries.map((d) => d.at);
      expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(140);
      expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(140);
      const item = platform.chat(user.openid).at(-1)!;
      expect(item.delivery).toMatchObject({ state: 'failed', attempts: 3 });
      expect(item.delivery!.detail).toContain('该公众号暂时无法提供服务');
      expect(platform.traffic.recent().filter((t) => t.channel === 'wechat-push')).toHaveLength(3);
    } finally {
      await receiver.close();
    }
  });

  test('an error answer is retried too; the first 200 ends the pushes', async () => {
    const receiver = await startReceiver((n) => (n === 1 ? { status: 503, body: 'try again' } : { status: 200, body: 'success' }));
    try {
      platform = await startWeChatPlatform({ appId: APP_ID, appSecret: APP_SECRET, answerTimeoutMs: 100 });
      platform.connect({ url: receiver.url, token: TOKEN });
      const user = await platform.addUser({ follow: false });
      await platform.follow(user.openid);
      const result = await platform.sendText(user.openid, 'second time lucky');
      expect(result.deliveries.map((d) => d.status)).toEqual([200]); // the follow event took the 503
      expect(receiver.received).toHaveLength(3);
      expect(platform.chat(user.openid)[0]!.delivery).toEqual({ state: 'delivered', attempts: 2 });
    } finally {
      await receiver.close();
    }
  });
});

describe('customer-service rules', () => {
  let platform: WeChatPlatform;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeEach(async () => {
    receiver = await startReceiver(() => ({ status: 200, body: 'success' }));
    platform = await startWeChatPlatform({ appId: APP_ID, appSecret: APP_SECRET });
    platform.connect({ url: receiver.url, token: TOKEN });
  });
  afterEach(async () => {
    await platform.close();
    await receiver.close();
  });

  test('an unverified subscription account has no customer-service API: 48001 for send and typing', async () => {
    const user = await platform.addUser({ nickname: 'Sub' });
    await platform.sendText(user.openid, 'hi');
    const { access_token } = await token(platform);
    platform.setAccountType('unverified-subscription');
    expect(await customSend(platform, String(access_token), text(user.openid))).toMatchObject({ errcode: 48001, errmsg: expect.stringMatching(/^api unauthorized/) });
    expect(await customSend(platform, String(access_token), { touser: user.openid, command: 'Typing' }, 'typing')).toMatchObject({ errcode: 48001 });
    platform.setAccountType('verified');
    expect(await customSend(platform, String(access_token), text(user.openid))).toMatchObject({ errcode: 0 });
  });

  test('an answer in the passive reply format reaches the phone; an empty text reply shows the error instead', async () => {
    let answer = 'success';
    const replier = await startReceiver(() => ({ status: 200, body: answer }));
    platform.connect({ url: replier.url, token: TOKEN });
    try {
      const user = await platform.addUser({ nickname: 'Passive' });
      const reply = (content: string) =>
        `<xml><ToUserName><![CDATA[${user.openid}]]></ToUserName><FromUserName><![CDATA[${platform.accountId}]]></FromUserName>` +
        `<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${content}]]></Content></xml>`;
      answer = reply('in the answer');
      const good = await platform.sendText(user.openid, 'question');
      expect(good.reply).toMatchObject({ msgType: 'text', text: 'in the answer' });
      expect(platform.chat(user.openid).at(-1)).toMatchObject({ from: 'account', kind: 'text', text: 'in the answer' });

      answer = reply('');
      const bad = await platform.sendText(user.openid, 'another');
      expect(bad.replyError).toBe('empty Content');
      const item = platform.chat(user.openid).find((entry) => entry.text === 'another');
      expect(item?.delivery).toMatchObject({ state: 'failed', detail: expect.stringContaining('该公众号暂时无法提供服务') });
    } finally {
      await replier.close();
    }
  });

  test('an openid that is no user of the account is 40003', async () => {
    const { access_token } = await token(platform);
    expect(await customSend(platform, String(access_token), text('oNobody'))).toMatchObject({ errcode: 40003 });
  });

  test('48-hour window: open after the user writes, 45015 once 48 h of platform time have passed', async () => {
    const user = await platform.addUser();
    const { access_token } = await token(platform);
    await platform.sendText(user.openid, 'hi');
    expect(await customSend(platform, String(access_token), text(user.openid, 'reply'))).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(platform.chat(user.openid).at(-1)).toMatchObject({ from: 'account', kind: 'text', text: 'reply' });

    platform.advanceClock(MESSAGE_WINDOW_MS - 60_000);
    const fresh = await token(platform); // the first token expired meanwhile
    expect(await customSend(platform, String(fresh.access_token), text(user.openid))).toMatchObject({ errcode: 0 });
    platform.advanceClock(61_000);
    const closed = await customSend(platform, String(fresh.access_token), text(user.openid));
    expect(closed.errcode).toBe(45015);
    expect(String(closed.errmsg)).toMatch(/^response out of time limit or subscription is canceled rid: \w+$/);
    expect(platform.user(user.openid)).toMatchObject({ windowClosesAt: undefined, sendsLeft: 0 });

    await platform.sendText(user.openid, 'back again');
    expect(await customSend(platform, String(fresh.access_token), text(user.openid))).toMatchObject({ errcode: 0 });
  });

  test('following opens 1 minute for 3 messages; a user message gives 5 more; then 45047', async () => {
    const user = await platform.addUser();
    const { access_token } = await token(platform);
    const send = () => customSend(platform, String(access_token), text(user.openid));
    for (let i = 0; i < 3; i += 1) expect(await send()).toMatchObject({ errcode: 0 });
    expect(await send()).toMatchObject({ errcode: 45047 });
    platform.advanceClock(FOLLOW_WINDOW_MS);
    expect(await send()).toMatchObject({ errcode: 45015 });
    await platform.sendText(user.openid, 'question');
    for (let i = 0; i < 5; i += 1) expect(await send()).toMatchObject({ errcode: 0 });
    expect(await send()).toMatchObject({ errcode: 45047 });
  });

  test('template/send: client_msg_id gives one message for 10 minutes; no window needed; a follower only; then the result push', async () => {
    const user = await platform.addUser();
    const { access_token } = await token(platform);
    const template = (extra: Record<string, unknown> = {}) => ({
      touser: user.openid,
      template_id: 'tmpl_service_reply_8KqW2',
      client_msg_id: 'event-1',
      data: { thing1: { value: 'Your parcel left' }, time2: { value: '2026-12-02 15:00' } },
      ...extra,
    });
    const send = (body: unknown, path = 'template/send') =>
      fetch(`${platform.baseUrl}/cgi-bin/message/${path}?access_token=${String(access_token)}`, { method: 'POST', body: JSON.stringify(body) }).then(
        async (response) => ({ text: await response.text() }),
      );
    platform.advanceClock(FOLLOW_WINDOW_MS); // the customer-service window is closed: templates still go
    const first = await send(template());
    expect(first.text).toMatch(/^\{"errcode":0,"errmsg":"ok","msgid":\d{17,}\}$/);
    expect((await send(template())).text).toBe(first.text);
    expect(platform.notifications).toHaveLength(1);
    platform.advanceClock(10 * 60_000);
    expect((await send(template())).text).not.toBe(first.text);
    expect(platform.notifications).toHaveLength(2);
    const msgId = /"msgid":(\d+)/.exec(first.text)![1]!;
    const finish = await waitForPush(receiver, (xml) => xml.includes(msgId));
    expect(readWeChatMessage(finish)).toMatchObject({ event: 'TEMPLATESENDJOBFINISH', msgId, fields: { status: 'success' } });

    expect(JSON.parse((await send(template({ template_id: 'sub_appointment_reminder_Qm31x' }))).text)).toMatchObject({ errcode: 40037 });
    expect(JSON.parse((await send(template({ data: { thing1: { value: 'x' } } }))).text)).toMatchObject({ errcode: 47003 });
    await platform.unfollow(user.openid);
    expect(JSON.parse((await send(template({ client_msg_id: 'event-2' }))).text)).toMatchObject({ errcode: 43004 });
  });

  test('a user who unfollowed is 45015, for messages and typing; following again reopens', async () => {
    const user = await platform.addUser();
    const { access_token } = await token(platform);
    await platform.sendText(user.openid, 'hi');
    const unfollow = await platform.unfollow(user.openid);
    expect(readWeChatMessage(unfollow!.xml)).toMatchObject({ msgType: 'event', event: 'unsubscribe' });
    expect(await customSend(platform, String(access_token), text(user.openid))).toMatchObject({ errcode: 45015 });
    expect(await customSend(platform, String(access_token), { touser: user.openid, command: 'Typing' }, 'typing')).toMatchObject({ errcode: 45015 });
    await expect(platform.sendText(user.openid, 'not following')).rejects.toThrow(/does not follow/);
    await platform.follow(user.openid);
    expect(await customSend(platform, String(access_token), text(user.openid))).toMatchObject({ errcode: 0 });
  });

  test('access tokens: the same one while valid, 42001 once expired on the platform clock, then a new one', async () => {
    const first = await token(platform);
    expect(first.expires_in).toBeGreaterThanOrEqual(7199);
    expect(String(first.access_token).length).toBeGreaterThan(64);
    expect((await token(platform)).access_token).toBe(first.access_token);
    const user = await platform.addUser();
    platform.advanceClock(7200 * 1000);
    await platform.sendText(user.openid, 'hi');
    expect(await customSend(platform, String(first.access_token), text(user.openid))).toMatchObject({ errcode: 42001 });
    const second = await token(platform);
    expect(second.access_token).not.toBe(first.access_token);
    expect(await customSend(platform, String(second.access_token), text(user.openid))).toMatchObject({ errcode: 0 });
    expect(await customSend(platform, 'made-up', text(user.openid))).toMatchObject({ errcode: 40001 });
    expect(await customSend(platform, '', text(user.openid))).toMatchObject({ errcode: 41001 });
    expect(await token(platform, { secret: 'wrong' })).toMatchObject({ errcode: 40125 });
  });

  test('media/upload (multipart field media) and media/get; 3 days later 40007', async () => {
    const { access_token } = await token(platform);
    const upload = async (type: string, blob: Blob | undefined, filename = 'photo.png') => {
      const form = new FormData();
      if (blob) form.append('media', blob, filename);
      else form.append('other', 'x');
      const response = await fetch(`${platform.baseUrl}/cgi-bin/media/upload?access_token=${String(access_token)}&type=${type}`, { method: 'POST', body: form });
      return (await response.json()) as Record<string, unknown>;
    };
    const uploaded = await upload('image', new Blob([PNG], { type: 'image/png' }));
    expect(uploaded).toEqual({ type: 'image', media_id: expect.stringMatching(/^[\w-]{64}$/), created_at: expect.any(Number) });
    expect(Math.abs(Number(uploaded.created_at) - Date.now() / 1000)).toBeLessThan(5);
    expect(await upload('sticker', new Blob([PNG], { type: 'image/png' }))).toMatchObject({ errcode: 40004 });
    expect(await upload('image', undefined)).toMatchObject({ errcode: 41005 });
    expect(await upload('image', new Blob(['%PDF'], { type: 'application/pdf' }), 'file.pdf')).toMatchObject({ errcode: 40005 });
    expect(await upload('thumb', new Blob([Buffer.alloc(65 * 1024)], { type: 'image/jpeg' }), 'big.jpg')).toMatchObject({ errcode: 40012 });

    const get = await fetch(`${platform.baseUrl}/cgi-bin/media/get?access_token=${String(access_token)}&media_id=${String(uploaded.media_id)}`);
    expect(get.status).toBe(200);
    expect(get.headers.get('content-type')).toBe('image/png');
    expect(get.headers.get('content-disposition')).toBe('attachment; filename="photo.png"');
    expect(Buffer.from(await get.arrayBuffer())).toEqual(PNG);

    // A registered user can be sent the image; an unknown media_id is 40007.
    const user = await platform.addUser();
    const image = (mediaId: string) => ({ touser: user.openid, msgtype: 'image', image: { media_id: mediaId } });
    expect(await customSend(platform, String(access_token), image(String(uploaded.media_id)))).toMatchObject({ errcode: 0 });
    expect(platform.chat(user.openid).at(-1)).toMatchObject({ kind: 'image', mediaId: uploaded.media_id });
    expect(await customSend(platform, String(access_token), image('no-such-media'))).toMatchObject({ errcode: 40007 });

    platform.advanceClock(MEDIA_TTL_MS);
    const { access_token: later } = await token(platform);
    const expired = await fetch(`${platform.baseUrl}/cgi-bin/media/get?access_token=${String(later)}&media_id=${String(uploaded.media_id)}`);
    expect(expired.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await expired.json()).toMatchObject({ errcode: 40007 });
  });

  test("a user's image is stored as media: PicUrl serves it, MediaId works with media/get", async () => {
    const user = await platform.addUser();
    const result = await platform.sendImage(user.openid, { bytes: PNG, contentType: 'image/png' });
    const message = readWeChatMessage(result.xml);
    expect(message.msgType).toBe('image');
    const picture = await fetch(message.fields.pic_url!);
    expect(Buffer.from(await picture.arrayBuffer())).toEqual(PNG);
    const { access_token } = await token(platform);
    const get = await fetch(`${platform.baseUrl}/cgi-bin/media/get?access_token=${String(access_token)}&media_id=${message.fields.media_id!}`);
    expect(Buffer.from(await get.arrayBuffer())).toEqual(PNG);
  });

  test('the traffic log blanks access tokens and the app secret', async () => {
    const { access_token } = await token(platform);
    await customSend(platform, String(access_token), text('oNobody'));
    const logged = JSON.stringify(platform.traffic.recent());
    expect(logged).not.toContain(String(access_token));
    expect(logged).not.toContain(APP_SECRET);
    expect(logged).toContain('access_token=[redacted]');
  });
});
