/**
 * Pushes XML to a bridge exactly as WeChat's servers do: the query carries `signature`,
 * `timestamp`, `nonce` and `openid`; safe mode adds `encrypt_type=aes` and `msg_signature`,
 * and the body becomes `<xml><ToUserName/><Encrypt/></xml>`.
 */
import { randomInt } from 'node:crypto';
import { encryptWeChatMessage } from '../../src/wechat/crypto';
import { weChatSignature } from '../../src/wechat/signature';

export interface PushOptions {
  token: string;
  mode?: 'plain' | 'safe' | 'compatible';
  aesKey?: Buffer;
  appId?: string;
  /** Seconds since the epoch; defaults to now. */
  timestamp?: number;
  nonce?: string;
}

export interface SignedPush {
  path: string;
  body: string;
}

const field = (xml: string, tag: string): string | undefined =>
  new RegExp(`<${tag}>(?:<!\\[CDATA\\[)?([^<\\]]*)`).exec(xml)?.[1];

export function signedPush(xml: string, o: PushOptions): SignedPush {
  const timestamp = String(o.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = o.nonce ?? String(randomInt(1, 2 ** 31 - 1));
  const query = new URLSearchParams({ signature: weChatSignature([o.token, timestamp, nonce]), timestamp, nonce });
  const openid = field(xml, 'FromUserName');
  if (openid) query.set('openid', openid);
  let body = xml;
  if (o.mode === 'safe' || o.mode === 'compatible') {
    if (!o.aesKey || !o.appId) throw new Error('safe mode needs aesKey and appId');
    const encrypt = encryptWeChatMessage(xml, o.aesKey, o.appId);
    query.set('encrypt_type', 'aes');
    query.set('msg_signature', weChatSignature([o.token, timestamp, nonce, encrypt]));
    const toUser = field(xml, 'ToUserName') ?? '';
    body =
      o.mode === 'safe'
        ? `<xml><ToUserName><![CDATA[${toUser}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`
        : xml.replace(/<\/xml>\s*$/, `<Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`);
  }
  return { path: `/weChatEvent?${query.toString()}`, body };
}

/** Sends a signed push with fetch; resolves with the HTTP status and body text. */
export async function pushToBridge(baseUrl: string, xml: string, o: PushOptions): Promise<{ status: number; text: string }> {
  const push = signedPush(xml, o);
  const response = await fetch(`${baseUrl}${push.path}`, {
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: push.body,
  });
  return { status: response.status, text: await response.text() };
}
