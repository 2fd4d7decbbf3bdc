/**
 * RTC webhook requests as Vonage sends them to an application's `event_url`: the payload shape of
 * vonage-schemas.json `rtcEventWebhookCustomEvent`, optionally signed (HS256 JWT in
 * `Authorization: Bearer`, `payload_hash` = SHA-256 of the exact body bytes).
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { TEST_CONVERSATION_ID, TEST_VONAGE_APP_ID } from './bridge-harness';

let nextId = 1000;

/** A custom event payload; `id` is fresh per call unless given. */
export function rtcEvent(type: string, body: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type,
    body,
    id: nextId++,
    conversation_id: TEST_CONVERSATION_ID,
    application_id: TEST_VONAGE_APP_ID,
    timestamp: new Date().toISOString(),
    from: 'MEM-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
    ...extra,
  };
}

/** An agent's outbound message (the contract's shape), to `to`. */
export const outboundMessage = (to: string | undefined, fields: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  rtcEvent('custom:wechat:message', { direction: 'outbound', ...(to === undefined ? {} : { to }), ...fields }, extra);

export interface SignOptions {
  secret: string;
  /** Claims to add or override (iat, jti, payload_hash…). */
  claims?: Record<string, unknown>;
}

/** `Bearer <HS256 JWT>` for these exact body bytes. */
export function signRtcBody(rawBody: string | Buffer, options: SignOptions): string {
  const claims = {
    iat: Math.floor(Date.now() / 1000),
    jti: crypto.randomUUID(),
    iss: 'Vonage',
    payload_hash: crypto.createHash('sha256').update(rawBody).digest('hex'),
    api_key: 'abcd1234',
    application_id: TEST_VONAGE_APP_ID,
    ...options.claims,
  };
  return `Bearer ${jwt.sign(claims, options.secret, { algorithm: 'HS256' })}`;
}

/** POSTs a payload (an object is serialised; a string is sent as is) to /rtcEvent. */
export async function postRtcEvent(
  baseUrl: string,
  payload: unknown,
  options: { authorization?: string; sign?: SignOptions } = {},
): Promise<{ status: number; text: string }> {
  const raw = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const authorization = options.sign ? signRtcBody(raw, options.sign) : options.authorization;
  if (authorization !== undefined) headers.authorization = authorization;
  const response = await fetch(`${baseUrl}/rtcEvent`, { method: 'POST', headers, body: raw });
  return { status: response.status, text: await response.text() };
}
