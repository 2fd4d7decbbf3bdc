/**
 * Outbound media by URL: an agent sends an image, voice or video with `media_url` (https) instead of
 * a WeChat `media_id`. Before the send, the bridge downloads it (fetch-agent-media.ts: WeChat's
 * size and type limits, no private addresses), uploads it with `media/upload`, and puts the
 * `media_id` in the body, where buildCustomSendBody expects it.
 *
 * The media_id is remembered in the store by a digest of (type, URL) until shortly before WeChat
 * forgets it (3 days), so the same picture sent to many users is uploaded once. (A URL whose content
 * changes within that time keeps sending the first version: agents should use distinct URLs for
 * distinct files, as CDNs do.)
 *
 * Both forms the customer-service mapping accepts work: flat (`{"msg_type":"image","media_url":…}`)
 * and nested (`{"msg_type":"image","image":{"media_url":…}}`). A body that already has a `media_id`
 * is left alone: the explicit id wins.
 */
import { createHash } from 'node:crypto';
import { accountScopedKey, DEFAULT_ACCOUNT_ID } from '../../accounts';
import { InvalidInputError } from '../../errors';
import type { Logger } from '../../logger';
import type { UploadedMediaCache } from '../../store/store';
import { isRecord } from '../../values';
import type { WeChatMediaClient } from '../../wechat/media';
import type { FetchedMedia, OutboundMediaType } from './fetch-agent-media';

const MEDIA_URL_TYPES: ReadonlySet<string> = new Set(['image', 'voice', 'video']);
/** Stop reusing a media_id this long before WeChat's 3 days are up (the send itself takes time). */
const REUSE_MARGIN_MS = 60 * 60 * 1000;
const MEDIA_TTL_MS = 3 * 24 * 60 * 60 * 1000;

export interface MediaUrlRequest {
  type: OutboundMediaType;
  url: string;
  /** Where the field sits: `body` (flat) or `body.<type>` (nested). */
  nested: boolean;
}

/** The media_url an outbound body asks the bridge to upload, if any. Pure. */
export function mediaUrlRequest(body: Record<string, unknown>): MediaUrlRequest | undefined {
  const msgType = body['msg_type'];
  if (typeof msgType !== 'string' || !MEDIA_URL_TYPES.has(msgType)) return undefined;
  const nested = body[msgType];
  const source = isRecord(nested) ? nested : body;
  const url = source['media_url'];
  if (url === undefined || url === null) return undefined;
  if (source['media_id'] !== undefined && source['media_id'] !== null && source['media_id'] !== '') return undefined;
  if (typeof url !== 'string' || url.trim() === '') {
    throw new InvalidInputError(400, `${isRecord(nested) ? `body.${msgType}` : 'body'}.media_url must be a non-empty string`);
  }
  return { type: msgType as OutboundMediaType, url: url.trim(), nested: isRecord(nested) };
}

/** The body with the uploaded `media_id` where the `media_url` was. Pure. */
export function withMediaId(body: Record<string, unknown>, request: MediaUrlRequest, mediaId: string): Record<string, unknown> {
  if (!request.nested) {
    const { media_url: _url, ...rest } = body;
    return { ...rest, media_id: mediaId };
  }
  const { media_url: _url, ...inner } = body[request.type] as Record<string, unknown>;
  return { ...body, [request.type]: { ...inner, media_id: mediaId } };
}

/** The store key of an upload: which file (the URL) as which WeChat type. */
export const uploadKey = (request: Pick<MediaUrlRequest, 'type' | 'url'>): string =>
  `media-url:${request.type}:${createHash('sha256').update(request.url, 'utf8').digest('hex')}`;

export interface OutboundMediaDeps {
  store: UploadedMediaCache;
  weChatMedia: Pick<WeChatMediaClient, 'uploadMedia'>;
  /** fetchAgentMedia with the bridge's options (private networks allowed in tests only). */
  fetchMedia: (url: string, type: OutboundMediaType) => Promise<FetchedMedia>;
  logger?: Logger;
  /** The account whose media these are: an upload's media_id is only good for its own account. Default `default`. */
  accountId?: string;
}

export interface OutboundMedia {
  /**
   * The body ready for buildCustomSendBody: unchanged, or with the media_url replaced by an uploaded
   * media_id. Throws AgentMediaError (download refused or failed), InvalidInputError (bad field),
   * or the upload's own error (RetryableError while WeChat is busy or down).
   */
  prepare(body: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export function createOutboundMedia(deps: OutboundMediaDeps): OutboundMedia {
  return {
    async prepare(body) {
      const request = mediaUrlRequest(body);
      if (request === undefined) return body;
      const key = accountScopedKey(deps.accountId ?? DEFAULT_ACCOUNT_ID, uploadKey(request));
      const known = await deps.store.getUploadedMedia(key);
      if (known) return withMediaId(body, request, known.mediaId);

      const file = await deps.fetchMedia(request.url, request.type);
      const uploaded = await deps.weChatMedia.uploadMedia({ type: request.type, bytes: file.bytes, contentType: file.contentType, filename: file.filename });
      await deps.store.putUploadedMedia({
        key,
        mediaId: uploaded.mediaId,
        type: request.type,
        expiresAt: uploaded.createdAtMs + MEDIA_TTL_MS - REUSE_MARGIN_MS,
      });
      deps.logger?.info({ type: request.type, bytes: file.bytes.length, contentType: file.contentType }, 'uploaded agent media to WeChat');
      return withMediaId(body, request, uploaded.mediaId);
    },
  };
}
