/**
 * The WeChat access token, shared by every request and every instance:
 *
 * - Fetched with `POST /cgi-bin/stable_token` in normal mode. Normal mode returns the *same* token
 *   while it is valid, so several fetchers cannot invalidate each other; `force_refresh` is never
 *   sent (it is limited to 20 a day and would kick every other instance's token).
 * - Cached in the shared store, so all processes on one database use one token.
 * - Refreshed when less than `refreshBeforeMs` (5 min) remains: WeChat rotates the stable token
 *   5 min before expiry and keeps old and new valid meanwhile.
 * - One refresh at a time: concurrent callers in a process share one promise (single-flight), and
 *   across processes a store lock elects the fetcher. The lock is a short lease renewed while the
 *   fetch runs, so a process killed mid-refresh delays the others by at most one lease (2 s). A process that does not get the lock keeps
 *   using the current token if it is still valid, else polls the store for a bounded time and then
 *   fails with a clear RetryableError.
 *
 * The app secret and the token never appear in an error or a log line.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { RetryableError } from '../errors';
import { scrubSecrets } from '../logger';
import { createHttpRequester, type HttpRequester } from '../outbound-http';
import type { StoredToken, TokensAndLocks } from '../store/store';
import {
  apiBaseOf,
  checkHttpStatus,
  DEFAULT_TIMEOUT_MS,
  parseWeChatAnswer,
  postWeChatJson,
  readErrcode,
  readErrmsg,
  retryLaterError,
  serializeWeChatJson,
  WeChatApiError,
  WeChatTransportFailure,
  type AccessTokenSource,
} from './transport';

/** The store's role the token manager uses: the shared token and its refresh lock. */
export type TokenStore = TokensAndLocks;

export interface AccessTokenManagerOptions {
  appId: string;
  appSecret: string;
  /** e.g. https://api.weixin.qq.com */
  baseUrl: string;
  store: TokenStore;
  /** Outbound HTTP; defaults to a requester of its own (the bridge passes the one process-wide requester). */
  http?: HttpRequester;
  /** Budget for one stable_token request. Default 10 s. */
  timeoutMs?: number;
  /** Refresh when less than this remains. Default 300 000 (5 min). */
  refreshBeforeMs?: number;
  /** The clock for token expiry (epoch ms). Default Date.now. */
  now?: () => number;
  /** This instance's name in the store lock. Default host:pid:random. */
  owner?: string;
  logger?: Logger;
  /**
   * The refresh lock's lease, renewed every quarter of it while the fetch runs. Short, so that a
   * lock left by a process that died mid-refresh holds the others up for at most this long. Default 2 s.
   */
  lockTtlMs?: number;
  /** How long a process without the lock waits for another one's refresh. Default: request budget + lock TTL + 2 s. */
  lockWaitMs?: number;
  /** How often it re-reads the store meanwhile. Default 50 ms. */
  lockPollMs?: number;
  /** Called after each token this instance fetched (a metrics hook). */
  onRefresh?: () => void;
}

/** stable_token errcodes that mean "fix the configuration", with what to do. */
const CONFIG_HINTS: ReadonlyMap<number, string> = new Map([
  [40013, 'invalid AppID: check WECHAT_APP_ID'],
  [40125, 'invalid AppSecret: check WECHAT_APP_SECRET (it changes when reset in the admin console)'],
  [40001, 'the AppSecret is wrong or belongs to another account: check WECHAT_APP_SECRET'],
  [
    40164,
    "this server's IP is not allowed: add the server's outbound IP to the allowlist (IP白名单) in the WeChat " +
      'admin console, Settings and Development → Basic configuration (设置与开发 → 基本配置)',
  ],
  [40243, 'the AppSecret is frozen: unfreeze it in the WeChat admin console'],
  [41002, 'AppID missing: set WECHAT_APP_ID'],
  [41004, 'AppSecret missing: set WECHAT_APP_SECRET'],
  [89501, 'calls from this IP await confirmation by an account administrator in the admin console'],
  [89503, 'calls from this IP need confirmation by an account administrator in the admin console'],
  [89506, 'an account administrator refused calls from this IP: add it to the allowlist again in the admin console'],
  [89507, 'an account administrator refused calls from this IP (for one hour): add it to the allowlist in the admin console'],
]);

const CONTEXT = 'WeChat access token request failed';

export class AccessTokenManager implements AccessTokenSource {
  private readonly appId: string;
  private readonly appSecret: string;
  private readonly url: string;
  private readonly store: TokenStore;
  private readonly http: HttpRequester;
  private readonly timeoutMs: number;
  private readonly refreshBeforeMs: number;
  private readonly now: () => number;
  private readonly owner: string;
  private readonly logger: Logger | undefined;
  private readonly onRefresh: (() => void) | undefined;
  private readonly tokenName: string;
  private readonly lockName: string;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly lockPollMs: number;
  /** The refresh under way in this process, shared by every caller (single-flight). */
  private inFlight: Promise<string> | undefined;

  constructor(options: AccessTokenManagerOptions) {
    this.appId = options.appId;
    this.appSecret = options.appSecret;
    this.url = `${apiBaseOf(options.baseUrl)}/cgi-bin/stable_token`;
    this.store = options.store;
    this.http = options.http ?? createHttpRequester();
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.refreshBeforeMs = options.refreshBeforeMs ?? 300_000;
    this.now = options.now ?? Date.now;
    this.onRefresh = options.onRefresh;
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.logger = options.logger;
    this.tokenName = `wechat:access_token:${options.appId}`;
    this.lockName = `${this.tokenName}:refresh`;
    // A short lease renewed while held: a live holder keeps it for the whole fetch, a dead one loses
    // it within one TTL and another process takes over (SQLite also drops it at open).
    this.lockTtlMs = options.lockTtlMs ?? 2_000;
    this.lockWaitMs = options.lockWaitMs ?? this.timeoutMs + this.lockTtlMs + 2_000;
    this.lockPollMs = options.lockPollMs ?? 50;
  }

  /** A valid access token: the shared one, refreshed first when it is near expiry. */
  async getToken(): Promise<string> {
    const current = await this.store.getToken(this.tokenName);
    if (current && this.isFresh(current)) return current.value;
    return this.refreshOnce(undefined);
  }

  /**
   * WeChat refused `staleToken` (40001/40014/42001): returns the token to retry with. When another
   * caller already replaced it, that one; else a refetch in normal mode (never force_refresh).
   */
  async invalidate(staleToken: string): Promise<string> {
    const current = await this.store.getToken(this.tokenName);
    if (current && this.replaces(current, staleToken)) return current.value;
    return this.refreshOnce(staleToken);
  }

  private isFresh(token: StoredToken): boolean {
    return token.expiresAt - this.now() > this.refreshBeforeMs;
  }

  private isUsable(token: StoredToken): boolean {
    return token.expiresAt > this.now();
  }

  /** A stored token good enough for this caller: fresh, or (after a rejection) any other valid one. */
  private replaces(token: StoredToken, staleToken: string | undefined): boolean {
    if (staleToken === undefined) return this.isFresh(token);
    return token.value !== staleToken && this.isUsable(token);
  }

  private refreshOnce(staleToken: string | undefined): Promise<string> {
    if (!this.inFlight) {
      this.inFlight = this.refreshUnderLock(staleToken).finally(() => {
        this.inFlight = undefined;
      });
    }
    return this.inFlight;
  }

  private async refreshUnderLock(staleToken: string | undefined): Promise<string> {
    const attempts = Math.max(1, Math.ceil(this.lockWaitMs / this.lockPollMs));
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      if (await this.store.tryLock(this.lockName, this.owner, this.lockTtlMs)) {
        const renewal = this.keepLockWhileHeld();
        try {
          // Double-check: another process may have refreshed while we were asking for the lock.
          const current = await this.store.getToken(this.tokenName);
          if (current && this.replaces(current, staleToken)) return current.value;
          return await this.fetchAndStore();
        } finally {
          clearInterval(renewal);
          await this.store.unlock(this.lockName, this.owner).catch((error: unknown) => {
            this.logger?.warn({ err: error }, 'could not release the WeChat token lock; it expires by itself');
          });
        }
      }
      // Someone else is refreshing.
      const current = await this.store.getToken(this.tokenName);
      if (current && this.replaces(current, staleToken)) return current.value;
      // Near expiry but still valid, and not the one WeChat refused: keep using it meanwhile.
      if (current && staleToken === undefined && this.isUsable(current)) return current.value;
      await sleep(this.lockPollMs);
    }
    throw new RetryableError(
      `timed out after ${this.lockWaitMs} ms waiting for another process to refresh the WeChat access token ` +
        `(store lock ${this.lockName})`,
    );
  }

  /** Renews the refresh lock every quarter of its TTL (taking a lock one holds extends it). */
  private keepLockWhileHeld(): NodeJS.Timeout {
    const renewal = setInterval(() => {
      this.store.tryLock(this.lockName, this.owner, this.lockTtlMs).catch((error: unknown) => {
        this.logger?.warn({ err: error }, 'could not renew the WeChat token lock');
      });
    }, Math.max(10, Math.floor(this.lockTtlMs / 4)));
    renewal.unref();
    return renewal;
  }

  private async fetchAndStore(): Promise<string> {
    const startedAt = this.now();
    const { accessToken, expiresInSeconds } = await this.fetchStableToken();
    // Expiry counted from before the request: our clock then errs on the early side.
    const token: StoredToken = { value: accessToken, expiresAt: startedAt + expiresInSeconds * 1000 };
    await this.store.putToken(this.tokenName, token);
    this.logger?.info({ appId: this.appId, expiresInSeconds }, 'fetched WeChat access token');
    this.onRefresh?.();
    return accessToken;
  }

  private async fetchStableToken(): Promise<{ accessToken: string; expiresInSeconds: number }> {
    // force_refresh omitted = false: normal mode, the same token while it is valid.
    const json = serializeWeChatJson({ grant_type: 'client_credential', appid: this.appId, secret: this.appSecret });
    let answer;
    try {
      answer = await postWeChatJson(this.http, this.url, json, this.timeoutMs);
    } catch (error) {
      if (!(error instanceof WeChatTransportFailure)) throw error;
      // Fetching a token is idempotent: every transport failure is retryable.
      const reason = error.timedOut ? `timed out after ${this.timeoutMs} ms` : error.code;
      throw new RetryableError(`${CONTEXT}: ${reason}`);
    }

    checkHttpStatus(answer.status, answer.retryAfter, `${CONTEXT}:`);
    const parsed = parseWeChatAnswer(answer.text);
    if (!parsed) throw new RetryableError(`${CONTEXT}: unreadable answer (HTTP ${answer.status})`);

    const errcode = readErrcode(parsed);
    if (errcode !== 0) {
      const errmsg = this.scrub(readErrmsg(parsed));
      const later = retryLaterError(errcode, errmsg, CONTEXT);
      if (later) throw later;
      const hint = CONFIG_HINTS.get(errcode);
      throw new WeChatApiError(errcode, errmsg, hint ? { hint, context: CONTEXT } : { context: CONTEXT });
    }

    const accessToken = parsed['access_token'];
    const expiresIn = Number(parsed['expires_in']);
    if (typeof accessToken !== 'string' || accessToken === '' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new RetryableError(`${CONTEXT}: the answer has no access_token or expires_in`);
    }
    return { accessToken, expiresInSeconds: expiresIn };
  }

  /**
   * Defence in depth: WeChat's errmsg never echoes the secret, but nothing we did not write is
   * trusted. (A real AppSecret is 32 characters; a very short one would only mangle the text.)
   */
  private scrub(text: string): string {
    return scrubSecrets(text, [this.appSecret]);
  }
}
