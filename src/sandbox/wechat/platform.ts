/**
 * An emulator of the WeChat platform for one Official Account: a real HTTP server on loopback that
 * serves the WeChat API the bridge calls (routes.ts), and simulated users who follow the account and
 * write to it, pushed to the account's server URL exactly as WeChat pushes them (dispatch.ts), over
 * one in-memory model of the account (state.ts). This module assembles the three and is the
 * emulator's public face: `startWeChatPlatform` and what it returns.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTrafficRecorder, type TrafficRecorder } from '../traffic';
import { createPushDispatch, type PushResult } from './dispatch';
import { subscribePopupXml, type UserAction } from './messages';
import type { EmulatedTemplate } from './notifications';
import { WECHAT_ANSWER_TIMEOUT_MS, type PushMode } from './push';
import { createApiRoutes, pictureUrl } from './routes';
import {
  PlatformState,
  type AccountType,
  type PlatformStateOptions,
  type ChatItem,
  type InjectedResponse,
  type MediaInfo,
  type PlatformChange,
  type SentRequest,
  type ServerConfig,
  type SimulatedUser,
} from './state';

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

export interface WeChatPlatformOptions extends PlatformStateOptions {
  /** Shared with other emulators to see all traffic in one place; default a recorder of its own. */
  traffic?: TrafficRecorder;
  /** Who made an API request, for the traffic log; default `server` (the account's server). */
  callerOf?: (req: http.IncomingMessage) => string;
  /** How long WeChat waits for the server's answer before pushing again; default 5000 ms. */
  answerTimeoutMs?: number;
}

export async function startWeChatPlatform(options: WeChatPlatformOptions): Promise<WeChatPlatform> {
  const state = new PlatformState(options);
  const traffic = options.traffic ?? createTrafficRecorder();
  const closing = new AbortController();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, run: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timers.add(timer);
  };
  const push = createPushDispatch({
    state,
    traffic,
    answerTimeoutMs: options.answerTimeoutMs ?? WECHAT_ANSWER_TIMEOUT_MS,
    signal: closing.signal,
  });
  const server = http.createServer(createApiRoutes({ state, traffic, callerOf: options.callerOf ?? (() => 'server'), push, later }));

  /** A user message: it opens the 48-hour window whatever the server answers (WeChat got it). */
  async function userMessage(openid: string, action: UserAction, chat: Omit<ChatItem, 'id' | 'at' | 'from'>): Promise<PushResult> {
    const user = state.requireUser(openid);
    if (!user.following) throw new Error(`${user.nickname} does not follow the account: follow first`);
    if (!state.server) throw new Error('WeChat platform: no server configured; call connect({url, token}) first');
    state.openWindow(user, 'message');
    state.emit({ type: 'user', user: state.publicUser(user) });
    const item = state.addChat(user, { from: 'user', ...chat, delivery: { state: 'sending', attempts: 0 } });
    return push(user, action, item);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;

  const platform: WeChatPlatform = {
    baseUrl,
    accountId: state.accountId,
    traffic,
    get tokenFetches() {
      return state.tokenFetches;
    },
    get issuedTokens() {
      return state.issuedTokens;
    },
    sent: state.sent,
    notifications: state.notifications,
    templates() {
      return state.templates.map((template) => ({ ...template, keywords: [...template.keywords] }));
    },
    requests: state.requests,
    tokenRequests: state.tokenRequests,
    inject(path, responses) {
      state.injected.set(path, [...(state.injected.get(path) ?? []), ...responses]);
    },
    clearInjected() {
      state.injected.clear();
    },
    expireTokens() {
      state.expireTokens();
    },
    waitForSends(n, timeoutMs = 2_000) {
      return state.waitForSends(n, timeoutMs);
    },

    connect(target) {
      state.connect(target);
    },
    setPushMode(mode) {
      state.setPushMode(mode);
    },
    get pushMode() {
      return state.server ? (state.server.mode ?? 'plain') : undefined;
    },
    setAccountType(type) {
      state.accountType = type;
    },
    get accountType() {
      return state.accountType;
    },
    async addUser(input = {}) {
      const user = state.addUser(input);
      if (input.follow !== false) await platform.follow(user.openid);
      return state.publicUser(user);
    },
    users() {
      return state.allUsers().map((user) => state.publicUser(user));
    },
    user(openid) {
      const user = state.user(openid);
      return user ? state.publicUser(user) : undefined;
    },
    chat(openid) {
      return [...(state.user(openid)?.chat ?? [])];
    },
    async follow(openid) {
      const user = state.requireUser(openid);
      if (user.following) return undefined;
      user.following = true;
      state.openWindow(user, 'follow');
      state.emit({ type: 'user', user: state.publicUser(user) });
      const item = state.addChat(user, { from: 'user', kind: 'event', text: 'followed the account' });
      if (!state.server) return undefined;
      item.delivery = { state: 'sending', attempts: 0 };
      return push(user, { kind: 'follow' }, item);
    },
    async unfollow(openid) {
      const user = state.requireUser(openid);
      if (!user.following) return undefined;
      user.following = false;
      user.grants = [];
      state.setTyping(user, false);
      state.emit({ type: 'user', user: state.publicUser(user) });
      const item = state.addChat(user, { from: 'user', kind: 'event', text: 'unfollowed the account' });
      if (!state.server) return undefined;
      item.delivery = { state: 'sending', attempts: 0 };
      return push(user, { kind: 'unfollow' }, item);
    },
    sendText(openid, content) {
      return userMessage(openid, { kind: 'text', content }, { kind: 'text', text: content });
    },
    sendImage(openid, image) {
      const media = state.storeMedia({ type: 'image', bytes: image.bytes, contentType: image.contentType, filename: image.filename });
      return userMessage(
        openid,
        { kind: 'image', picUrl: pictureUrl(baseUrl, media.mediaId), mediaId: media.mediaId },
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
      const user = state.requireUser(openid);
      const templates = state.templates;
      if (!templates.some((t) => t.templateId === templateId && t.kind === 'subscribe')) throw new Error(`no subscription template ${templateId}`);
      if (accepted) user.subscriptions.set(templateId, (user.subscriptions.get(templateId) ?? 0) + 1);
      else user.subscriptions.delete(templateId);
      const item = state.addChat(user, { from: 'user', kind: 'event', text: `${accepted ? 'allowed' : 'refused'} notifications: ${templates.find((t) => t.templateId === templateId)?.title ?? templateId}` });
      if (!state.server) return undefined;
      item.delivery = { state: 'sending', attempts: 0 };
      const xml = subscribePopupXml({ toUserName: state.accountId, fromUserName: openid, createTime: Math.floor(state.realNow() / 1000), templateId, accepted });
      return push(user, { kind: 'xml', xml }, item);
    },
    setRefusesTemplates(openid, refuses) {
      state.requireUser(openid).refusesTemplates = refuses;
    },
    pushXml(xml) {
      return push(undefined, { kind: 'xml', xml });
    },
    advanceClock(ms) {
      state.advanceClock(ms);
    },
    get clockOffsetMs() {
      return state.clockOffsetMs;
    },
    storeMedia(input) {
      return state.storeMedia(input);
    },
    media(mediaId) {
      return state.liveMedia(mediaId);
    },
    onChange(listener) {
      return state.onChange(listener);
    },
    async close() {
      closing.abort();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      state.close();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
  return platform;
}
