/**
 * How Vonage delivers a conversation's events to the application's RTC `event_url`.
 *
 * - `signCallback` (pure): signed callbacks carry `Authorization: Bearer <JWT>`, HS256 with the
 *   account's signature secret, claims `{iat, jti, iss: "Vonage", payload_hash, api_key,
 *   application_id}`, where `payload_hash` is the SHA-256 (hex) of the exact body bytes
 *   (vonage.md §3 "Inbound signed webhooks"). Each delivery is signed afresh: a receiver that
 *   remembers `jti`s (the bridge does) would refuse a retried request carrying the same token.
 * - `deliverCallback` (I/O): POST as JSON; any 2xx is delivered; 5xx, 429, timeouts and network
 *   failures are retried after the given delays ("By returning an HTTP 5xx response, a retry will be
 *   triggered"); another 4xx is final.
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';

export interface CallbackSigning {
  secret: string;
  apiKey: string;
  applicationId: string;
  nowMs: number;
}

/** `Bearer <HS256 JWT>` over these exact body bytes. */
export function signCallback(rawBody: string | Buffer, o: CallbackSigning): string {
  const claims = {
    iat: Math.floor(o.nowMs / 1000),
    jti: crypto.randomUUID(),
    iss: 'Vonage',
    payload_hash: crypto.createHash('sha256').update(rawBody).digest('hex'),
    api_key: o.apiKey,
    application_id: o.applicationId,
  };
  return `Bearer ${jwt.sign(claims, o.secret, { algorithm: 'HS256' })}`;
}

export interface CallbackAttempt {
  attempt: number;
  /** Epoch ms. */
  at: number;
  status?: number;
  body?: string;
  error?: string;
  durationMs: number;
}

export interface DeliverCallbackOptions {
  url: string;
  rawBody: string;
  /** Signs each attempt (undefined from it: that attempt goes unsigned); undefined sends unsigned callbacks. */
  sign?: (rawBody: string) => string | undefined;
  /** Waits before the 2nd, 3rd… attempt; its length is the number of retries. */
  retryDelaysMs: readonly number[];
  timeoutMs: number;
  now: () => number;
  onAttempt?: (attempt: CallbackAttempt, authorization: string | undefined) => void;
  signal?: AbortSignal;
}

export const isDelivered = (attempt: CallbackAttempt): boolean =>
  attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300;

const isRetryable = (attempt: CallbackAttempt): boolean =>
  attempt.status === undefined || attempt.status >= 500 || attempt.status === 429;

export async function deliverCallback(o: DeliverCallbackOptions): Promise<CallbackAttempt[]> {
  const attempts: CallbackAttempt[] = [];
  for (let index = 0; index <= o.retryDelaysMs.length; index += 1) {
    if (index > 0) await sleep(o.retryDelaysMs[index - 1]!, o.signal);
    if (o.signal?.aborted) break;
    const authorization = o.sign?.(o.rawBody);
    const attempt = await attemptOnce(o, index + 1, authorization);
    attempts.push(attempt);
    o.onAttempt?.(attempt, authorization);
    if (isDelivered(attempt) || !isRetryable(attempt)) break;
  }
  return attempts;
}

async function attemptOnce(o: DeliverCallbackOptions, attempt: number, authorization: string | undefined): Promise<CallbackAttempt> {
  const at = o.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), o.timeoutMs);
  const abort = () => controller.abort();
  o.signal?.addEventListener('abort', abort);
  try {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (authorization !== undefined) headers.authorization = authorization;
    const response = await fetch(o.url, { method: 'POST', headers, body: o.rawBody, signal: controller.signal });
    const body = await response.text();
    return { attempt, at, status: response.status, body, durationMs: o.now() - at };
  } catch (error) {
    const cause = (error as { cause?: { message?: unknown } }).cause;
    const message = controller.signal.aborted
      ? `no answer within ${o.timeoutMs} ms`
      : typeof cause?.message === 'string'
        ? cause.message
        : error instanceof Error
          ? error.message
          : String(error);
    return { attempt, at, error: message, durationMs: o.now() - at };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', abort);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}
