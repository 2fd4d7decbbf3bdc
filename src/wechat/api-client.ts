/**
 * The WeChat API client: customer-service sends and typing, template and subscription sends, with
 * the access token from an AccessTokenSource (transport.ts holds what these calls share with the
 * token fetch and media).
 *
 * Delivery semantics (why there are three error classes here):
 * - Nothing reached WeChat (connect refused, DNS failure, timeout or error before the request
 *   body was handed to the OS), HTTP 5xx/429, errcode -1: RetryableError, safe to send again.
 * - WeChat refused for good (45015, 45047, 40003, …): WeChatApiError (a PermanentError).
 * - The body went out but no answer came back (timeout while waiting, connection reset, a 2xx
 *   we cannot read): UncertainDeliveryError (a PermanentError, code `uncertain`). WeChat may
 *   already have delivered the message; sending again can duplicate it.
 *   For customer-service messages we prefer at-most-once: the caller reports
 *   "failed: delivery uncertain" instead of risking a duplicate in the user's chat.
 *   This is strict on purpose: even an ECONNRESET on a reused keep-alive socket after the body
 *   went out is uncertain (the server may have crashed mid-request), so a rare stale-socket race
 *   shows up as an uncertain failure rather than a possible duplicate.
 */
import type { Logger } from 'pino';
import { PermanentError, RetryableError } from '../errors';
import { createHttpRequester, type HttpRequester } from '../outbound-http';
import { msgIdOf } from './template-message';
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
  tokenRejection,
  WeChatApiError,
  WeChatTransportFailure,
  withAccessToken,
  type AccessTokenSource,
  type TokenAttempt,
  type WeChatHttpAnswer,
} from './transport';

/** Human hints for the permanent errcodes people actually hit. */
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
  tokens: AccessTokenSource;
  /** Outbound HTTP; defaults to a requester of its own (the bridge passes the one process-wide requester). */
  http?: HttpRequester;
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

export function createWeChatApiClient(options: WeChatApiClientOptions): WeChatApiClient {
  const baseUrl = apiBaseOf(options.baseUrl);
  const httpClient = options.http ?? createHttpRequester();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { tokens, logger } = options;

  /** One try with one token: WeChat's successful answer text, or the token rejected. */
  async function attempt(path: string, what: string, json: string, accessToken: string): Promise<TokenAttempt<string>> {
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

    checkHttpStatus(answer.status, answer.retryAfter, `WeChat ${what} answered`);
    const parsed = parseWeChatAnswer(answer.text);
    if (!parsed) {
      // A 2xx we cannot read: something accepted the request; WeChat may have acted on it.
      throw new UncertainDeliveryError(`WeChat ${what} answered HTTP ${answer.status} with an unreadable body: delivery uncertain`);
    }
    const errcode = readErrcode(parsed);
    const errmsg = readErrmsg(parsed);
    if (errcode === 0) return { kind: 'done', value: answer.text };
    options.onErrcode?.(errcode);
    const rejected = tokenRejection(errcode, errmsg);
    if (rejected) return rejected;
    const later = retryLaterError(errcode, errmsg, `WeChat ${what}`);
    if (later) throw later;
    const hint = SEND_HINTS.get(errcode);
    throw new WeChatApiError(errcode, errmsg, hint ? { hint } : {});
  }

  /** Resolves with the text of WeChat's successful answer. */
  async function post(path: string, what: string, body: Record<string, unknown>, sendOptions: SendOptions = {}): Promise<string> {
    const json = serializeWeChatJson(body);
    return withAccessToken(tokens, (accessToken) => attempt(path, what, json, accessToken), {
      beforeRequest: sendOptions.beforeRequest,
      onRefetch: (rejection) => logger?.warn({ path, errcode: rejection.errcode }, 'WeChat rejected the access token; refetching once'),
      giveUp: (rejection) => {
        options.onTokenConflict?.();
        logger?.error(
          { path, errcode: rejection.errcode, errmsg: rejection.errmsg },
          'WeChat rejected the access token again after a refetch: another system is probably fetching tokens for this AppID',
        );
        return new WeChatApiError(rejection.errcode, rejection.errmsg, {
          hint: TOKEN_CONFLICT_HINT,
          context: `WeChat ${what}: token refused after a refetch`,
        });
      },
    });
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
