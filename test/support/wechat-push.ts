/**
 * Pushes XML to a bridge exactly as WeChat's servers do: the query carries `signature`,
 * `timestamp`, `nonce` and `openid`; safe mode adds `encrypt_type=aes` and `msg_signature`,
 * and the body becomes `<xml><ToUserName/><Encrypt/></xml>`.
 */
import { signPush, type PushMode } from '../../src/sandbox/wechat/push';

export interface PushOptions {
  token: string;
  mode?: PushMode;
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

/** The sandbox's WeChat signing (one implementation), as a path and body for fetch. */
export function signedPush(xml: string, o: PushOptions): SignedPush {
  const push = signPush(xml, { ...o, mode: o.mode ?? 'plain', timestamp: o.timestamp ?? Math.floor(Date.now() / 1000) });
  return { path: `/weChatEvent?${push.query}`, body: push.body };
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
