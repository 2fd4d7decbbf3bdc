/**
 * What every WeChat API call shares, whichever API it is: the JSON POST that knows whether a request
 * went out, reading an answer (HTTP status, errcode, errmsg), the errcodes that mean "later" or
 * "the token is stale", and the access-token rule: a token WeChat rejects is refetched once and the
 * call repeated once, never more.
 *
 * Each API decides what its failures mean for delivery (a customer-service send that may have gone
 * out is not repeated; a token fetch or a media download always may be); this module only tells
 * them apart. It knows no API's paths, and no token store: tokens come from an AccessTokenSource.
 */
import { PermanentError, RetryableError } from '../errors';
import { scrubSecrets } from '../logger';
import { HttpRequestFailure, type HttpRequester } from '../outbound-http';

export const DEFAULT_TIMEOUT_MS = 10_000;

/** WeChat's JSON answers are a few hundred bytes; anything past this is not one. */
const MAX_ANSWER_BYTES = 1024 * 1024;

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

/** `https://api.weixin.qq.com/` → `https://api.weixin.qq.com`: paths are appended to it. */
export function apiBaseOf(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
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

// eslint-disable-next-line no-control-regex -- the control characters are what this strips
const UNSENDABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function stripUnsendable(text: string): string {
  return text.replace(UNSENDABLE, '');
}

// ---------------------------------------------------------------------------------------------
// The JSON POST.

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
    /** A Node error code such as ECONNREFUSED, or `timeout`. Never a URL. */
    readonly code: string,
  ) {
    super(timedOut ? 'timeout' : code);
    this.name = 'WeChatTransportFailure';
  }
}

/**
 * POSTs a JSON text to `url` and answers with the status and body, whatever the status.
 * Throws WeChatTransportFailure when no answer came, telling whether the request had gone out
 * (that difference decides whether a send may be repeated). The requester bounds the whole
 * exchange (connect, send, answer) with one timer.
 */
export async function postWeChatJson(http: HttpRequester, url: string, json: string, timeoutMs: number): Promise<WeChatHttpAnswer> {
  try {
    const answer = await http.request({
      method: 'POST',
      url,
      headers: { 'Content-Type': 'application/json; charset=utf-8', Accept: 'application/json' },
      body: Buffer.from(json, 'utf8'),
      timeoutMs,
      maxResponseBytes: MAX_ANSWER_BYTES,
    });
    const retryAfter = answer.headers['retry-after'];
    return { status: answer.status, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, text: answer.text };
  } catch (error) {
    if (error instanceof HttpRequestFailure) throw new WeChatTransportFailure(error.requestSent, error.timedOut, error.code);
    // Another requester's error says nothing of how far the request got: it may have gone out.
    // Not kept as a cause either: it could hold the URL (the token) or the body (the secret).
    throw new WeChatTransportFailure(true, false, networkErrorCode(error));
  }
}

/**
 * The system error code of a failed request (ECONNREFUSED, ECONNRESET, …), from the error or its
 * cause (fetch wraps it); `network error` when there is none. Never a message,
 * which could hold the URL and with it the access token.
 */
export function networkErrorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code;
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (cause && typeof cause.code === 'string' && /^[A-Z0-9_]+$/.test(cause.code)) return cause.code;
  }
  return 'network error';
}

// ---------------------------------------------------------------------------------------------
// Reading an answer.

/**
 * Throws for an HTTP status that is not a 2xx: 429 (with its Retry-After) and 5xx are retryable,
 * the rest permanent. `label` starts the message, e.g. `WeChat media/get answered` → `… HTTP 502`.
 */
export function checkHttpStatus(status: number, retryAfter: string | undefined, label: string): void {
  if (status === 429) {
    const retryAfterMs = parseRetryAfterMs(retryAfter);
    throw new RetryableError(`${label} HTTP 429`, retryAfterMs === undefined ? {} : { retryAfterMs });
  }
  if (status >= 500) throw new RetryableError(`${label} HTTP ${status}`);
  if (status < 200 || status >= 300) throw new PermanentError(`${label} HTTP ${status}`, { code: `http_${status}` });
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
// The access token.

/** Where calls get their access token (AccessTokenManager in production, a stub in tests). */
export interface AccessTokenSource {
  /** A valid access token. */
  getToken(): Promise<string>;
  /** WeChat refused `staleToken`: the token to retry with (another caller's replacement, or a refetch). */
  invalidate(staleToken: string): Promise<string>;
}

/** WeChat answered that the token was not valid. */
export interface TokenRejection {
  kind: 'token-rejected';
  errcode: number;
  errmsg: string;
}

/** One try of a call with one token: its value, or the token rejected. */
export type TokenAttempt<T> = { kind: 'done'; value: T } | TokenRejection;

/** The rejection when `errcode` says the token is stale, else undefined. */
export function tokenRejection(errcode: number, errmsg: string): TokenRejection | undefined {
  return TOKEN_REJECTED_ERRCODES.has(errcode) ? { kind: 'token-rejected', errcode, errmsg } : undefined;
}

export interface WithAccessTokenOptions {
  /**
   * Awaited once the token is in hand, right before the first try: nothing can have reached WeChat
   * before it, so a failure before it (no token) is always safe to retry.
   */
  beforeRequest?: (() => Promise<void>) | undefined;
  /** Told of the first rejection, before the refetch. */
  onRefetch?: (rejection: TokenRejection) => void;
  /** The error for a token still rejected after the refetch: what that means is the API's business. */
  giveUp: (rejection: TokenRejection) => Error;
}

/**
 * Runs `call` with the current token and, when WeChat rejects it, once more with a refetched one.
 * Never loops: a token that keeps being refused means someone else is replacing it, and retrying
 * for hours would hide that.
 */
export async function withAccessToken<T>(
  tokens: AccessTokenSource,
  call: (accessToken: string) => Promise<TokenAttempt<T>>,
  options: WithAccessTokenOptions,
): Promise<T> {
  const accessToken = await tokens.getToken();
  await options.beforeRequest?.();
  const first = await call(accessToken);
  if (first.kind === 'done') return first.value;
  options.onRefetch?.(first);
  const second = await call(await tokens.invalidate(accessToken));
  if (second.kind === 'done') return second.value;
  throw options.giveUp(second);
}
