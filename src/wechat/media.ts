/**
 * WeChat's temporary media API: `GET /cgi-bin/media/get` (a user's image, voice or video, 3 days
 * after they sent it) and `POST /cgi-bin/media/upload` (a file for a customer-service message), with
 * the shared access token and the same rule as every other call: a token WeChat rejects (40001,
 * 40014, 42001) is refetched once and the request repeated once.
 *
 * media/get answers errors as JSON with HTTP 200 (`{"errcode":40007,…}`), and answers videos as
 * JSON too (`{"video_url":…}`, a plain download link). So the body is only ever treated as a file
 * when its Content-Type is not JSON or text; a JSON answer is read and becomes an error, or is
 * followed to the video. An error never becomes a file.
 *
 * Both calls are safe to repeat (a download changes nothing; a repeated upload only makes another
 * media_id), so every failure without an answer is a RetryableError. Nothing here logs or throws
 * the access token: URLs are never part of an error.
 */
import { Readable } from 'node:stream';
import { PermanentError, RetryableError } from '../errors';
import {
  apiBaseOf,
  checkHttpStatus,
  networkErrorCode,
  parseWeChatAnswer,
  readErrcode,
  readErrmsg,
  retryLaterError,
  tokenRejection,
  WeChatApiError,
  withAccessToken,
  type AccessTokenSource,
  type TokenAttempt,
} from './transport';

export type MediaUploadType = 'image' | 'voice' | 'video' | 'thumb';

/** A file WeChat is sending us; the caller must consume or destroy `body`. */
export interface MediaDownload {
  /** As WeChat declared it (`image/jpeg`, `audio/amr`, `video/mp4`, …); `application/octet-stream` if absent. */
  contentType: string;
  /** From Content-Disposition, when WeChat named the file. */
  filename: string | undefined;
  /** Content-Length, when declared. */
  contentLength: number | undefined;
  body: Readable;
}

export interface WeChatMediaClient {
  /** media/get. 40007 (unknown or expired media_id) is a WeChatApiError with errcode 40007. */
  getMedia(mediaId: string): Promise<MediaDownload>;
  /** media/upload; resolves with WeChat's media_id and its creation time (epoch ms). */
  uploadMedia(input: { type: MediaUploadType; bytes: Buffer; contentType: string; filename: string }): Promise<{ mediaId: string; createdAtMs: number }>;
}

export interface WeChatMediaClientOptions {
  /** e.g. https://api.weixin.qq.com */
  baseUrl: string;
  tokens: AccessTokenSource;
  /** Whole-exchange budget for one download or upload, body included. Default 60 s. */
  timeoutMs?: number;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  now?: () => number;
}

/** A JSON (or text) answer of at most this size is read as an answer, never as a file. */
const MAX_ANSWER_BYTES = 64 * 1024;
const JSON_LIKE = /^(application\/(json|javascript)|text\/)/i;

export function createWeChatMediaClient(options: WeChatMediaClientOptions): WeChatMediaClient {
  const baseUrl = apiBaseOf(options.baseUrl);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const fetchImpl = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const { tokens } = options;

  /** Runs `attempt` with the token; on a rejected token, once more with a fresh one. */
  function withToken<T>(what: string, attempt: (token: string) => Promise<TokenAttempt<T>>): Promise<T> {
    return withAccessToken(tokens, attempt, {
      giveUp: (rejection) =>
        new RetryableError(`WeChat ${what}: access token rejected again after one refetch (${rejection.errcode} ${rejection.errmsg})`.trimEnd()),
    });
  }

  /** fetch with one deadline over the whole exchange; the timer ends with the body. */
  async function request(what: string, url: string, init: RequestInit = {}): Promise<{ response: Response; done: () => void }> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const done = () => clearTimeout(timer);
    try {
      const response = await fetchImpl(url, { ...init, signal: controller.signal, redirect: 'manual' });
      return { response, done };
    } catch (error) {
      done();
      const reason = controller.signal.aborted ? `timed out after ${timeoutMs} ms` : `failed (${networkErrorCode(error)})`;
      throw new RetryableError(`WeChat ${what} ${reason}`);
    }
  }

  /** HTTP-level outcome of a WeChat API answer: throws for anything but 2xx. */
  function checkStatus(what: string, response: Response): void {
    checkHttpStatus(response.status, response.headers.get('retry-after') ?? undefined, `WeChat ${what} answered`);
  }

  /** A JSON answer's errcode as our error (token rejection is the caller's business). */
  function answerError(what: string, answer: Record<string, unknown>): TokenAttempt<never> | undefined {
    const errcode = readErrcode(answer);
    if (errcode === 0) return undefined;
    const errmsg = readErrmsg(answer);
    const rejected = tokenRejection(errcode, errmsg);
    if (rejected) return rejected;
    throw retryLaterError(errcode, errmsg, `WeChat ${what}`) ?? new WeChatApiError(errcode, errmsg, { context: `WeChat ${what}` });
  }

  async function download(what: string, url: string): Promise<TokenAttempt<MediaDownload | Record<string, unknown>>> {
    const { response, done } = await request(what, url);
    try {
      checkStatus(what, response);
    } catch (error) {
      done();
      await response.body?.cancel().catch(() => undefined);
      throw error;
    }
    const contentType = (response.headers.get('content-type') ?? '').trim();
    if (contentType === '' || JSON_LIKE.test(contentType)) {
      const text = await readSmallText(response, MAX_ANSWER_BYTES).finally(done);
      const answer = text === undefined ? undefined : parseWeChatAnswer(text);
      if (!answer) throw new PermanentError(`WeChat ${what} answered ${contentType || 'no content type'} that is not a JSON object`, { code: 'media_unreadable' });
      return answerError(what, answer) ?? { kind: 'done', value: answer };
    }
    if (!response.body) {
      done();
      throw new PermanentError(`WeChat ${what} answered without a body`, { code: 'media_unreadable' });
    }
    const body = Readable.fromWeb(response.body);
    body.once('close', done);
    const length = Number(response.headers.get('content-length'));
    return {
      kind: 'done',
      value: {
        contentType,
        filename: filenameOf(response.headers.get('content-disposition')),
        contentLength: Number.isSafeInteger(length) && length >= 0 ? length : undefined,
        body,
      },
    };
  }

  const isDownload = (value: MediaDownload | Record<string, unknown>): value is MediaDownload => value.body instanceof Readable;

  return {
    async getMedia(mediaId) {
      const answer = await withToken('media/get', (token) =>
        download('media/get', `${baseUrl}/cgi-bin/media/get?${new URLSearchParams({ access_token: token, media_id: mediaId })}`),
      );
      if (isDownload(answer)) return answer;
      // Videos: a link to the file instead of the file. It needs no token (it is WeChat's CDN).
      const videoUrl = answer['video_url'];
      if (typeof videoUrl === 'string' && /^https?:\/\//i.test(videoUrl)) {
        const video = await download('media/get video_url', videoUrl);
        if (video.kind === 'done' && isDownload(video.value)) return video.value;
        throw new PermanentError('WeChat media/get video_url answered JSON instead of the video', { code: 'media_unreadable' });
      }
      throw new PermanentError('WeChat media/get answered JSON without a file, an errcode or a video_url', { code: 'media_unreadable' });
    },

    async uploadMedia(input) {
      return withToken('media/upload', async (token) => {
        const form = new FormData();
        form.append('media', new Blob([new Uint8Array(input.bytes)], { type: input.contentType }), input.filename);
        const url = `${baseUrl}/cgi-bin/media/upload?${new URLSearchParams({ access_token: token, type: input.type })}`;
        const { response, done } = await request('media/upload', url, { method: 'POST', body: form });
        let text: string | undefined;
        try {
          checkStatus('media/upload', response);
          text = await readSmallText(response, MAX_ANSWER_BYTES);
        } finally {
          done();
        }
        const answer = text === undefined ? undefined : parseWeChatAnswer(text);
        if (!answer) throw new RetryableError('WeChat media/upload answered something that is not a JSON object');
        const refused = answerError('media/upload', answer);
        if (refused) return refused;
        const mediaId = answer['media_id'];
        if (typeof mediaId !== 'string' || mediaId === '') throw new PermanentError('WeChat media/upload answered without a media_id', { code: 'media_unreadable' });
        const createdAt = Number(answer['created_at']);
        return { kind: 'done', value: { mediaId, createdAtMs: Number.isFinite(createdAt) && createdAt > 0 ? createdAt * 1000 : now() } };
      });
    },
  };
}

/** The body as text if it is at most `limit` bytes, else undefined (and the rest is discarded). */
async function readSmallText(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `attachment; filename="x.jpg"` → `x.jpg` (only a plain, safe name; anything odd is dropped). */
export function filenameOf(disposition: string | null): string | undefined {
  const match = /filename="?([^";\r\n]+)"?/i.exec(disposition ?? '');
  const name = match?.[1]?.trim();
  return name && /^[\w.() -]{1,120}$/.test(name) ? name : undefined;
}
