/**
 * How Vonage delivers a conversation's events to the application's RTC `event_url`.
 *
 * - `signCallback` (pure): signed callbacks carry `Authorization: Bearer <JWT>`, HS256 with the
 *   account's signature secret, claims `{iat, jti, iss: "Vonage", payload_hash, api_key,
 *   application_id}`, where `payload_hash` is the SHA-256 (hex) of the exact body bytes
 *   (Vonage's signed-webhooks guide; docs/emulator-limits.md). Each delivery is signed afresh: a receiver that
 *   remembers `jti`s (the bridge does) would refuse a retried request carrying the same token.
 * - `deliverCallback` (I/O): POST as JSON; any 2xx is delivered; 5xx, 429, timeouts and network
 *   failures are retried after the given delays ("By returning an HTTP 5xx response, a retry will be
 *   triggered"); another 4xx is final.
 */
import * as crypto from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import jwt from 'jsonwebtoken';
import { postOnce, type DeliveryAttempt } from '../delivery';

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

export interface DeliverCallbackOptions {
  url: string;
  rawBody: string;
  /** Signs each attempt (undefined from it: that attempt goes unsigned); undefined sends unsigned callbacks. */
  sign?: (rawBody: string) => string | undefined;
  /** Waits before the 2nd, 3rd… attempt; its length is the number of retries. */
  retryDelaysMs: readonly number[];
  timeoutMs: number;
  now: () => number;
  onAttempt?: (attempt: DeliveryAttempt, authorization: string | undefined) => void;
  signal?: AbortSignal;
}

export const isDelivered = (attempt: DeliveryAttempt): boolean =>
  attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300;

const isRetryable = (attempt: DeliveryAttempt): boolean =>
  attempt.status === undefined || attempt.status >= 500 || attempt.status === 429;

export async function deliverCallback(o: DeliverCallbackOptions): Promise<DeliveryAttempt[]> {
  const attempts: DeliveryAttempt[] = [];
  for (let index = 0; index <= o.retryDelaysMs.length; index += 1) {
    if (index > 0) await delay(o.retryDelaysMs[index - 1], undefined, { signal: o.signal }).catch(() => undefined);
    if (o.signal?.aborted) break;
    const authorization = o.sign?.(o.rawBody);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (authorization !== undefined) headers.authorization = authorization;
    const attempt = await postOnce({ url: o.url, headers, body: o.rawBody, attempt: index + 1, timeoutMs: o.timeoutMs, now: o.now, signal: o.signal });
    attempts.push(attempt);
    o.onAttempt?.(attempt, authorization);
    if (isDelivered(attempt) || !isRetryable(attempt)) break;
  }
  return attempts;
}
