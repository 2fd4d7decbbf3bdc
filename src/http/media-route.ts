/**
 * `GET /media/:mediaId?expires=…&signature=…`: a WeChat user's image, voice or video, for the Vonage
 * clients that got the link in an inbound event's `media_url`.
 *
 *   signed link (403 forged or expired, 404 malformed) → disk cache → else WeChat media/get
 *   (access token, once per file: concurrent requests share one download) → the file, streamed
 *
 * Not an open proxy: only links the bridge signed are served (media/links.ts), and only WeChat's
 * answer for that media_id. A JSON error from WeChat is an error (40007 → 404; WeChat down → 503),
 * never a file. Only image, audio and video content types are served inline; anything else is sent
 * as an `application/octet-stream` attachment, and `nosniff` keeps browsers from guessing.
 */
import express, { type Request, type Response, type Router } from 'express';
import { PermanentError, RetryableError } from '../errors';
import type { Logger } from '../logger';
import { MediaTooLargeError, type CachedMedia, type MediaFileCache } from '../bridge/media/cache';
import { MEDIA_ROUTE_PATH, verifyMediaLink } from '../bridge/media/links';
import { WeChatApiError } from '../wechat/transport';
import type { WeChatMediaClient } from '../wechat/media';

export interface MediaRouteDeps {
  /** The HMAC key of the links (mediaLinkKey). */
  linkKey: Buffer;
  cache: Pick<MediaFileCache, 'get' | 'put' | 'maxFileBytes'>;
  weChatMedia: Pick<WeChatMediaClient, 'getMedia'>;
  logger: Logger;
  now: () => number;
  /** Where the links are served (media/links.ts `mediaRoutePathOf`); default `/media`. */
  routePath?: string;
}

const SERVABLE = /^(image|audio|video)\/[\w.+-]+$/i;

export function mediaRouter(deps: MediaRouteDeps): Router {
  const router = express.Router();
  const downloads = new Map<string, Promise<CachedMedia>>();

  /** The file from the cache, or fetched from WeChat into it (one download per media_id at a time). */
  function cachedOrFetched(mediaId: string): Promise<CachedMedia> {
    const running = downloads.get(mediaId);
    if (running) return running;
    const started = (async () => {
      const cached = await deps.cache.get(mediaId);
      if (cached) return cached;
      const file = await deps.weChatMedia.getMedia(mediaId);
      if (file.contentLength !== undefined && file.contentLength > deps.cache.maxFileBytes) {
        file.body.destroy();
        throw new MediaTooLargeError(deps.cache.maxFileBytes);
      }
      return deps.cache.put(mediaId, { contentType: file.contentType, filename: file.filename }, file.body);
    })().finally(() => downloads.delete(mediaId));
    downloads.set(mediaId, started);
    return started;
  }

  router.get(`${deps.routePath ?? MEDIA_ROUTE_PATH}/:mediaId`, async (req: Request, res: Response) => {
    const mediaId = String(req.params['mediaId']);
    const check = verifyMediaLink(deps.linkKey, { mediaId, expires: req.query['expires'], signature: req.query['signature'] }, deps.now());
    if (!check.ok) {
      deps.logger.info({ reason: check.reason }, 'media link refused');
      if (check.reason === 'malformed') res.status(404).type('text/plain').send('not found');
      else res.status(403).type('text/plain').send(check.reason === 'expired' ? 'link expired' : 'invalid link');
      return;
    }

    let media: CachedMedia;
    try {
      media = await cachedOrFetched(mediaId);
    } catch (error) {
      answerFailure(res, error, deps.logger);
      return;
    }

    const servable = SERVABLE.test(media.contentType);
    const filename = media.filename ?? 'media';
    res.setHeader('Content-Type', servable ? media.contentType : 'application/octet-stream');
    res.setHeader('Content-Disposition', `${servable ? 'inline' : 'attachment'}; filename="${filename}"`);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    // The link is the credential: any origin holding it may read the file (web agent desks).
    res.setHeader('Access-Control-Allow-Origin', '*');
    const maxAge = Math.max(0, Math.floor((Math.min(check.expiresAtMs, media.expiresAt) - deps.now()) / 1000));
    res.setHeader('Cache-Control', `private, max-age=${maxAge}`);
    res.sendFile(media.path, { cacheControl: false, dotfiles: 'allow' }, (error?: Error) => {
      if (!error) return;
      deps.logger.warn({ err: error }, 'could not send a cached media file');
      if (!res.headersSent) res.status(404).type('text/plain').send('not found');
    });
  });

  return router;
}

function answerFailure(res: Response, error: unknown, logger: Logger): void {
  if (error instanceof WeChatApiError && error.errcode === 40007) {
    res.status(404).type('text/plain').send('media not found: WeChat keeps media for 3 days');
    return;
  }
  if (error instanceof MediaTooLargeError) {
    logger.warn({ limit: error.limit }, 'media from WeChat too large to serve');
    res.status(502).type('text/plain').send('media too large');
    return;
  }
  if (error instanceof RetryableError) {
    logger.warn({ reason: error.message }, 'could not fetch media from WeChat now');
    res.status(503).setHeader('Retry-After', '5').type('text/plain').send('try again');
    return;
  }
  logger.error({ reason: error instanceof Error ? error.message : String(error), code: error instanceof PermanentError ? error.code : undefined }, 'could not fetch media from WeChat');
  res.status(502).type('text/plain').send('media unavailable');
}
