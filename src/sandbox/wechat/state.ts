/**
 * The WeChat platform emulator's model of one Official Account, in memory: the access tokens it
 * issued, its simulated users (following or not, their reply windows, their chats), its temporary
 * media and templates, and what the API recorded for tests. No HTTP and no pushes here: the API
 * routes (routes.ts) and the pushes to the account's server (dispatch.ts) read and change it, and
 * every change the console shows is emitted to the listeners.
 *
 * Time: the rules (48-hour window, token and media expiry) run on the platform's clock, `now()` plus
 * whatever `advanceClock` added, so a test or the console can "wait 49 hours" at once. Pushes keep
 * the real time: the bridge checks their timestamp against its own clock.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { Listeners } from '../listeners';
import { aesKeyOf } from './crypto';
import { DEFAULT_TEMPLATES, type EmulatedTemplate } from './notifications';
import type { PushMode } from './push';

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
 * answer 48001 `api unauthorized` (docs/emulator-limits.md names the reports of it), and the answer
 * to a push is its only way to reply.
 */
export type AccountType = 'verified' | 'unverified-subscription';

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

// --- WeChat's numbers ---------------------------------------------------------------------------

/**
 * A user message opens 48 hours for 5 customer-service messages, a follow 1 minute for 3
 * ("在一段时间内（目前为48小时）"; quotas in the customer-service send doc,
 * https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage).
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
const NICKNAMES = ['Li Wei', 'Wang Fang', 'Zhang Min', 'Chen Jing', 'Liu Yang', 'Huang Lei', 'Zhao Xin', 'Wu Tao'];

interface IssuedToken {
  value: string;
  expiresAt: number;
  revoked: boolean;
}

/** An open window: until when, and how many messages it still allows. */
interface Grant {
  until: number;
  remaining: number;
}

export interface UserState {
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

export interface PlatformStateOptions {
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
  /** Default `verified`. */
  accountType?: AccountType;
  /** The account's templates; default DEFAULT_TEMPLATES. */
  templates?: readonly EmulatedTemplate[];
}

export class PlatformState {
  readonly appId: string;
  readonly appSecret: string;
  /** The account's original id (`gh_…`), the `ToUserName` of every push. */
  readonly accountId: string;
  readonly realNow: () => number;
  readonly acceptUnknownUsers: boolean;
  readonly templates: EmulatedTemplate[];
  accountType: AccountType;
  /** The account's server configuration (服务器配置), once connected. */
  server: ServerConfig | undefined;
  /** The decoded EncodingAESKey of `server`. */
  aesKey: Buffer | undefined;

  // What the API saw, for tests.
  /** stable_token requests received (any outcome). */
  tokenFetches = 0;
  /** Tokens issued so far, oldest first. */
  readonly issuedTokens: string[] = [];
  /** custom/send and custom/typing calls accepted (in arrival order). */
  readonly sent: SentRequest[] = [];
  /** Every custom/send and custom/typing request received, accepted or not. */
  readonly requests: Array<{ path: string; rawBody: string; accessToken: string }> = [];
  /** Every stable_token request body received (parsed). */
  readonly tokenRequests: unknown[] = [];
  /** template/send and subscribe/bizsend calls accepted (in arrival order), with the msgid given. */
  readonly notifications: Array<SentRequest & { msgId: string }> = [];
  /** What tests injected, per path: the next requests to the path consume them, one each. */
  readonly injected = new Map<string, InjectedResponse[]>();
  /** `${openid}\n${client_msg_id}` → the msgid given and when (client_msg_id is honoured 10 minutes). */
  readonly clientMsgIds = new Map<string, { msgId: string; at: number }>();

  private readonly ttlMs: number;
  private readonly rotateBeforeMs: number;
  private offsetMs = 0;
  private readonly tokens = new Map<string, IssuedToken>();
  private current: IssuedToken | undefined;
  private readonly users = new Map<string, UserState>();
  private readonly mediaStore = new Map<string, MediaInfo>();
  private readonly listeners = new Listeners<PlatformChange>();
  private readonly sendWaiters: Array<() => void> = [];
  private lastMsgId = BigInt(24_000_000_000_000_000) + BigInt(randomInt(0, 1_000_000)) * 1_000_000n;
  private nextChatId = 1;

  constructor(options: PlatformStateOptions) {
    this.appId = options.appId;
    this.appSecret = options.appSecret;
    this.accountId = options.accountId ?? `gh_${randomBytes(6).toString('hex')}`;
    this.realNow = options.now ?? Date.now;
    this.acceptUnknownUsers = options.unknownUsers === 'accept';
    this.templates = [...(options.templates ?? DEFAULT_TEMPLATES)];
    this.accountType = options.accountType ?? 'verified';
    this.ttlMs = (options.tokenTtlSeconds ?? 7200) * 1000;
    // WeChat rotates 5 min before expiry of a 2 h token; keep the same proportion for short TTLs.
    this.rotateBeforeMs = Math.min(300_000, this.ttlMs / 24);
  }

  // --- the clock ------------------------------------------------------------------------------------

  /** Platform time, epoch ms. */
  clock(): number {
    return this.realNow() + this.offsetMs;
  }

  get clockOffsetMs(): number {
    return this.offsetMs;
  }

  advanceClock(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError('the clock only moves forward');
    this.offsetMs += ms;
    this.emit({ type: 'clock', offsetMs: this.offsetMs });
    for (const user of this.users.values()) this.emit({ type: 'user', user: this.publicUser(user) });
  }

  // --- tokens ---------------------------------------------------------------------------------------

  /** What stable_token hands out: the current token while it is good, else (or when forced) a new one. */
  stableToken(forceRefresh: boolean): { value: string; expiresInSeconds: number } {
    const current = this.current;
    const stillGood = current && !current.revoked && current.expiresAt - this.clock() > this.rotateBeforeMs;
    const token = forceRefresh || !stillGood ? this.issueToken() : current;
    return { value: token.value, expiresInSeconds: Math.floor((token.expiresAt - this.clock()) / 1000) };
  }

  /** The current tokens now answer 42001; the next stable_token call issues a new one. */
  expireTokens(): void {
    for (const token of this.tokens.values()) token.revoked = true;
  }

  /** The errcode for an API call with this access token, or undefined when the token is good. */
  accessTokenProblem(accessToken: string): number | undefined {
    if (!accessToken) return 41001;
    const token = this.tokens.get(accessToken);
    if (!token) return 40001;
    if (token.revoked || token.expiresAt <= this.clock()) return 42001;
    return undefined;
  }

  private issueToken(): IssuedToken {
    const token: IssuedToken = {
      value: `${this.issuedTokens.length + 90}_${randomBytes(60).toString('base64url')}`,
      expiresAt: this.clock() + this.ttlMs,
      revoked: false,
    };
    this.tokens.set(token.value, token);
    this.issuedTokens.push(token.value);
    this.current = token;
    return token;
  }

  // --- users and their windows ----------------------------------------------------------------------

  /** A new user who does not follow the account yet. */
  addUser(input: { nickname?: string; openid?: string }): UserState {
    const openid = input.openid ?? `o${randomBytes(21).toString('base64url').slice(0, 27)}`;
    if (this.users.has(openid)) throw new Error(`user ${openid} exists already`);
    const nickname = input.nickname?.trim() || NICKNAMES[this.users.size % NICKNAMES.length]!;
    const user: UserState = { openid, nickname, following: false, grants: [], chat: [], refusesTemplates: false, subscriptions: new Map() };
    this.users.set(openid, user);
    this.emit({ type: 'user', user: this.publicUser(user) });
    return user;
  }

  user(openid: string): UserState | undefined {
    return this.users.get(openid);
  }

  allUsers(): UserState[] {
    return [...this.users.values()];
  }

  requireUser(openid: string): UserState {
    const user = this.users.get(openid);
    if (!user) throw new Error(`no simulated user ${openid}`);
    return user;
  }

  /** A user message opens 48 hours for 5 messages, a follow 1 minute for 3. */
  openWindow(user: UserState, opener: 'message' | 'follow'): void {
    this.liveGrants(user).push(
      opener === 'message'
        ? { until: this.clock() + MESSAGE_WINDOW_MS, remaining: MESSAGE_WINDOW_SENDS }
        : { until: this.clock() + FOLLOW_WINDOW_MS, remaining: FOLLOW_WINDOW_SENDS },
    );
  }

  publicUser(user: UserState): SimulatedUser {
    const grants = this.liveGrants(user);
    const withSends = grants.filter((g) => g.remaining > 0);
    return {
      openid: user.openid,
      nickname: user.nickname,
      following: user.following,
      windowClosesAt: grants.length > 0 ? Math.max(...grants.map((g) => g.until)) : undefined,
      sendsLeft: withSends.reduce((sum, g) => sum + g.remaining, 0),
    };
  }

  /** WeChat's errcode for messaging this openid now, or undefined when it may be messaged. */
  recipientProblem(openid: string, consume: boolean): number | undefined {
    const user = this.users.get(openid);
    if (!user) return this.acceptUnknownUsers ? undefined : 40003;
    if (!user.following) return 45015;
    const grants = this.liveGrants(user);
    if (grants.length === 0) return 45015;
    // Spend the grant that runs out first.
    const usable = grants.filter((g) => g.remaining > 0).sort((a, b) => a.until - b.until)[0];
    if (!usable) return 45047;
    if (consume) {
      usable.remaining -= 1;
      this.emit({ type: 'user', user: this.publicUser(user) });
    }
    return undefined;
  }

  private liveGrants(user: UserState): Grant[] {
    user.grants = user.grants.filter((g) => g.until > this.clock());
    return user.grants;
  }

  // --- chats ----------------------------------------------------------------------------------------

  addChat(user: UserState, item: Omit<ChatItem, 'id' | 'at'>): ChatItem {
    const full: ChatItem = { id: String(this.nextChatId++), at: this.realNow(), ...item };
    user.chat.push(full);
    this.emit({ type: 'chat', openid: user.openid, item: full });
    return full;
  }

  /** Announces a chat item changed in place (its delivery). */
  updateChat(user: UserState, item: ChatItem): void {
    this.emit({ type: 'chat', openid: user.openid, item });
  }

  setTyping(user: UserState, typing: boolean): void {
    clearTimeout(user.typingTimer);
    user.typingTimer = undefined;
    if (typing) {
      user.typingTimer = setTimeout(() => this.setTyping(user, false), TYPING_MS);
      user.typingTimer.unref();
    }
    this.emit({ type: 'typing', openid: user.openid, typing });
  }

  /** The next MsgId (messages and notifications share one sequence, as 64-bit integers). */
  newMsgId(): string {
    this.lastMsgId += 1n;
    return this.lastMsgId.toString();
  }

  // --- media ----------------------------------------------------------------------------------------

  /** The media, unless unknown or older than 3 days (platform time). */
  liveMedia(mediaId: string): MediaInfo | undefined {
    const media = this.mediaStore.get(mediaId);
    if (!media) return undefined;
    if (this.clock() - media.createdAt >= MEDIA_TTL_MS) return undefined;
    return media;
  }

  storeMedia(input: { type: MediaInfo['type']; bytes: Buffer; contentType: string; filename?: string | undefined }): MediaInfo {
    const mediaId = randomBytes(48).toString('base64url');
    const extension = /\/(\w+)$/.exec(input.contentType)?.[1]?.replace('jpeg', 'jpg') ?? 'bin';
    const media: MediaInfo = {
      mediaId,
      type: input.type,
      contentType: input.contentType,
      filename: input.filename ?? `${mediaId.slice(0, 12)}.${extension}`,
      bytes: input.bytes,
      createdAt: this.clock(),
    };
    this.mediaStore.set(mediaId, media);
    return media;
  }

  // --- accepted sends -------------------------------------------------------------------------------

  recordSend(request: SentRequest): void {
    this.sent.push(request);
    for (const wake of this.sendWaiters.splice(0)) wake();
  }

  async waitForSends(n: number, timeoutMs: number): Promise<SentRequest[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.sent.length < n) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`WeChat platform: expected ${n} accepted sends, got ${this.sent.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.sendWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.sent.slice(0, n);
  }

  // --- the account's server -------------------------------------------------------------------------

  connect(target: ServerConfig): void {
    if ((target.mode ?? 'plain') !== 'plain' && !target.encodingAesKey) {
      throw new Error(`${target.mode} mode needs the EncodingAESKey`);
    }
    this.aesKey = target.encodingAesKey ? aesKeyOf(target.encodingAesKey) : undefined;
    this.server = { ...target };
  }

  setPushMode(mode: PushMode): void {
    if (!this.server) throw new Error('WeChat platform: no server configured');
    if (mode !== 'plain' && !this.aesKey) throw new Error(`${mode} mode needs the EncodingAESKey`);
    this.server.mode = mode;
  }

  // --- listeners ------------------------------------------------------------------------------------

  /** Returns a function that removes the listener. */
  onChange(listener: (change: PlatformChange) => void): () => void {
    return this.listeners.add(listener);
  }

  emit(change: PlatformChange): void {
    this.listeners.emit(change);
  }

  /** Stops the typing indicators' timers. */
  close(): void {
    for (const user of this.users.values()) clearTimeout(user.typingTimer);
  }
}
