/**
 * How WeChat reads the account server's answer to a push (被动回复用户消息), for the emulator. Written
 * from WeChat's documentation, apart from the bridge's `src/wechat` on purpose (the emulator checks
 * the bridge).
 *
 * Source: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html
 * (samples in test/fixtures/replies, rules in its index.json):
 * - `success` or an empty body: no reply.
 * - Otherwise XML: ToUserName = the user's openid, FromUserName = the account's original id,
 *   CreateTime (digits), MsgType text (non-empty Content), image / voice (Image|Voice.MediaId),
 *   video (Video.MediaId), music (Music.ThumbMediaId), news (ArticleCount = the items, 1 to 8).
 *   Anything else, malformed XML or JSON shows the user "该公众号暂时无法提供服务，请稍后再试".
 * - In safe mode the reply is `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`, signed
 *   sha1(sort[Token, TimeStamp, Nonce, Encrypt]) and encrypted for the AppID; compatible mode takes
 *   a plaintext or an encrypted reply.
 */
import { parseString } from 'xml2js';
import { platformDecrypt, platformSignature } from './crypto';
import type { PushMode } from './push';

export const PASSIVE_REPLY_ERROR = '该公众号暂时无法提供服务，请稍后再试';

export interface ReadPassiveReply {
  msgType: string;
  /** What the user's phone shows. */
  text: string;
  mediaId?: string;
  /** The plaintext reply XML. */
  xml: string;
}

export type PassiveReplyVerdict = { kind: 'none' } | { kind: 'reply'; reply: ReadPassiveReply } | { kind: 'invalid'; reason: string };

export interface ReplyContext {
  openid: string;
  accountId: string;
  mode: PushMode;
  token: string;
  appId: string;
  aesKey?: Buffer;
}

type Tree = Record<string, unknown>;

/** xml2js calls back synchronously without the `async` option, so this returns at once. */
function parseXml(text: string): Tree | undefined {
  let out: Tree | undefined;
  parseString(text, { explicitArray: false, explicitRoot: true }, (error, result: unknown) => {
    if (!error && result && typeof result === 'object') out = (result as Tree)['xml'] as Tree | undefined;
  });
  return out && typeof out === 'object' ? out : undefined;
}

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

export function readPassiveReply(body: string, ctx: ReplyContext): PassiveReplyVerdict {
  if (body === '' || body === 'success') return { kind: 'none' };
  let tree = parseXml(body);
  if (!tree) return { kind: 'invalid', reason: 'the answer is neither success nor XML' };
  let xml = body;
  if (tree['Encrypt'] !== undefined) {
    if (!ctx.aesKey) return { kind: 'invalid', reason: 'an encrypted reply, but the account is in plain mode' };
    const encrypt = str(tree['Encrypt']);
    const signature = platformSignature([ctx.token, str(tree['TimeStamp']), str(tree['Nonce']), encrypt]);
    if (str(tree['MsgSignature']) !== signature) return { kind: 'invalid', reason: 'the reply MsgSignature does not match' };
    try {
      xml = platformDecrypt(encrypt, ctx.aesKey, ctx.appId);
    } catch (error) {
      return { kind: 'invalid', reason: `the reply does not decrypt: ${(error as Error).message}` };
    }
    tree = parseXml(xml);
    if (!tree) return { kind: 'invalid', reason: 'the decrypted reply is not XML' };
  } else if (ctx.mode === 'safe') {
    return { kind: 'invalid', reason: 'safe mode: the reply must be encrypted' };
  }
  if (str(tree['ToUserName']) !== ctx.openid) return { kind: 'invalid', reason: 'ToUserName is not the user' };
  if (str(tree['FromUserName']) !== ctx.accountId) return { kind: 'invalid', reason: 'FromUserName is not the account' };
  if (!/^\d+$/.test(str(tree['CreateTime']))) return { kind: 'invalid', reason: 'CreateTime is not Unix seconds' };
  const msgType = str(tree['MsgType']);
  const inner = (name: string): Tree => (tree[name] && typeof tree[name] === 'object' ? (tree[name] as Tree) : {});
  const media = (name: string): PassiveReplyVerdict => {
    const mediaId = str(inner(name)['MediaId']);
    if (mediaId === '') return { kind: 'invalid', reason: `${name}.MediaId is missing` };
    return { kind: 'reply', reply: { msgType, text: `[${msgType}]`, mediaId, xml } };
  };
  switch (msgType) {
    case 'text': {
      const content = str(tree['Content']);
      if (content === '') return { kind: 'invalid', reason: 'empty Content' };
      return { kind: 'reply', reply: { msgType, text: content, xml } };
    }
    case 'image':
      return media('Image');
    case 'voice':
      return media('Voice');
    case 'video':
      return media('Video');
    case 'music':
      if (str(inner('Music')['ThumbMediaId']) === '') return { kind: 'invalid', reason: 'Music.ThumbMediaId is missing' };
      return { kind: 'reply', reply: { msgType, text: `[music] ${str(inner('Music')['Title'])}`, xml } };
    case 'news': {
      const items = inner('Articles')['item'];
      const list = (Array.isArray(items) ? items : items === undefined ? [] : [items]) as Tree[];
      if (list.length < 1 || list.length > 8) return { kind: 'invalid', reason: 'news needs 1 to 8 articles' };
      if (str(tree['ArticleCount']) !== String(list.length)) return { kind: 'invalid', reason: 'ArticleCount does not match the items' };
      return { kind: 'reply', reply: { msgType, text: `[news] ${list.map((a) => str(a['Title'])).join(' / ')}`, xml } };
    }
    default:
      return { kind: 'invalid', reason: `MsgType ${JSON.stringify(msgType)} cannot be a reply` };
  }
}
