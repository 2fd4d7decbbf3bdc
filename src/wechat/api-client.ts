/**
 * The WeChat API client: customer-service sends and typing, with the access token from an
 * AccessTokenManager. Also home of the low-level JSON POST that the token manager shares, so
 * both classify network failures the same way.
 *
 * Delivery semantics (why there are three error classes here):
 * - Nothing reached WeChat (connect refused, DNS failure, timeout or error before the request
 *   body was handed to the OS), HTTP 5xx/429, errcode -1: RetryableError, safe to send again.
 * - WeChat refused for good (45015, 45047, 40003, …): WeChatApiError (a PermanentError).
 * - The body went out but no answer came back (timeout while waiting, connection reset, a 2xx
 *   we cannot read): UncertainDeliveryError (a PermanentError, code `uncertain`). WeChat may
 *   already have delivered the message; sending again can duplicate it (binarywang/WxJava#2098).
 *   For customer-service messages we prefer at-most-once: the caller reports
 *   "failed: delivery uncertain" instead of risking a duplicate in the user's chat.
 *   This is strict on purpose: even an ECONNRESET on a reused keep-alive socket after the body
 *   went out is uncertain (the server may have crashed mid-request), so a rare stale-socket race
 *   shows up as an uncertain failure rather than a possible duplicate.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import axios, { type AxiosInstance } from 'axios';
import type { Logger } from 'pino';
import { PermanentError, RetryableError } from '../errors';
import { scrubSecrets } from '../logger';
import { msgIdOf } from './template-message';
import type { AccessTokenManager } from './token-manager';

export const DEFAULT_TIMEOUT_MS = 10_000;

/** errcodes meaning "this access token is not (or no longer) valid": refetch once, retry once. */
export const TOKEN_REJECTED_ERRCODES: ReadonlySet<number> = new Set([40001, 40014, 42001]);

/**
 * errcodes worth retrying later, with how long to wait. -1 is "system busy"; 45011 is the
 * per-minute API frequency limit; 45009 the daily quota (it resets at midnight Beijing time).
 */
const RETRY_LATER_ERRCODES: ReadonlyMap<number, number | undefined> = new Map([
  [-1, undefined],
  [45011, 60_000],
  [45009, 600_000],
]);

/** Human hints for the permanent errcodes people actually hit (reference/wechat.md §5). */
const SEND_HINTS: ReadonlyMap<number, string> = new Map([
  [45015, 'user outside the 48-hour window (or no longer following): they must message the account again first'],
  [45047, 'customer-service message quota for this user used up (5 messages per user message, within 48 hours)'],
  [43004, 'the user does not follow the account'],
  [43019, 'the user has blocked the account'],
  [40003, 'invalid openid: not a follower of this account (openids differ per account)'],
  [48001, 'the account lacks permission for this API (unverified subscription accounts have no customer-service API)'],
  [40200, 'msgmenu is not available to test or unverified accounts'],
  [45008, 'news messages take exactly one article'],
  [40033, 'illegal characters: the request must be raw UTF-8 JSON without \\uXXXX escapes'],
  [40007, 'invalid media_id: temporary media expire after 3 days and belong to one account'],
  [40008, 'invalid message type'],
  [44003, 'empty news message'],
  [44004, 'empty text content'],
  [45002, 'content too long'],
  [45072, 'invalid typing command (Typing or CancelTyping)'],
  [45080, 'no user interaction within the last 30 seconds, typing not allowed'],
  [45081, 'already typing'],
  [40037, 'invalid template_id: the template is not in this account\'s list (or the miniprogram appid is not linked to it)'],
  [47003, 'template data invalid: a key is missing or a value breaks the template\'s rules (length, format)'],
  [43101, 'the user has not accepted (or has refused) this subscription template'],
  [41030, 'invalid page: the mini program page does not exist'],
  [40164, "this server's outbound IP address is not in the account's IP allowlist: add it in the admin console"],
]);

/** A permanent refusal by WeChat, with its errcode. `code` is the errcode as a string. */
export class WeChatApiError extends PermanentError {
  readonly errcode: number;
  readonly errmsg: string;
  constructor(errcode: number, errmsg: string, options: { hint?: string; context?: string } = {}) {
    const head = options.context ? `${options.context}: ` : '';
    const tail = options.hint ? ` — ${options.hint}` : '';
    super(`${head}${errcode} ${errmsg}`.trimEnd() + tail, { code: String(errcode) });
    this.name = 'WeChatApiError';
    this.errcode = errcode;
    this.errmsg = errmsg;
  }
}

/**
 * The request went out and WeChat may have acted on it, but we got no answer. Deliberately a
 * PermanentError: a blind retry risks a duplicate message (see the top of this file).
 */
export class UncertainDeliveryError extends PermanentError {
  constructor(message: string) {
    super(message, { code: 'uncertain' });
    this.name = 'UncertainDeliveryError';
  }
}


/**
 * JSON exactly as WeChat wants it: raw UTF-8, never `\uXXXX` escapes (40033). JSON.stringify
 * already writes non-ASCII raw; it escapes only C0 control characters and lone surrogates, which
 * cannot be written raw in JSON at all. They are invisible and would make WeChat refuse the whole
 * message, so they are dropped (tab, line feed and carriage return are kept; `\b`/`\f` go too).
 */
export function serializeWeChatJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'string' ? stripUnsendable(item) : item));
}

const UNSENDABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function stripUnsendable(text: string): string {
  return text.replace(UNSENDABLE, '');
}

// ---------------------------------------------------------------------------------------------
// Low-level POST shared with the token manager.

/** A raw answer: any HTTP status (the caller classifies it). */
export interface WeChatHttpAnswer {
  status: number;
  retryAfter: string | undefined;
  text: string;
}

/** The request failed without an HTTP answer. */
export class WeChatTransportFailure extends Error {
  constructor(
    /** True once the whole request (headers and body) was handed to the OS: WeChat may have it. */
    readonly requestSent: boolean,
    readonly timedOut: boolean,
    /** A Node/axios error code such as ECONNREFUSED, or `timeout`. Never a URL. */
    readonly code: string,
  ) {
    super(timedOut ? 'timeout' : code);
    this.name = 'WeChatTransportFailure';
  }
}

/**
 * POSTs a JSON text to `url` and answers with the status and body, whatever the status.
 * Throws WeChatTransportFailure when no answer came, telling whether the request had gone out.
 *
 * Why a custom `transport`: axios cannot tell "never connected" from "sent, then no answer",
 * and that difference decides whether a send may be repeated. The transport sees the Node
 * ClientRequest and its `finish` event ("the last of the request was handed to the OS").
 * Why our own timer: one wall-clock budget over connect, send and answer; axios' socket
 * timeout may not fire while TCP connect is pending.
 */
export async function postWeChatJson(
  httpClient: AxiosInstance,
  url: string,
  json: string,
  timeoutMs: number,
): Promise<WeChatHttpAnswer> {
  const progress = { requestSent: false };
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await httpClient.request<string>({
      method: 'POST',
      url,
      data: Buffer.from(json, 'utf8'),
      headers: { 'Content-Type': 'application/json; charset=utf-8', Accept: 'application/json' },
      // The Node http adapter is the one that honours `transport` (phase tracking depends on it).
      adapter: 'http',
      transport: trackingTransport(progress),
      signal: controller.signal,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      validateStatus: () => true,
      maxRedirects: 0,
    });
    const text = typeof response.data === 'string' ? response.data : String(response.data ?? '');
    const retryAfter = response.headers['retry-after'];
    return { status: response.status, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, text };
  } catch (error) {
    // The axios error is not kept as a cause: its `config` holds the URL (token) and body (secret).
    throw new WeChatTransportFailure(progress.requestSent, timedOut, errorCode(error));
  } finally {
    clearTimeout(timer);
  }
}

function trackingTransport(progress: { requestSent: boolean }) {
  return {
    request(options: http.RequestOptions, callback: (res: http.IncomingMessage) => void): http.ClientRequest {
      const module = options.protocol === 'https:' ? https : http;
      const request = module.request(options, callback);
      request.once('finish', () => {
        progress.requestSent = true;
      });
      return request;
    },
  };
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code;
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (cause && typeof cause.code === 'string' && /^[A-Z0-9_]+$/.test(cause.code)) return cause.code;
  }
  return 'network error';
}

/** Parses a WeChat JSON answer; undefined when it is not a JSON object. */
export function parseWeChatAnswer(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** errcode as a number (WeChat sends numbers; tolerate numeric strings); 0 when absent. */
export function readErrcode(answer: Record<string, unknown>): number {
  const raw = answer['errcode'];
  if (raw === undefined || raw === null) return 0;
  const value = typeof raw === 'number' ? raw : Number(raw);
  return Number.isFinite(value) ? value : NaN;
}

export function readErrmsg(answer: Record<string, unknown>): string {
  const raw = answer['errmsg'];
  return scrubSecrets(typeof raw === 'string' ? raw : '');
}

export function parseRetryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** RetryableError for an errcode WeChat asks us to retry later, else undefined. */
export function retryLaterError(errcode: number, errmsg: string, context: string): RetryableError | undefined {
  if (!RETRY_LATER_ERRCODES.has(errcode)) return undefined;
  const retryAfterMs = RETRY_LATER_ERRCODES.get(errcode);
  return new RetryableError(`${context}: ${errcode} ${errmsg}`.trimEnd(), retryAfterMs === undefined ? {} : { retryAfterMs });
}

// ---------------------------------------------------------------------------------------------
// The client.

export interface SendOptions {
  /**
   * Awaited once the access token is in hand, right before the first request leaves: the caller's
   * last chance to record "sending" (or to refuse, by throwing, in which case nothing is sent).
   * Nothing before this point can have reached WeChat, so a failure before it is safe to retry.
   */
  beforeRequest?: () => Promise<void>;
}

export interface WeChatApiClient {
  /** POST /cgi-bin/message/custom/send (body from buildCustomSendBody). */
  sendCustomMessage(body: Record<string, unknown>, options?: SendOptions): Promise<void>;
  /** POST /cgi-bin/message/custom/typing (body from buildTypingBody). */
  sendTyping(body: Record<string, unknown>): Promise<void>;
  /** POST /cgi-bin/message/template/send (body from buildTemplateSendBody); WeChat's msgid. */
  sendTemplateMessage(body: Record<string, unknown>, options?: SendOptions): Promise<{ msgId: string | undefined }>;
  /** POST /cgi-bin/message/subscribe/bizsend (body from buildSubscribeSendBody); WeChat's msgid when it gives one. */
  sendSubscribeMessage(body: Record<string, unknown>, options?: SendOptions): Promise<{ msgId: string | undefined }>;
}

export interface WeChatApiClientOptions {
  /** e.g. https://api.weixin.qq.com (no trailing path). */
  baseUrl: string;
  tokens: Pick<AccessTokenManager, 'getToken' | 'invalidate'>;
  http?: AxiosInstance;
  /** Whole-request budget in ms (connect, send, answer). Default 10 s. */
  timeoutMs?: number;
  logger?: Logger;
  /** Called with every non-zero errcode WeChat answers (a metrics hook). */
  onErrcode?: (errcode: number) => void;
  /** Called when a token is still refused after the refetch and one retry (a metrics hook). */
  onTokenConflict?: () => void;
}

/** What a token refused even after a refetch most likely means, and what to do about it. */
export const TOKEN_CONFLICT_HINT =
  'another system is fetching tokens for this AppID (stable_token with force_refresh, or a reset AppSecret, ' +
  "replaces the bridge's token): let only the bridge fetch tokens, or have the other system use stable_token " +
  'in normal mode; the message was not sent';

type AttemptOutcome = { kind: 'ok'; text: string } | { kind: 'token-rejected'; errcode: number; errmsg: string };

export function createWeChatApiClient(options: WeChatApiClientOptions): WeChatApiClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const httpClient = options.http ?? axios.create();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { tokens, logger } = options;

  async function attempt(path: string, what: string, json: string, accessToken: string): Promise<AttemptOutcome> {
    const url = `${baseUrl}${path}?access_token=${encodeURIComponent(accessToken)}`;
    let answer: WeChatHttpAnswer;
    try {
      answer = await postWeChatJson(httpClient, url, json, timeoutMs);
    } catch (error) {
      if (!(error instanceof WeChatTransportFailure)) throw error;
      const reason = error.timedOut ? `timed out after ${timeoutMs} ms` : `failed (${error.code})`;
      if (!error.requestSent) {
        throw new RetryableError(`WeChat ${what} ${reason} before the request was sent`);
      }
      throw new UncertainDeliveryError(
        `WeChat ${what} ${reason} after the request was sent: delivery uncertain, not retried to avoid a duplicate`,
      );
    }

    if (answer.status === 429) {
      const retryAfterMs = parseRetryAfterMs(answer.retryAfter);
      throw new RetryableError(`WeChat ${what} answered HTTP 429`, retryAfterMs === undefined ? {} : { retryAfterMs });
    }
    if (answer.status >= 500) throw new RetryableError(`WeChat ${what} answered HTTP ${answer.status}`);
    if (answer.status < 200 || answer.status >= 300) {
      throw new PermanentError(`WeChat ${what} answered HTTP ${answer.status}`, { code: `http_${answer.status}` });
    }

    const parsed = parseWeChatAnswer(answer.text);
    if (!parsed) {
      // A 2xx we cannot read: something accepted the request; WeChat may have acted on it.
      throw new UncertainDeliveryError(`WeChat ${what} answered HTTP ${answer.status} with an unreadable body: delivery uncertain`);
    }
    const errcode = readErrcode(parsed);
    const errmsg = readErrmsg(parsed);
    if (errcode === 0) return { kind: 'ok', text: answer.text };
    options.onErrcode?.(errcode);
    if (TOKEN_REJECTED_ERRCODES.has(errcode)) return { kind: 'token-rejected', errcode, errmsg };
    const later = retryLaterError(errcode, errmsg, `WeChat ${what}`);
    if (later) throw later;
    const hint = SEND_HINTS.get(errcode);
    throw new WeChatApiError(errcode, errmsg, hint ? { hint } : {});
  }

  /** Resolves with the text of WeChat's successful answer. */
  async function post(path: string, what: string, body: Record<string, unknown>, sendOptions: SendOptions = {}): Promise<string> {
    const json = serializeWeChatJson(body);
    const accessToken = await tokens.getToken();
    await sendOptions.beforeRequest?.();
    const first = await attempt(path, what, json, accessToken);
    if (first.kind === 'ok') return first.text;

    // The token was rejected: refetch once (normal mode) and retry once. Never loop: a token that
    // keeps being refused means someone else is invalidating it, and retrying for hours would hide that.
    logger?.warn({ path, errcode: first.errcode }, 'WeChat rejected the access token; refetching once');
    const freshToken = await tokens.invalidate(accessToken);
    const second = await attempt(path, what, json, freshToken);
    if (second.kind === 'ok') return second.text;
    options.onTokenConflict?.();
    logger?.error(
      { path, errcode: second.errcode, errmsg: second.errmsg },
      'WeChat rejected the access token again after a refetch: another system is probably fetching tokens for this AppID',
    );
    throw new WeChatApiError(second.errcode, second.errmsg, { hint: TOKEN_CONFLICT_HINT, context: `WeChat ${what}: token refused after a refetch` });
  }

  return {
    sendCustomMessage: async (body, sendOptions) => {
      await post('/cgi-bin/message/custom/send', 'custom/send', body, sendOptions);
    },
    sendTyping: async (body) => {
      await post('/cgi-bin/message/custom/typing', 'custom/typing', body);
    },
    sendTemplateMessage: async (body, sendOptions) => ({ msgId: msgIdOf(await post('/cgi-bin/message/template/send', 'template/send', body, sendOptions)) }),
    sendSubscribeMessage: async (body, sendOptions) => ({
      msgId: msgIdOf(await post('/cgi-bin/message/subscribe/bizsend', 'subscribe/bizsend', body, sendOptions)),
    }),
  };
}
