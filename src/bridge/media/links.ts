/**
 * Signed links to a WeChat user's media, for Vonage clients: `PUBLIC_URL/media/<media_id>?expires=
 * <unix seconds>&signature=<base64url HMAC-SHA256>`. Pure: values in, values out.
 *
 * Why signed: the route fetches files from WeChat with the account's access token, so an unsigned
 * `/media/<id>` would let anyone who learns a media_id read it, and probe ids through us. The HMAC
 * covers the media_id and the expiry, so a link can be neither pointed at another file nor extended.
 * Links expire with WeChat's own copy (temporary media live 3 days), never later.
 *
 * The key: `MEDIA_LINK_SECRET` when set (rotating it invalidates every link), else derived from
 * WECHAT_APP_SECRET with a fixed label, so that the app secret itself never signs anything and the
 * links change when the secret is reset.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isDefaultAccount } from '../../accounts';

/** Where the route is mounted. */
export const MEDIA_ROUTE_PATH = '/media';
/** WeChat keeps temporary media for 3 days: a link never outlives that. */
export const MEDIA_LINK_MAX_TTL_MS = 3 * 24 * 60 * 60 * 1000;

const KEY_LABEL = 'wechat-conversation-bridge media links v1';
const SIGNATURE_BYTES = 32;
/** WeChat media ids are URL-safe base64-like strings of about 64 characters. */
const MEDIA_ID = /^[A-Za-z0-9_-]{1,256}$/;

/** The HMAC key for links, from MEDIA_LINK_SECRET or else the app secret. */
export function mediaLinkKey(secrets: { appSecret: string; linkSecret?: string | undefined }): Buffer {
  const root = secrets.linkSecret !== undefined && secrets.linkSecret !== '' ? secrets.linkSecret : secrets.appSecret;
  return createHmac('sha256', root).update(KEY_LABEL).digest();
}

export const isMediaId = (value: string): boolean => MEDIA_ID.test(value);

function signature(key: Buffer, mediaId: string, expires: number): Buffer {
  return createHmac('sha256', key).update(`${mediaId}\n${expires}`).digest();
}

/**
 * Where an account's links are served: `/media` for the default account, `/media/<id>` for others
 * (each fetches with its own access token: a media_id is only good with its own account's).
 */
export const mediaRoutePathOf = (accountId: string): string =>
  isDefaultAccount(accountId) ? MEDIA_ROUTE_PATH : `${MEDIA_ROUTE_PATH}/${accountId}`;

/**
 * The link key of one account: the default account's is `mediaLinkKey`'s, as before accounts
 * existed; others derive theirs with their id, so that a link signed for one account is forged at
 * another's path even when MEDIA_LINK_SECRET is shared.
 */
export function accountMediaLinkKey(accountId: string, secrets: { appSecret: string; linkSecret?: string | undefined }): Buffer {
  const key = mediaLinkKey(secrets);
  return isDefaultAccount(accountId) ? key : createHmac('sha256', key).update(`account ${accountId}`).digest();
}

/** The link for `mediaId`, valid until `expiresAtMs` (rounded down to a second). */
export function mediaLink(publicUrl: string, key: Buffer, mediaId: string, expiresAtMs: number, routePath: string = MEDIA_ROUTE_PATH): string {
  const expires = Math.floor(expiresAtMs / 1000);
  const query = new URLSearchParams({ expires: String(expires), signature: signature(key, mediaId, expires).toString('base64url') });
  return `${publicUrl.replace(/\/+$/, '')}${routePath}/${encodeURIComponent(mediaId)}?${query}`;
}

export type MediaLinkCheck =
  | { ok: true; expiresAtMs: number }
  | { ok: false; reason: 'malformed' | 'forged' | 'expired' };

/**
 * Checks a link's parts as the route received them. The signature is compared in constant time,
 * and before the expiry, so that an answer tells nothing about a forged link but "forged".
 */
export function verifyMediaLink(
  key: Buffer,
  link: { mediaId: string; expires: unknown; signature: unknown },
  nowMs: number,
): MediaLinkCheck {
  const { mediaId, expires, signature: given } = link;
  if (!isMediaId(mediaId) || typeof expires !== 'string' || typeof given !== 'string') return { ok: false, reason: 'malformed' };
  if (!/^\d{1,12}$/.test(expires) || !/^[A-Za-z0-9_-]{43}$/.test(given)) return { ok: false, reason: 'malformed' };
  const expected = signature(key, mediaId, Number(expires));
  const received = Buffer.from(given, 'base64url');
  if (received.length !== SIGNATURE_BYTES || !timingSafeEqual(received, expected)) return { ok: false, reason: 'forged' };
  const expiresAtMs = Number(expires) * 1000;
  if (expiresAtMs <= nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, expiresAtMs };
}
