/**
 * An emulator of the WeChat platform for one Official Account: a real HTTP server on loopback that
 * serves the WeChat API the bridge calls, and simulated users who follow the account and write to
 * it, pushed to the account's server URL exactly as WeChat pushes them.
 *
 * The API (`baseUrl` stands in for https://api.weixin.qq.com):
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
 *   custom/typing answer 48001. The answer to a push is read as WeChat reads a passive reply
 *   (passive-reply.ts): a valid one reaches the user's chat, an invalid one shows the error.
 *
 * Time: the rules (48-hour window, token and media expiry) run on the platform's clock, `now()` plus
 * whatever `advanceClock` added, so a test or the console can "wait 49 hours" at once. Pushes keep
 * the real time: the bridge checks their timestamp against its own clock.
 *
 * Tests steer failures with `inject(path, responses)`: the next requests to `path` consume them, one
 * each: `{errcode, errmsg?}` answers that error (errcode 0: handled normally); `{status}` that HTTP
 * status; `{delayMs}` handles the request normally (a send is accepted and recorded) but answers only
 * after the delay, like a slow WeChat that did deliver; `{reset: true}` drops the connection unhandled.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import { createTrafficRecorder, type TrafficRecorder } from '../traffic';
import { actionHasMsgId, subscribePopupXml, subscribeSentXml, templateJobFinishXml, userActionXml, type UserAction } from './messages';
import {
  CLIENT_MSG_ID_TTL_MS,
  DEFAULT_TEMPLATES,
  renderNotification,
  templateDataProblem,
  type EmulatedTemplate,
  type NotificationKind,
} from './notifications';
import { deliverPush, signPush, WECHAT_ANSWER_TIMEOUT_MS, type PushDelivery, type PushMode } from './push';
import { aesKeyOf } from './crypto';
import { PASSIVE_REPLY_ERROR, readPassiveReply, type ReadPassiveReply } from './passive-reply';

export type InjectedResponse = { errcode: number; errmsg?: string } | { status: number } | { delayMs: number } | { reset: true };

export interface SentRequest {
  path: string;
  rawBody: string;
  json: unknown;
  accessToken: string;
}

/** A user who may follow the account. */
export interface SimulatedUser {
  openid: string;
  nickname: string;
  following: boolean;
  /** Platform time (epoch ms) until which the account may message this user, if it may now. */
  windowClosesAt: number | undefined;
  /** Messages the account may still send within the open windows. */
  sendsLeft: number;
}

export type DeliveryState = 'sending' | 'delivered' | 'retrying' | 'failed';

/** One line of a user's chat with the account, as their phone shows it. */
export interface ChatItem {
  id: string;
  /** Epoch ms (real time). */
  at: number;
  /** `user`: what the user did; `account`: what the account sent them. */
  from: 'user' | 'account';
  kind: 'text' | 'image' | 'location' | 'event' | 'other';
  text: string;
  mediaId?: string;
  msgId?: string;
  /** `from: 'account'`: the customer-service msgtype. */
  msgType?: string;
  /** `from: 'user'`: how the push to the account's server went. */
  delivery?: { state: DeliveryState; attempts: number; detail?: string };
}

export type PlatformChange =
  | { type: 'user'; user: SimulatedUser }
  | { type: 'chat'; openid: string; item: ChatItem }
  | { type: 'typing'; openid: string; typing: boolean }
  | { type: 'clock'; offsetMs: number };

/**
 * `verified`: the customer-service API works. `unverified-subscription`: an unverified subscription
 * account (most small accounts), which has no customer-service API: custom/send and custom/typing
 * answer 48001 `api unauthorized` (wechat.md §5: gtoxlili/wechat-chatGPT#5, zhayujie/bot-on-anything#36),
 * and the answer to a push is its only way to reply.
 */
export type AccountType = 'verified' | 'unverified-subscription';

export interface PushResult {
  /** The message's MsgId (events have none). */
  msgId: string | undefined;
  /** The passive reply the account's server answered with, as WeChat read it. */
  reply?: ReadPassiveReply;
  /** Why the answer was refused as a reply (the user saw 该公众号暂时无法提供服务). */
  replyError?: string;
  /** The plaintext XML (before any encryption). */
  xml: string;
  deliveries: PushDelivery[];
  /** Whether some delivery got `200`. */
  acknowledged: boolean;
}

export interface ServerConfig {
  /** The account's server URL (its `/weChatEvent`), as typed into the admin page. */
  url: string;
  /** The Token typed into the admin page. */
  token: string;
  mode?: PushMode;
  /** The 43-character EncodingAESKey; needed for compatible and safe mode. */
  encodingAesKey?: string;
}

export interface MediaInfo {
  mediaId: string;
  type: 'image' | 'voice' | 'video' | 'thumb';
  contentType: string;
  filename: string;
  bytes: Buffer;
  /** Platform time, epoch ms. */
  createdAt: number;
}

export interface WeChatPlatform {
  baseUrl: string;
  /** The account's original id (`gh_…`), the `ToUserName` of every push. */
  accountId: string;
  traffic: TrafficRecorder;

  // --- the API, as the original test fake had it ---------------------------------------------
  /** stable_token requests received (any outcome). */
  readonly tokenFetches: number;
  /** custom/send and custom/typing calls accepted (in arrival order). */
  sent: SentRequest[];
  /** Every custom/send and custom/typing request received, accepted or not. */
  requests: Array<{ path: string; rawBody: string; accessToken: string }>;
  /** Every stable_token request body received (parsed). */
  tokenRequests: unknown[];
  inject(path: string, responses: InjectedResponse[]): void;
  /** Drops the injected responses not consumed yet, on every path. */
  clearInjected(): void;
  /** The current tokens now answer 42001; the next stable_token call issues a new one. */
  expireTokens(): void;
  /** Tokens issued so far, oldest first. */
  readonly issuedTokens: string[];
  waitForSends(n: number, timeoutMs?: number): Promise<SentRequest[]>;
  /** template/send and subscribe/bizsend calls accepted (in arrival order), with the msgid given. */
  notifications: Array<SentRequest & { msgId: string }>;
  /** The account's templates and subscription templates. */
  templates(): EmulatedTemplate[];

  // --- users and pushes ------------------------------------------------------------------------
  /** Sets the account's server configuration (服务器配置): where and how messages are pushed. */
  connect(server: ServerConfig): void;
  setPushMode(mode: PushMode): void;
  readonly pushMode: PushMode | undefined;
  setAccountType(type: AccountType): void;
  readonly accountType: AccountType;
  /** A new user; by default they follow the account at once (a `subscribe` push when connected). */
  addUser(input?: { nickname?: string; openid?: string; follow?: boolean }): Promise<SimulatedUser>;
  users(): SimulatedUser[];
  user(openid: string): SimulatedUser | undefined;
  chat(openid: string): ChatItem[];
  follow(openid: string): Promise<PushResult | undefined>;
  unfollow(openid: string): Promise<PushResult | undefined>;
  sendText(openid: string, content: string): Promise<PushResult>;
  sendImage(openid: string, image: { bytes: Buffer; contentType: string; filename?: string }): Promise<PushResult>;
  sendLocation(openid: string, location: { latitude: number; longitude: number; scale?: number; label?: string }): Promise<PushResult>;
  /** The user answers a subscription popup: accepting allows one notification of that template. */
  answerSubscription(openid: string, templateId: string, accepted: boolean): Promise<PushResult | undefined>;
  /** The user refuses (or again accepts) the account's template messages: results then say `failed:user block`. */
  setRefusesTemplates(openid: string, refuses: boolean): void;
  /** Pushes any XML as WeChat would (for testing your own server with messages the helpers lack). */
  pushXml(xml: string): Promise<PushResult>;
  /** Moves the platform's clock forward (48-hour window, token and media expiry). */
  advanceClock(ms: number): void;
  readonly clockOffsetMs: number;
  /** Stores media as `media/upload` does, without HTTP (returns what upload would). */
  storeMedia(input: { type: MediaInfo['type']; bytes: Buffer; contentType: string; filename?: string }): MediaInfo;
  media(mediaId: string): MediaInfo | undefined;
  /** Returns a function that removes the listener. */
  onChange(listener: (change: PlatformChange) => void): () => void;
  close(): Promise<void>;
}

export interface WeChatPlatformOptions {
  appId: string;
  appSecret: string;
  /** Default `gh_` + 12 hex digits. */
  accountId?: string;
  tokenTtlSeconds?: number;
  /** Real clock, epoch ms; default `Date.now`. */
  now?: () => number;
  /**
   * `reject` (default): only simulated users can be messaged (others: 40003), with WeChat's rules.
   * `accept`: any openid is treated as a follower who just wrote (the unit tests' fake WeChat API).
   */
  unknownUsers?: 'accept' | 'reject';
  /** Shared with other emulators to see all traffic in one place; default a recorder of its own. */
  traffic?: TrafficRecorder;
  /** Who made an API request, for the traffic log; default `server` (the account's server). */
  callerOf?: (req: http.IncomingMessage) => string;
  /** How long WeChat waits for the server's answer before pushing again; default 5000 ms. */
  answerTimeoutMs?: number;
  /** Default `verified`. */
  accountType?: AccountType;
  /** The account's templates; default DEFAULT_TEMPLATES. */
  templates?: readonly EmulatedTemplate[];
}

// --- WeChat's numbers ---------------------------------------------------------------------------

/**
 * A user message opens 48 hours for 5 customer-service messages, a follow 1 minute for 3
 * ("在一段时间内（目前为48小时）"; quotas in the customer-service send doc,
 * https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage; wechat.md §5).
 */
export const MESSAGE_WINDOW_MS = 48 * 60 * 60 * 1000;
export const MESSAGE_WINDOW_SENDS = 5;
/** Following opens 1 minute for 3 messages (the same doc). */
export const FOLLOW_WINDOW_MS = 60 * 1000;
export const FOLLOW_WINDOW_SENDS = 3;
/** Temporary media live 3 days (https://developers.weixin.qq.com/doc/service/api/material/temporary/api_uploadtempmedia). */
export const MEDIA_TTL_MS = 3 * 24 * 60 * 60 * 1000;
/** A typing indicator lasts 15 s (https://developers.weixin.qq.com/doc/service/api/customer/message/api_typing). */
const TYPING_MS = 15_000;

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
const NICKNAMES = ['Li Wei', 'Wang Fang', 'Zhang Min', 'Chen Jing', 'Liu Yang', 'Huang Lei', 'Zhao Xin', 'Wu Tao'];

interface IssuedToken {
  value: string;
  expiresAt: number;
  revoked: boolean;
}

interface Grant {
  until: number;
  remaining: number;
}

interface UserState {
  openid: string;
  nickname: string;
  following: boolean;
  grants: Grant[];
  chat: ChatItem[];
  /** Template results then say `failed:user block`. */
  refusesTemplates: boolean;
  /** Subscription template id → notifications the user's acceptances still allow. */
  subscriptions: Map<string, number>;
  typingTimer?: NodeJS.Timeout;
}

type Answer = { status: number; body: unknown; headers?: Record<string, string>; raw?: Buffer };

export async function startWeChatPlatform(options: WeChatPlatformOptions): Promise<WeChatPlatform> {
  const ttlMs = (options.tokenTtlSeconds ?? 7200) * 1000;
  // WeChat rotates 5 min before expiry of a 2 h token; keep the same proportion for short TTLs.
  const rotateBeforeMs = Math.min(300_000, ttlMs / 24);
  const realNow = options.now ?? Date.now;
  let clockOffsetMs = 0;
  const clock = () => realNow() + clockOffsetMs;
  const acceptUnknownUsers = options.unknownUsers === 'accept';
  const traffic = options.traffic ?? createTrafficRecorder();
  const callerOf = options.callerOf ?? (() => 'server');
  const accountId = options.accountId ?? `gh_${randomBytes(6).toString('hex')}`;

  const tokens = new Map<string, IssuedToken>();
  const issuedTokens: string[] = [];
  let current: IssuedToken | undefined;
  let tokenFetches = 0;
  const sent: SentRequest[] = [];
  const requests: WeChatPlatform['requests'] = [];
  const tokenRequests: unknown[] = [];
  const injected = new Map<string, InjectedResponse[]>();
  const sendWaiters: Array<() => void> = [];
  const timers = new Set<NodeJS.Timeout>();
  const users = new Map<string, UserState>();
  const mediaStore = new Map<string, MediaInfo>();
  const listeners = new Set<(change: PlatformChange) => void>();
  const closing = new AbortController();
  let server_: ServerConfig | undefined;
  let accountType: AccountType = options.accountType ?? 'verified';
  let aesKey: Buffer | undefined;
  let nextMsgId = BigInt(24_000_000_000_000_000) + BigInt(randomInt(0, 1_000_000)) * 1_000_000n;
  let nextChatId = 1;
  const templates = [...(options.templates ?? DEFAULT_TEMPLATES)];
  const notifications: WeChatPlatform['notifications'] = [];
  /** `${openid}\n${client_msg_id}` → the msgid given and when (client_msg_id is honoured 10 minutes). */
  const clientMsgIds = new Map<string, { msgId: string; at: number }>();

  // --- tokens -------------------------------------------------------------------------------------

  function issueToken(): IssuedToken {
    const token: IssuedToken = {
      value: `${issuedTokens.length + 90}_${randomBytes(60).toString('base64url')}`,
      expiresAt: clock() + ttlMs,
      revoked: false,
    };
    tokens.set(token.value, token);
    issuedTokens.push(token.value);
    current = token;
    return token;
  }

  const error = (errcode: number, errmsg?: string) => ({
    errcode,
    errmsg: `${errmsg ?? ERRMSG[errcode] ?? 'error'} rid: ${randomBytes(6).toString('hex')}`,
  });
  const ok = (body: unknown): Answer => ({ status: 200, body });

  function handleStableToken(rawBody: string): Answer {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      return ok(error(47001));
    }
    tokenRequests.push(json);
    if (json['grant_type'] !== 'client_credential') return ok(error(40002));
    if (!json['appid']) return ok(error(41002));
    if (json['appid'] !== options.appId) return ok(error(40013));
    if (!json['secret']) return ok(error(41004));
    if (json['secret'] !== options.appSecret) return ok(error(40125));
    const stillGood = current && !current.revoked && current.expiresAt - clock() > rotateBeforeMs;
    const token = json['force_refresh'] === true || !stillGood ? issueToken() : current!;
    return ok({ access_token: token.value, expires_in: Math.floor((token.expiresAt - clock()) / 1000) });
  }

  function checkAccessToken(accessToken: string): { errcode: number; errmsg: string } | undefined {
    if (!accessToken) return error(41001);
    const token = tokens.get(accessToken);
    if (!token) return error(40001);
    if (token.revoked || token.expiresAt <= clock()) return error(42001);
    return undefined;
  }

  // --- users and their windows ----------------------------------------------------------------------

  function liveGrants(user: UserState): Grant[] {
    user.grants = user.grants.filter((g) => g.until > clock());
    return user.grants;
  }

  function publicUser(user: UserState): SimulatedUser {
    const grants = liveGrants(user);
    const withSends = grants.filter((g) => g.remaining > 0);
    return {
      openid: user.openid,
      nickname: user.nickname,
      following: user.following,
      windowClosesAt: grants.length > 0 ? Math.max(...grants.map((g) => g.until)) : undefined,
      sendsLeft: withSends.reduce((sum, g) => sum + g.remaining, 0),
    };
  }

  function emit(change: PlatformChange): void {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  function addChat(user: UserState, item: Omit<ChatItem, 'id' | 'at'>): ChatItem {
    const full: ChatItem = { id: String(nextChatId++), at: realNow(), ...item };
    user.chat.push(full);
    emit({ type: 'chat', openid: user.openid, item: full });
    return full;
  }

  function updateChat(user: UserState, item: ChatItem): void {
    emit({ type: 'chat', openid: user.openid, item });
  }

  /** WeChat's verdict on messaging this openid now, or undefined when it may be messaged. */
  function recipientProblem(openid: string, consume: boolean): { errcode: number } | undefined {
    const user = users.get(openid);
    if (!user) return acceptUnknownUsers ? undefined : error(40003);
    if (!user.following) return error(45015);
    const grants = liveGrants(user);
    if (grants.length === 0) return error(45015);
    // Spend the grant that runs out first.
    const usable = grants.filter((g) => g.remaining > 0).sort((a, b) => a.until - b.until)[0];
    if (!usable) return error(45047);
    if (consume) {
      usable.remaining -= 1;
      emit({ type: 'user', user: publicUser(user) });
    }
    return undefined;
  }

  function requireUser(openid: string): UserState {
    const user = users.get(openid);
    if (!user) throw new Error(`no simulated user ${openid}`);
    return user;
  }

  // --- custom/send and typing ----------------------------------------------------------------------

  /** The checks every message API makes first: the access token, raw UTF-8 (40033), a JSON object (47001). */
  function readApiRequest(rawBody: string, accessToken: string): { json: Record<string, unknown> } | { refused: Answer } {
    const tokenError = checkAccessToken(accessToken);
    if (tokenError) return { refused: ok(tokenError) };
    if (accountType === 'unverified-subscription') return { refused: ok(error(48001)) };
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
    const user = users.get(touser);
    if (user && !typing && MEDIA_MSG_TYPES.has(msgtype as string)) {
      const mediaId = (json[msgtype as string] as Record<string, unknown>)['media_id'];
      if (typeof mediaId !== 'string' || !liveMedia(mediaId)) return ok(error(40007));
    }
    const refused = recipientProblem(touser, !typing);
    if (refused) return ok(refused);

    sent.push({ path, rawBody, json, accessToken });
    for (const wake of sendWaiters.splice(0)) wake();
    if (user) {
      if (typing) setTyping(user, json['command'] === 'Typing');
      else {
        setTyping(user, false);
        addChat(user, { from: 'account', msgType: msgtype as string, ...renderSent(msgtype as string, json) });
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
    const user = users.get(touser);
    if (!user && !acceptUnknownUsers) return ok(error(40003));
    if (user && !user.following) return ok(error(43004));
    const template = templates.find((t) => t.templateId === json['template_id'] && t.kind === kind);
    if (!template) return ok(error(40037));
    const dataProblem = templateDataProblem(template, json['data']);
    if (dataProblem) return ok(error(47003, dataProblem));

    const clientMsgId = kind === 'template' && typeof json['client_msg_id'] === 'string' ? json['client_msg_id'] : undefined;
    const dedupKey = clientMsgId !== undefined ? `${touser}\n${clientMsgId}` : undefined;
    const earlier = dedupKey !== undefined ? clientMsgIds.get(dedupKey) : undefined;
    if (earlier && clock() - earlier.at < CLIENT_MSG_ID_TTL_MS) return sentAnswer(earlier.msgId);

    if (kind === 'subscribe' && user) {
      const allowed = user.subscriptions.get(template.templateId) ?? 0;
      if (allowed <= 0) return ok(error(43101));
      user.subscriptions.set(template.templateId, allowed - 1);
    }
    nextMsgId += 1n;
    const msgId = nextMsgId.toString();
    if (dedupKey !== undefined) clientMsgIds.set(dedupKey, { msgId, at: clock() });
    notifications.push({ path: kind === 'template' ? TEMPLATE_SEND_PATH : SUBSCRIBE_SEND_PATH, rawBody, json, accessToken, msgId });
    const blocked = kind === 'template' && user?.refusesTemplates === true;
    if (user && !blocked) {
      addChat(user, { from: 'account', kind: 'other', msgType: kind, text: renderNotification(template, json['data'] as Record<string, { value?: unknown }>) });
    }
    if (server_) {
      // WeChat reports the result of each send afterwards: TEMPLATESENDJOBFINISH, subscribe_msg_sent_event.
      const timer = setTimeout(() => {
        timers.delete(timer);
        const envelope = { toUserName: accountId, fromUserName: touser, createTime: Math.floor(realNow() / 1000), msgId };
        const xml =
          kind === 'template'
            ? templateJobFinishXml({ ...envelope, status: blocked ? 'failed:user block' : 'success' })
            : subscribeSentXml({ ...envelope, templateId: template.templateId });
        push(undefined, { kind: 'xml', xml }).catch(() => undefined);
      }, TEMPLATE_RESULT_DELAY_MS);
      timers.add(timer);
    }
    return sentAnswer(msgId);
  }

  /** msgid is a JSON number in WeChat's answers, above 2^53: written into the text, never through a JS number. */
  const sentAnswer = (msgId: string): Answer => ({ status: 200, body: `{"errcode":0,"errmsg":"ok","msgid":${msgId}}` });

  function setTyping(user: UserState, typing: boolean): void {
    clearTimeout(user.typingTimer);
    user.typingTimer = undefined;
    if (typing) {
      user.typingTimer = setTimeout(() => setTyping(user, false), TYPING_MS);
      user.typingTimer.unref();
    }
    emit({ type: 'typing', openid: user.openid, typing });
  }

  // --- media ------------------------------------------------------------------------------------------

  function liveMedia(mediaId: string): MediaInfo | undefined {
    const media = mediaStore.get(mediaId);
    if (!media) return undefined;
    if (clock() - media.createdAt >= MEDIA_TTL_MS) return undefined;
    return media;
  }

  function storeMedia(input: { type: MediaInfo['type']; bytes: Buffer; contentType: string; filename?: string }): MediaInfo {
    const mediaId = randomBytes(48).toString('base64url');
    const extension = /\/(\w+)$/.exec(input.contentType)?.[1]?.replace('jpeg', 'jpg') ?? 'bin';
    const media: MediaInfo = {
      mediaId,
      type: input.type,
      contentType: input.contentType,
      filename: input.filename ?? `${mediaId.slice(0, 12)}.${extension}`,
      bytes: input.bytes,
      createdAt: clock(),
    };
    mediaStore.set(mediaId, media);
    return media;
  }

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
    const stored = storeMedia({ type: type as MediaInfo['type'], bytes: Buffer.from(await file.arrayBuffer()), contentType, filename: file.name || undefined });
    return { ...ok({ type, media_id: stored.mediaId, created_at: Math.floor(stored.createdAt / 1000) }), summary };
  }

  function handleMediaGet(url: URL, origin: string): Answer {
    const tokenError = checkAccessToken(url.searchParams.get('access_token') ?? '');
    if (tokenError) return ok(tokenError);
    const media = liveMedia(url.searchParams.get('media_id') ?? '');
    if (!media) return ok(error(40007));
    if (media.type === 'video') return ok({ video_url: `${origin}${PICTURE_PREFIX}${media.mediaId}` });
    return fileAnswer(media, true);
  }

  function fileAnswer(media: MediaInfo, attachment: boolean): Answer {
    const headers: Record<string, string> = { 'Content-Type': media.contentType, 'Cache-Control': 'no-cache, must-revalidate' };
    if (attachment) headers['Content-disposition'] = `attachment; filename="${media.filename.replace(/["\r\n]/g, '')}"`;
    return { status: 200, body: undefined, headers, raw: media.bytes };
  }

  // --- HTTP -------------------------------------------------------------------------------------------

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

  const server = http.createServer((req, res) => {
    const started = realNow();
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
          const media = liveMedia(decodeURIComponent(path.slice(PICTURE_PREFIX.length)));
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
            durationMs: realNow() - started,
          });

        if (size > MAX_REQUEST_BYTES) {
          record(413, send(res, { status: 413, body: { errcode: 413, errmsg: 'request too large' } }), { requestBody: `(${size} bytes)` });
          return;
        }
        if (method === 'POST' && path === STABLE_TOKEN_PATH) tokenFetches += 1;
        else if (method === 'POST' && (path === SEND_PATH || path === TYPING_PATH)) requests.push({ path, rawBody, accessToken: url.searchParams.get('access_token') ?? '' });

        const next = injected.get(path)?.shift();
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
          const timer = setTimeout(() => {
            timers.delete(timer);
            record(answer.status, send(res, answer), requestBody !== undefined ? { requestBody } : {});
          }, next.delayMs);
          timers.add(timer);
          return;
        }
        record(answer.status, send(res, answer), requestBody !== undefined ? { requestBody } : {});
      })().catch(() => {
        if (!res.headersSent) send(res, { status: 500, body: { errcode: -1, errmsg: 'system error' } });
        else res.destroy();
      });
    });
  });

  // --- pushes -------------------------------------------------------------------------------------

  async function push(user: UserState | undefined, action: UserAction | { kind: 'xml'; xml: string }, item?: ChatItem): Promise<PushResult> {
    const target = server_;
    if (!target) throw new Error('WeChat platform: no server configured; call connect({url, token}) first');
    let msgId: string | undefined;
    let xml: string;
    if (action.kind === 'xml') {
      xml = action.xml;
      msgId = /<MsgId>(?:<!\[CDATA\[)?(\d+)/.exec(xml)?.[1];
    } else {
      if (actionHasMsgId(action)) {
        nextMsgId += 1n;
        msgId = nextMsgId.toString();
      }
      xml = userActionXml(action, {
        toUserName: accountId,
        fromUserName: user!.openid,
        createTime: Math.floor(realNow() / 1000),
        ...(msgId !== undefined ? { msgId } : {}),
      });
    }
    if (item && msgId) item.msgId = msgId;
    const mode = target.mode ?? 'plain';
    const signed = signPush(xml, {
      token: target.token,
      mode,
      ...(aesKey ? { aesKey } : {}),
      appId: options.appId,
      timestamp: Math.floor(realNow() / 1000),
    });
    const deliveries = await deliverPush({
      url: target.url,
      push: signed,
      answerTimeoutMs: options.answerTimeoutMs ?? WECHAT_ANSWER_TIMEOUT_MS,
      now: realNow,
      signal: closing.signal,
      onDelivery: (delivery) => {
        traffic.record({
          at: delivery.at,
          channel: 'wechat-push',
          caller: 'WeChat',
          method: 'POST',
          path: `${new URL(target.url).pathname}?${signed.query}`,
          requestBody: signed.body,
          ...(delivery.status !== undefined ? { status: delivery.status } : {}),
          ...(delivery.body !== undefined ? { responseBody: delivery.body } : {}),
          ...(delivery.error !== undefined ? { error: delivery.error } : {}),
          durationMs: delivery.durationMs,
          note: [
            delivery.attempt > 1 ? `retry: delivery ${delivery.attempt} of 3, same MsgId` : undefined,
            mode !== 'plain' ? `${mode} mode; the plaintext inside Encrypt:\n${xml}` : undefined,
          ]
            .filter(Boolean)
            .join('\n') || undefined,
        });
        if (user && item) {
          const acknowledged = delivery.status === 200;
          const last = delivery.attempt >= 3;
          const why = delivery.error ?? `HTTP ${delivery.status ?? '?'}`;
          item.delivery = acknowledged
            ? { state: 'delivered', attempts: delivery.attempt }
            : last
              ? { state: 'failed', attempts: delivery.attempt, detail: `该公众号暂时无法提供服务，请稍后再试 (the account's server: ${why})` }
              : { state: 'retrying', attempts: delivery.attempt, detail: `${why}; WeChat pushes again` };
          updateChat(user, item);
        }
      },
    });
    const answered = deliveries.find((d) => d.status === 200);
    const result: PushResult = { msgId, xml, deliveries, acknowledged: answered !== undefined };
    const openid = user?.openid ?? /<FromUserName>(?:<!\[CDATA\[)?([^<\]]*)/.exec(xml)?.[1] ?? '';
    const verdict = answered
      ? readPassiveReply(answered.body ?? '', { openid, accountId, mode, token: target.token, appId: options.appId, ...(aesKey ? { aesKey } : {}) })
      : ({ kind: 'none' } as const);
    if (verdict.kind === 'reply' && verdict.reply.mediaId !== undefined && verdict.reply.msgType !== 'music' && user && !liveMedia(verdict.reply.mediaId)) {
      result.replyError = `the reply's MediaId is unknown or expired (40007)`;
    } else if (verdict.kind === 'invalid') {
      result.replyError = verdict.reason;
    } else if (verdict.kind === 'reply') {
      result.reply = verdict.reply;
      if (user) {
        setTyping(user, false);
        addChat(user, { from: 'account', msgType: verdict.reply.msgType, kind: verdict.reply.msgType === 'text' ? 'text' : verdict.reply.msgType === 'image' ? 'image' : 'other', text: verdict.reply.text, ...(verdict.reply.mediaId ? { mediaId: verdict.reply.mediaId } : {}) });
      }
    }
    if (result.replyError !== undefined && user && item) {
      item.delivery = { state: 'failed', attempts: answered!.attempt, detail: `${PASSIVE_REPLY_ERROR} (the passive reply: ${result.replyError})` };
      updateChat(user, item);
    }
    return result;
  }

  /** A user message: it opens the 48-hour window whatever the server answers (WeChat got it). */
  async function userMessage(openid: string, action: UserAction, chat: Omit<ChatItem, 'id' | 'at' | 'from'>): Promise<PushResult> {
    const user = requireUser(openid);
    if (!user.following) throw new Error(`${user.nickname} does not follow the account: follow first`);
    if (!server_) throw new Error('WeChat platform: no server configured; call connect({url, token}) first');
    liveGrants(user).push({ until: clock() + MESSAGE_WINDOW_MS, remaining: MESSAGE_WINDOW_SENDS });
    emit({ type: 'user', user: publicUser(user) });
    const item = addChat(user, { from: 'user', ...chat, delivery: { state: 'sending', attempts: 0 } });
    return push(user, action, item);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;

  const platform: WeChatPlatform = {
    baseUrl,
    accountId,
    traffic,
    get tokenFetches() {
      return tokenFetches;
    },
    get issuedTokens() {
      return issuedTokens;
    },
    sent,
    notifications,
    templates() {
      return templates.map((template) => ({ ...template, keywords: [...template.keywords] }));
    },
    requests,
    tokenRequests,
    inject(path, responses) {
      injected.set(path, [...(injected.get(path) ?? []), ...responses]);
    },
    clearInjected() {
      injected.clear();
    },
    expireTokens() {
      for (const token of tokens.values()) token.revoked = true;
    },
    async waitForSends(n, timeoutMs = 2_000) {
      const deadline = Date.now() + timeoutMs;
      while (sent.length < n) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`WeChat platform: expected ${n} accepted sends, got ${sent.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, remaining);
          sendWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return sent.slice(0, n);
    },

    connect(target) {
      if ((target.mode ?? 'plain') !== 'plain' && !target.encodingAesKey) {
        throw new Error(`${target.mode} mode needs the EncodingAESKey`);
      }
      aesKey = target.encodingAesKey ? aesKeyOf(target.encodingAesKey) : undefined;
      server_ = { ...target };
    },
    setPushMode(mode) {
      if (!server_) throw new Error('WeChat platform: no server configured');
      if (mode !== 'plain' && !aesKey) throw new Error(`${mode} mode needs the EncodingAESKey`);
      server_.mode = mode;
    },
    get pushMode() {
      return server_ ? (server_.mode ?? 'plain') : undefined;
    },
    setAccountType(type) {
      accountType = type;
    },
    get accountType() {
      return accountType;
    },
    async addUser(input = {}) {
      const openid = input.openid ?? `o${randomBytes(21).toString('base64url').slice(0, 27)}`;
      if (users.has(openid)) throw new Error(`user ${openid} exists already`);
      const nickname = input.nickname?.trim() || NICKNAMES[users.size % NICKNAMES.length]!;
      const user: UserState = { openid, nickname, following: false, grants: [], chat: [], refusesTemplates: false, subscriptions: new Map() };
      users.set(openid, user);
      emit({ type: 'user', user: publicUser(user) });
      if (input.follow !== false) await platform.follow(openid);
      return publicUser(user);
    },
    users() {
      return [...users.values()].map(publicUser);
    },
    user(openid) {
      const user = users.get(openid);
      return user ? publicUser(user) : undefined;
    },
    chat(openid) {
      return [...(users.get(openid)?.chat ?? [])];
    },
    async follow(openid) {
      const user = requireUser(openid);
      if (user.following) return undefined;
      user.following = true;
      liveGrants(user).push({ until: clock() + FOLLOW_WINDOW_MS, remaining: FOLLOW_WINDOW_SENDS });
      emit({ type: 'user', user: publicUser(user) });
      const item = addChat(user, { from: 'user', kind: 'event', text: 'followed the account' });
      if (!server_) return undefined;
      item.delivery = { state: 'sending', attempts: 0 };
      return push(user, { kind: 'follow' }, item);
    },
    async unfollow(openid) {
      const user = requireUser(openid);
      if (!user.following) return undefined;
      user.following = false;
      user.grants = [];
      setTyping(user, false);
      emit({ type: 'user', user: publicUser(user) });
      const item = addChat(user, { from: 'user', kind: 'event', text: 'unfollowed the account' });
      if (!server_) return undefined;
      item.delivery = { state: 'sending', attempts: 0 };
      return push(user, { kind: 'unfollow' }, item);
    },
    sendText(openid, content) {
      return userMessage(openid, { kind: 'text', content }, { kind: 'text', text: content });
    },
    sendImage(openid, image) {
      const media = storeMedia({ type: 'image', bytes: image.bytes, contentType: image.contentType, filename: image.filename });
      return userMessage(
        openid,
        { kind: 'image', picUrl: `${baseUrl}${PICTURE_PREFIX}${media.mediaId}`, mediaId: media.mediaId },
        { kind: 'image', text: '[image]', mediaId: media.mediaId },
      );
    },
    sendLocation(openid, location) {
      const label = location.label ?? '';
      return userMessage(
        openid,
        { kind: 'location', ...location },
        { kind: 'location', text: `${label ? `${label} ` : ''}(${location.latitude}, ${location.longitude})` },
      );
    },
    async answerSubscription(openid, templateId, accepted) {
      const user = requireUser(openid);
      if (!templates.some((t) => t.templateId === templateId && t.kind === 'subscribe')) throw new Error(`no subscription template ${templateId}`);
      if (accepted) user.subscriptions.set(templateId, (user.subscriptions.get(templateId) ?? 0) + 1);
      else user.subscriptions.delete(templateId);
      const item = addChat(user, { from: 'user', kind: 'event', text: `${accepted ? 'allowed' : 'refused'} notifications: ${templates.find((t) => t.templateId === templateId)?.title ?? templateId}` });
      if (!server_) return undefined;
      item.delivery = { state: 'sending', attempts: 0 };
      const xml = subscribePopupXml({ toUserName: accountId, fromUserName: openid, createTime: Math.floor(realNow() / 1000), templateId, accepted });
      return push(user, { kind: 'xml', xml }, item);
    },
    setRefusesTemplates(openid, refuses) {
      requireUser(openid).refusesTemplates = refuses;
    },
    pushXml(xml) {
      return push(undefined, { kind: 'xml', xml });
    },
    advanceClock(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError('the clock only moves forward');
      clockOffsetMs += ms;
      emit({ type: 'clock', offsetMs: clockOffsetMs });
      for (const user of users.values()) emit({ type: 'user', user: publicUser(user) });
    },
    get clockOffsetMs() {
      return clockOffsetMs;
    },
    storeMedia,
    media(mediaId) {
      return liveMedia(mediaId);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closing.abort();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const user of users.values()) clearTimeout(user.typingTimer);
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
  return platform;
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
