/**
 * How WeChat's servers push a user's message to an Official Account's server URL.
 *
 * - `signPush` (pure): the query WeChat adds (`signature`, `timestamp`, `nonce`, `openid`) and, in
 *   compatible or safe mode, `encrypt_type=aes` and `msg_signature` over the `Encrypt` field, with the
 *   body rewritten as WeChat does (safe: only `ToUserName` + `Encrypt`; compatible: both).
 * - `deliverPush` (I/O): WeChat waits 5 s for an answer, then drops the connection and sends the same
 *   request again: three deliveries in all, the same MsgId each time (docs/emulator-limits.md names
 *   the sources). An answer other than `200` counts as no answer, and the next delivery starts 5 s
 *   after the previous one did.
 */
import { randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { postOnce, type DeliveryAttempt } from '../delivery';
import { platformEncrypt, platformSignature } from './crypto';

export type PushMode = 'plain' | 'compatible' | 'safe';

/** WeChat gives up on an answer after 5 s and pushes again. */
export const WECHAT_ANSWER_TIMEOUT_MS = 5_000;
/** The first delivery and two retries. */
export const WECHAT_PUSH_DELIVERIES = 3;

export interface PushSigning {
  token: string;
  mode: PushMode;
  /** The 32-byte AES key (decoded EncodingAESKey); needed for compatible and safe mode. */
  aesKey?: Buffer;
  /** The account's AppID, the receive_id inside every ciphertext. */
  appId?: string;
  /** Seconds since the epoch. */
  timestamp: number;
  nonce?: string;
}

export interface SignedPush {
  /** `?signature=…&timestamp=…` to append to the server URL. */
  query: string;
  body: string;
}

const tagText = (xml: string, tag: string): string | undefined =>
  new RegExp(`<${tag}>(?:<!\\[CDATA\\[)?([^<\\]]*)`).exec(xml)?.[1];

export function signPush(xml: string, o: PushSigning): SignedPush {
  const timestamp = String(o.timestamp);
  const nonce = o.nonce ?? String(randomInt(1, 2 ** 31 - 1));
  const query = new URLSearchParams({ signature: platformSignature([o.token, timestamp, nonce]), timestamp, nonce });
  const openid = tagText(xml, 'FromUserName');
  if (openid) query.set('openid', openid);
  if (o.mode === 'plain') return { query: query.toString(), body: xml };

  if (!o.aesKey || !o.appId) throw new Error(`${o.mode} mode needs the AES key and the AppID`);
  const encrypt = platformEncrypt(xml, o.aesKey, o.appId);
  query.set('encrypt_type', 'aes');
  query.set('msg_signature', platformSignature([o.token, timestamp, nonce, encrypt]));
  const body =
    o.mode === 'safe'
      ? `<xml><ToUserName><![CDATA[${tagText(xml, 'ToUserName') ?? ''}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`
      : xml.replace(/<\/xml>\s*$/, `<Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`);
  return { query: query.toString(), body };
}

export interface DeliverOptions {
  /** The server URL without query, e.g. `http://127.0.0.1:3000/weChatEvent`. */
  url: string;
  push: SignedPush;
  answerTimeoutMs?: number;
  deliveries?: number;
  now?: () => number;
  /** Called after every delivery (the console shows "retrying"). */
  onDelivery?: (delivery: DeliveryAttempt) => void;
  /** Aborts the waits and the request in flight (the platform is closing). */
  signal?: AbortSignal;
}

/** Pushes until a `200` comes back or the deliveries run out; resolves with every delivery made. */
export async function deliverPush(o: DeliverOptions): Promise<DeliveryAttempt[]> {
  const timeoutMs = o.answerTimeoutMs ?? WECHAT_ANSWER_TIMEOUT_MS;
  const total = o.deliveries ?? WECHAT_PUSH_DELIVERIES;
  const now = o.now ?? Date.now;
  const made: DeliveryAttempt[] = [];
  for (let attempt = 1; attempt <= total; attempt += 1) {
    if (o.signal?.aborted) break;
    const started = now();
    const delivery = await postOnce({
      url: `${o.url}?${o.push.query}`,
      headers: { 'content-type': 'text/xml' },
      body: o.push.body,
      attempt,
      timeoutMs,
      now,
      signal: o.signal,
    });
    made.push(delivery);
    o.onDelivery?.(delivery);
    if (delivery.status === 200) break;
    // The next delivery starts one timeout after this one did (at once after a timeout).
    const wait = timeoutMs - (now() - started);
    if (attempt < total && wait > 0) await delay(wait, undefined, { signal: o.signal }).catch(() => undefined);
  }
  return made;
}
