/**
 * The WeChat API the platform emulator serves (`baseUrl` stands in for https://api.weixin.qq.com),
 * with WeChat's checks and error codes, over the platform's model (state.ts):
 *
 * - `POST /cgi-bin/stable_token`: checks grant_type/appid/secret (40002, 41002, 40013, 41004, 40125)
 *   and in normal mode returns the SAME token while it is valid, with the remaining `expires_in`.
 *   Like WeChat it rotates the token shortly before expiry (5 min of the real 7200 s; scaled down for
 *   short TTLs) and keeps the old one valid until it expires. `force_refresh: true` always issues one.
 * - `POST /cgi-bin/message/custom/send` and `/custom/typing`: `access_token` (41001 missing, 40001
 *   unknown, 42001 expired), no `\uXXXX` escapes (40033), JSON shape (47001, 40003 touser, 40008
 *   msgtype, 45072 command), then the recipient: an openid that is no simulated user is 40003 (unless
 *   `unknownUsers: 'accept'`), a user who unfollowed or has not written within 48 h is 45015, a sixth
 *   message for one user message is 45047, an unknown or expired `media_id` is 40007.
 * - `POST /cgi-bin/media/upload?type=image|voice|video|thumb` (multipart field `media`) →
 *   `{type, media_id, created_at}`; `GET /cgi-bin/media/get?media_id=` → the bytes (video: JSON
 *   `{video_url}`), `40007` JSON once unknown or older than 3 days.
 * - `POST /cgi-bin/message/template/send` and `/subscribe/bizsend`: template messages and subscription
 *   notifications with WeChat's rules and errors (notifications.ts); each send is followed by
 *   a TEMPLATESENDJOBFINISH or subscribe_msg_sent_event push with its msgid.
 * - `GET /mmbiz/{id}`: the public picture URL (`PicUrl`) of a user's image, like mmbiz.qpic.cn.
 * - An unverified subscription account (`accountType`) has no customer-service API: custom/send and
 *   custom/typing answer 48001.
 *
 * Tests steer failures with the platform's `inject(path, responses)`: the next requests to `path`
 * consume them, one each: `{errcode, errmsg?}` answers that error (errcode 0: handled normally);
 * `{status}` that HTTP status; `{delayMs}` handles the request normally (a send is accepted and
 * recorded) but answers only after the delay, like a slow WeChat that did deliver; `{reset: true}`
 * drops the connection unhandled.
 */
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { TrafficRecorder } from '../traffic';
import type { PushDispatch } from './dispatch';
import { subscribeSentXml, templateJobFinishXml } from './messages';
import { CLIENT_MSG_ID_TTL_MS, renderNotification, templateDataProblem, type NotificationKind } from './notifications';
import type { ChatItem, MediaInfo, PlatformState } from './state';

// Sizes and formats per type: image 10 MB PNG/JPEG/JPG/GIF, voice 2 MB AMR/MP3, video 10 MB MP4,
// thumb 64 KB JPG (https://developers.weixin.qq.com/doc/service/api/material/temporary/api_uploadtempmedia).
const MEDIA_LIMITS: Record<MediaInfo['type'], { maxBytes: number; sizeErrcode: number; accepts: RegExp }> = {
  image: { maxBytes: 10 * 1024 * 1024, sizeErrcode: 40009, accepts: /^(image\/(png|jpe?g|gif)|.*\.(png|jpe?g|gif))$/i },
  voice: { maxBytes: 2 * 1024 * 1024, sizeErrcode: 40010, accepts: /^(audio\/(amr|mpeg|mp3)|.*\.(amr|mp3))$/i },
  video: { maxBytes: 10 * 1024 * 1024, sizeErrcode: 40011, accepts: /^(video\/mp4|.*\.mp4)$/i },
  thumb: { maxBytes: 64 * 1024, sizeErrcode: 40012, accepts: /^(image\/jpe?g|.*\.jpe?g)$/i },
};

const ERRMSG: Record<number, string> = {
  [-1]: 'system error',
  0: 'ok',
  40001: 'invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken',
  40002: 'invalid grant_type',
  40003: 'invalid openid',
  40004: 'invalid media type',
  40005: 'invalid file type',
  40007: 'invalid media_id',
  40008: 'invalid message type',
  40009: 'invalid image size',
  40010: 'invalid voice size',
  40011: 'invalid video size',
  40012: 'invalid thumb size',
  40013: 'invalid appid',
  40014: 'invalid access_token',
  40033: 'invalid charset. please check your request, if include \\uxxxx will create fail!',
  40125: 'invalid appsecret',
  40164: 'invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  41005: 'media data missing',
  42001: 'access_token expired',
  43004: 'require subscribe',
  40037: 'invalid template_id',
  43101: 'user refuse to accept the msg',
  47003: 'argument invalid!',
  45015: 'response out of time limit or subscription is canceled',
  45047: 'out of response count limit',
  45072: 'command invalid',
  48001: 'api unauthorized',
  47001: 'data format error',
};

const SEND_PATH = '/cgi-bin/message/custom/send';
const TYPING_PATH = '/cgi-bin/message/custom/typing';
const STABLE_TOKEN_PATH = '/cgi-bin/stable_token';
const TEMPLATE_SEND_PATH = '/cgi-bin/message/template/send';
const SUBSCRIBE_SEND_PATH = '/cgi-bin/message/subscribe/bizsend';
/** When WeChat pushes a template's result after accepting it (real WeChat: seconds). */
const TEMPLATE_RESULT_DELAY_MS = 50;
const UPLOAD_PATH = '/cgi-bin/media/upload';
const MEDIA_GET_PATH = '/cgi-bin/media/get';
const PICTURE_PREFIX = '/mmbiz/';
const MSG_TYPES = new Set([
  'text', 'image', 'voice', 'video', 'music', 'news', 'mpnews', 'mpnewsarticle', 'msgmenu', 'wxcard', 'miniprogrampage',
]);
/** The msgtypes whose `media_id` must name temporary media of ours. */
const MEDIA_MSG_TYPES = new Set(['image', 'voice', 'video']);
const MAX_REQUEST_BYTES = 12 * 1024 * 1024;

/** The public picture URL (`PicUrl`) of a user's image, served without a token like WeChat's CDN. */
export const pictureUrl = (baseUrl: string, mediaId: string): string => `${baseUrl}${PICTURE_PREFIX}${mediaId}`;

type Answer = { status: number; body: unknown; headers?: Record<string, string>; raw?: Buffer };

export interface ApiRoutesDeps {
  state: PlatformState;
  traffic: TrafficRecorder;
  /** Who made an API request, for the traffic log. */
  callerOf: (req: http.IncomingMessage) => string;
  /** Pushes to the account's server (the results of template sends). */
  push: PushDispatch;
  /** Runs `run` after `ms`, unless the platform closes first. */
  later: (ms: number, run: () => void) => void;
}

/** The request listener of the platform's API server. */
export function createApiRoutes(deps: ApiRoutesDeps): http.RequestListener {
  const { state, traffic, callerOf } = deps;

  const error = (errcode: number, errmsg?: string) => ({
    errcode,
    errmsg: `${errmsg ?? ERRMSG[errcode] ?? 'error'} rid: ${randomBytes(6).toString('hex')}`,
  });
  const ok = (body: unknown): Answer => ({ status: 200, body });

  // --- tokens -------------------------------------------------------------------------------------

  function handleStableToken(rawBody: string): Answer {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      return ok(error(47001));
    }
    state.tokenRequests.push(json);
    if (json['grant_type'] !== 'client_credential') return ok(error(40002));
    if (!json['appid']) return ok(error(41002));
    if (json['appid'] !== state.appId) return ok(error(40013));
    if (!json['secret']) return ok(error(41004));
    if (json['secret'] !== state.appSecret) return ok(error(40125));
    const token = state.stableToken(json['force_refresh'] === true);
    return ok({ access_token: token.value, expires_in: token.expiresInSeconds });
  }

  function checkAccessToken(accessToken: string): { errcode: number; errmsg: string } | undefined {
    const problem = state.accessTokenProblem(accessToken);
    return problem === undefined ? undefined : error(problem);
  }

  // --- custom/send and typing ----------------------------------------------------------------------

  /** The checks every message API makes first: the access token, raw UTF-8 (40033), a JSON object (47001). */
  function readApiRequest(rawBody: string, accessToken: string): { json: Record<string, unknown> } | { refused: Answer } {
    const tokenError = checkAccessToken(accessToken);
    if (tokenError) return { refused: ok(tokenError) };
    if (state.accountType === 'unverified-subscription') return { refused: ok(error(48001)) };
    if (/\\u[0-9a-fA-F]{4}/.test(rawBody)) return { refused: ok(error(40033)) };
    try {
      const parsed: unknown = JSON.parse(rawBody);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      return { json: parsed as Record<string, unknown> };
    } catch {
      return { refused: ok(error(47001)) };
    }
  }

  function handleSend(path: string, rawBody: string, accessToken: string): Answer {
    const request = readApiRequest(rawBody, accessToken);
    if ('refused' in request) return request.refused;
    const { json } = request;
    const touser = json['touser'];
    if (typeof touser !== 'string' || touser === '') return ok(error(40003));
    const typing = path === TYPING_PATH;
    const msgtype = json['msgtype'];
    if (typing) {
      if (json['command'] !== 'Typing' && json['command'] !== 'CancelTyping') return ok(error(45072));
    } else if (typeof msgtype !== 'string' || !MSG_TYPES.has(msgtype) || typeof json[msgtype] !== 'object' || json[msgtype] === null) {
      return ok(error(40008));
    }
    const user = state.user(touser);
    if (user && !typing && MEDIA_MSG_TYPES.has(msgtype as string)) {
      const mediaId = (json[msgtype as string] as Record<string, unknown>)['media_id'];
      if (typeof mediaId !== 'string' || !state.liveMedia(mediaId)) return ok(error(40007));
    }
    const refused = state.recipientProblem(touser, !typing);
    if (refused !== undefined) return ok(error(refused));

    state.recordSend({ path, rawBody, json, accessToken });
    if (user) {
      if (typing) state.setTyping(user, json['command'] === 'Typing');
      else {
        state.setTyping(user, false);
        state.addChat(user, { from: 'account', msgType: msgtype as string, ...renderSent(msgtype as string, json) });
      }
    }
    return ok({ errcode: 0, errmsg: 'ok' });
  }

  // --- template messages and subscription notifications ----------------------------------------------

  function handleNotification(kind: NotificationKind, rawBody: string, accessToken: string): Answer {
    const request = readApiRequest(rawBody, accessToken);
    if ('refused' in request) return request.refused;
    const { json } = request;
    const touser = json['touser'];
    if (typeof touser !== 'string' || touser === '') return ok(error(40003));
    const user = state.user(touser);
    if (!user && !state.acceptUnknownUsers) return ok(error(40003));
    if (user && !user.following) return ok(error(43004));
    const template = state.templates.find((t) => t.templateId === json['template_id'] && t.kind === kind);
    if (!template) return ok(error(40037));
    const dataProblem = templateDataProblem(template, json['data']);
    if (dataProblem) return ok(error(47003, dataProblem));

    const clientMsgId = kind === 'template' && typeof json['client_msg_id'] === 'string' ? json['client_msg_id'] : undefined;
    const dedupKey = clientMsgId !== undefined ? `${touser}\n${clientMsgId}` : undefined;
    const earlier = dedupKey !== undefined ? state.clientMsgIds.get(dedupKey) : undefined;
    if (earlier && state.clock() - earlier.at < CLIENT_MSG_ID_TTL_MS) return sentAnswer(earlier.msgId);

    if (kind === 'subscribe' && user) {
      const allowed = user.subscriptions.get(template.templateId) ?? 0;
      if (allowed <= 0) return ok(error(43101));
      user.subscriptions.set(template.templateId, allowed - 1);
    }
    const msgId = state.newMsgId();
    if (dedupKey !== undefined) state.clientMsgIds.set(dedupKey, { msgId, at: state.clock() });
    state.notifications.push({ path: kind === 'template' ? TEMPLATE_SEND_PATH : SUBSCRIBE_SEND_PATH, rawBody, json, accessToken, msgId });
    const blocked = kind === 'template' && user?.refusesTemplates === true;
    if (user && !blocked) {
      state.addChat(user, { from: 'account', kind: 'other', msgType: kind, text: renderNotification(template, json['data'] as Record<string, { value?: unknown }>) });
    }
    if (state.server) {
      // WeChat reports the result of each send afterwards: TEMPLATESENDJOBFINISH, subscribe_msg_sent_event.
      deps.later(TEMPLATE_RESULT_DELAY_MS, () => {
        const envelope = { toUserName: state.accountId, fromUserName: touser, createTime: Math.floor(state.realNow() / 1000), msgId };
        const xml =
          kind === 'template'
            ? templateJobFinishXml({ ...envelope, status: blocked ? 'failed:user block' : 'success' })
            : subscribeSentXml({ ...envelope, templateId: template.templateId });
        deps.push(undefined, { kind: 'xml', xml }).catch(() => undefined);
      });
    }
    return sentAnswer(msgId);
  }

  /** msgid is a JSON number in WeChat's answers, above 2^53: written into the text, never through a JS number. */
  const sentAnswer = (msgId: string): Answer => ({ status: 200, body: `{"errcode":0,"errmsg":"ok","msgid":${msgId}}` });

  // --- media ------------------------------------------------------------------------------------------

  async function handleUpload(req: http.IncomingMessage, raw: Buffer, url: URL): Promise<Answer & { summary?: string }> {
    const tokenError = checkAccessToken(url.searchParams.get('access_token') ?? '');
    if (tokenError) return ok(tokenError);
    const type = url.searchParams.get('type') ?? '';
    if (!(type in MEDIA_LIMITS)) return ok(error(40004));
    const limits = MEDIA_LIMITS[type as MediaInfo['type']];
    let file: File | undefined;
    try {
      const form = await new Request('http://upload.invalid/', {
        method: 'POST',
        headers: { 'content-type': req.headers['content-type'] ?? '' },
        body: raw,
      }).formData();
      const media = form.get('media');
      if (media !== null && typeof media !== 'string') file = media;
    } catch {
      return ok(error(41005));
    }
    if (!file) return ok(error(41005));
    const summary = `multipart/form-data: media=${file.name || '(no name)'} (${file.type || 'no type'}, ${file.size} bytes)`;
    if (!limits.accepts.test(file.type) && !limits.accepts.test(file.name)) return { ...ok(error(40005)), summary };
    if (file.size > limits.maxBytes) return { ...ok(error(limits.sizeErrcode)), summary };
    const contentType = file.type || (/\.png$/i.test(file.name) ? 'image/png' : 'application/octet-stream');
    const stored = state.storeMedia({ type: type as MediaInfo['type'], bytes: Buffer.from(await file.arrayBuffer()), contentType, filename: file.name || undefined });
    return { ...ok({ type, media_id: stored.mediaId, created_at: Math.floor(stored.createdAt / 1000) }), summary };
  }

  function handleMediaGet(url: URL, origin: string): Answer {
    const tokenError = checkAccessToken(url.searchParams.get('access_token') ?? '');
    if (tokenError) return ok(tokenError);
    const media = state.liveMedia(url.searchParams.get('media_id') ?? '');
    if (!media) return ok(error(40007));
    if (media.type === 'video') return ok({ video_url: pictureUrl(origin, media.mediaId) });
    return fileAnswer(media, true);
  }

  // --- HTTP -------------------------------------------------------------------------------------------

  async function route(req: http.IncomingMessage, url: URL, raw: Buffer): Promise<(Answer & { summary?: string }) | undefined> {
    const path = url.pathname;
    const rawBody = raw.toString('utf8');
    const accessToken = url.searchParams.get('access_token') ?? '';
    if (req.method === 'POST' && path === STABLE_TOKEN_PATH) return handleStableToken(rawBody);
    if (req.method === 'POST' && (path === SEND_PATH || path === TYPING_PATH)) return handleSend(path, rawBody, accessToken);
    if (req.method === 'POST' && path === UPLOAD_PATH) return handleUpload(req, raw, url);
    if (req.method === 'POST' && path === TEMPLATE_SEND_PATH) return handleNotification('template', rawBody, accessToken);
    if (req.method === 'POST' && path === SUBSCRIBE_SEND_PATH) return handleNotification('subscribe', rawBody, accessToken);
    if (req.method === 'GET' && path === MEDIA_GET_PATH) return handleMediaGet(url, `http://${req.headers.host ?? '127.0.0.1'}`);
    return undefined;
  }

  return (req, res) => {
    const started = state.realNow();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://wechat.invalid');
        const path = url.pathname;
        const method = req.method ?? 'GET';
        const raw = Buffer.concat(chunks);
        const rawBody = raw.toString('utf8');
        const multipart = /^multipart\//i.test(req.headers['content-type'] ?? '');
        const bodyForLog = multipart ? `(${req.headers['content-type']?.split(';')[0]}, ${raw.length} bytes)` : rawBody;

        // The public picture URL: no token, no traffic entry (it is a CDN, not the API).
        if (method === 'GET' && path.startsWith(PICTURE_PREFIX)) {
          const media = state.liveMedia(decodeURIComponent(path.slice(PICTURE_PREFIX.length)));
          if (media) send(res, fileAnswer(media, false));
          else send(res, { status: 404, body: { errcode: 404, errmsg: 'not found' } });
          return;
        }

        const record = (status: number | undefined, responseBody: string | undefined, extra: { error?: string; requestBody?: string } = {}) =>
          traffic.record({
            at: started,
            channel: 'wechat-api',
            caller: callerOf(req),
            method,
            path: `${path}${url.search}`,
            requestBody: extra.requestBody ?? (method === 'POST' ? bodyForLog : undefined),
            ...(status !== undefined ? { status } : {}),
            ...(responseBody !== undefined ? { responseBody } : {}),
            ...(extra.error !== undefined ? { error: extra.error } : {}),
            durationMs: state.realNow() - started,
          });

        if (size > MAX_REQUEST_BYTES) {
          record(413, send(res, { status: 413, body: { errcode: 413, errmsg: 'request too large' } }), { requestBody: `(${size} bytes)` });
          return;
        }
        if (method === 'POST' && path === STABLE_TOKEN_PATH) state.tokenFetches += 1;
        else if (method === 'POST' && (path === SEND_PATH || path === TYPING_PATH)) state.requests.push({ path, rawBody, accessToken: url.searchParams.get('access_token') ?? '' });

        const next = state.injected.get(path)?.shift();
        if (next && 'reset' in next) {
          record(undefined, undefined, { error: 'connection reset (injected)' });
          req.socket.destroy();
          return;
        }
        if (next && 'status' in next) {
          res.writeHead(next.status, { 'Content-Type': 'text/plain' });
          const text = http.STATUS_CODES[next.status] ?? 'error';
          res.end(text);
          record(next.status, text);
          return;
        }
        if (next && 'errcode' in next && next.errcode !== 0) {
          record(200, send(res, ok(error(next.errcode, next.errmsg))));
          return;
        }
        const answer = await route(req, url, raw);
        if (!answer) {
          record(404, send(res, { status: 404, body: { errcode: 404, errmsg: 'not found' } }));
          return;
        }
        const requestBody = answer.summary;
        if (next && 'delayMs' in next) {
          deps.later(next.delayMs, () => {
            record(answer.status, send(res, answer), requestBody !== undefined ? { requestBody } : {});
          });
          return;
        }
        record(answer.status, send(res, answer), requestBody !== undefined ? { requestBody } : {});
      })().catch(() => {
        if (!res.headersSent) send(res, { status: 500, body: { errcode: -1, errmsg: 'system error' } });
        else res.destroy();
      });
    });
  };
}

function fileAnswer(media: MediaInfo, attachment: boolean): Answer {
  const headers: Record<string, string> = { 'Content-Type': media.contentType, 'Cache-Control': 'no-cache, must-revalidate' };
  if (attachment) headers['Content-disposition'] = `attachment; filename="${media.filename.replace(/["\r\n]/g, '')}"`;
  return { status: 200, body: undefined, headers, raw: media.bytes };
}

function send(res: http.ServerResponse, answer: Answer): string {
  if (res.destroyed) return '';
  if (answer.raw) {
    res.writeHead(answer.status, { ...answer.headers, 'Content-Length': String(answer.raw.length) });
    res.end(answer.raw);
    return `(${answer.raw.length} bytes of ${answer.headers?.['Content-Type'] ?? 'data'})`;
  }
  const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'Content-Type': 'application/json; encoding=utf-8', ...answer.headers });
  res.end(text);
  return text;
}

/** What the user's phone shows for a customer-service message. */
function renderSent(msgtype: string, json: Record<string, unknown>): Pick<ChatItem, 'kind' | 'text' | 'mediaId'> {
  const inner = (json[msgtype] ?? {}) as Record<string, unknown>;
  const str = (value: unknown) => (typeof value === 'string' ? value : '');
  switch (msgtype) {
    case 'text':
      return { kind: 'text', text: str(inner['content']) };
    case 'image':
      return { kind: 'image', text: '[image]', mediaId: str(inner['media_id']) };
    case 'news': {
      const articles = Array.isArray(inner['articles']) ? (inner['articles'] as Array<Record<string, unknown>>) : [];
      return { kind: 'other', text: `[news] ${articles.map((a) => str(a['title'])).join(' / ')}` };
    }
    case 'msgmenu':
      return { kind: 'other', text: `[menu] ${str(inner['head_content'])}` };
    default:
      return { kind: 'other', text: `[${msgtype}]` };
  }
}
