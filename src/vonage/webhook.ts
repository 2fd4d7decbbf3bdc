/**
 * The RTC `event_url` webhook: signature verification and event parsing. Pure functions.
 *
 * Signed callbacks (the rtc capability's `signed_callbacks`) carry `Authorization: Bearer <JWT>`, HS256
 * with the account's signature secret, whose `payload_hash` is the SHA-256 of the request body. Vonage's
 * own `verifySignature` checks only the JWT signature (and accepts RS256 too); the sample tokens have no
 * `exp`, so a captured request could be replayed forever. Here we also pin the algorithm, check the body
 * hash over the raw bytes (re-serialised JSON would not match), and bound `iat`; the caller rejects a
 * reused `jti` with the store.
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { InvalidInputError } from '../errors';
import { isRecord } from '../values';

export interface WebhookSignatureInput {
  authorization: string | undefined;
  /** The request body exactly as received. */
  rawBody: Buffer;
  /**
   * The signature secret, or the secrets in the order to try them (current first, then the one being
   * rotated out). Pass KeyObjects (`signatureSecretKey(secret)`, made once) on hot paths: given a
   * string, jsonwebtoken first tries to read it as a public key on every call.
   */
  secret: string | crypto.KeyObject | ReadonlyArray<string | crypto.KeyObject>;
  nowMs: number;
  /** Largest accepted distance between `iat` and now, either way; default 300 s. */
  maxAgeSeconds?: number;
}

export interface VerifiedWebhook {
  /** For the caller's replay check (`store.markSeen`). */
  jti: string;
  iat: number;
  /**
   * Whether the token carried a `payload_hash` (which then matched the body). Vonage's samples always
   * do; a token without one is still genuine (its HMAC verified), but it does not cover the body.
   */
  payloadHashed: boolean;
}

/** The signature secret as an HMAC key, made once. */
export function signatureSecretKey(secret: string): crypto.KeyObject {
  if (secret === '') throw new Error('Vonage signature secret is empty');
  return crypto.createSecretKey(Buffer.from(secret, 'utf8'));
}

export function verifyVonageWebhookSignature(input: WebhookSignatureInput): VerifiedWebhook {
  const maxAgeSeconds = input.maxAgeSeconds ?? 300;
  const secrets = (Array.isArray(input.secret) ? input.secret : [input.secret]).map((secret: string | crypto.KeyObject) =>
    typeof secret === 'string' ? signatureSecretKey(secret) : secret,
  );

  const header = input.authorization?.trim();
  if (!header) throw unauthorized('missing Authorization header');
  const match = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$/i.exec(header);
  if (!match?.[1]) throw unauthorized('malformed Authorization header');
  const token = match[1];

  // jws.decode JSON.parses the payload of a `typ: JWT` token without catching, so a damaged one
  // would escape as a SyntaxError (a 500) instead of a 401.
  let decoded: jwt.Jwt | null;
  try {
    decoded = jwt.decode(token, { complete: true });
  } catch {
    throw unauthorized('malformed token');
  }
  if (!decoded || typeof decoded.payload !== 'object') throw unauthorized('malformed token');
  // jsonwebtoken would refuse these too (algorithms below); checking first gives a clearer reason.
  if (decoded.header.alg !== 'HS256') throw unauthorized('token is not HS256');

  let claims: jwt.JwtPayload | undefined;
  // Each secret in turn: during a rotation Vonage may still sign with the previous one.
  for (const secret of secrets) {
    try {
      const verified = jwt.verify(token, secret, {
        algorithms: ['HS256'],
        clockTimestamp: Math.floor(input.nowMs / 1000),
        ignoreExpiration: false,
      });
      if (typeof verified !== 'object' || verified === null) throw unauthorized('malformed token');
      claims = verified;
      break;
    } catch (error) {
      if (error instanceof InvalidInputError) throw error;
      if (error instanceof jwt.TokenExpiredError) throw unauthorized('token expired');
      if (error instanceof jwt.NotBeforeError) throw unauthorized('token not yet valid');
      // A bad signature under this secret: try the next one.
    }
  }
  if (claims === undefined) throw unauthorized('invalid token signature');

  const { iat, jti } = claims;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw unauthorized('token has no iat');
  if (Math.abs(input.nowMs / 1000 - iat) > maxAgeSeconds) throw unauthorized('token iat too far from now');
  if (typeof jti !== 'string' || jti === '') throw unauthorized('token has no jti');

  const claimedHash: unknown = claims.payload_hash;
  if (claimedHash === undefined) return { jti, iat, payloadHashed: false };
  if (typeof claimedHash !== 'string' || !/^[0-9a-f]{64}$/i.test(claimedHash)) throw unauthorized('malformed payload_hash');
  const actual = crypto.createHash('sha256').update(input.rawBody).digest();
  if (!crypto.timingSafeEqual(actual, Buffer.from(claimedHash, 'hex'))) throw unauthorized('payload_hash mismatch');

  return { jti, iat, payloadHashed: true };
}

function unauthorized(reason: string): InvalidInputError {
  return new InvalidInputError(401, `Vonage webhook signature: ${reason}`);
}

// ---------------------------------------------------------------------------------------------

export interface RtcEvent {
  /** e.g. `custom:wechat:message`, `member:joined`. */
  type: string;
  /** Vonage's per-conversation event id, as a string (it arrives as an integer). */
  id: string;
  conversationId: string;
  applicationId: string | undefined;
  timestamp: string | undefined;
  /** Member id, when the event has one. */
  from: string | undefined;
  body: Record<string, unknown>;
  /** The whole payload, for logging and for fields this parser does not name. */
  raw: Record<string, unknown>;
}

/**
 * Reads an RTC webhook payload. Lenient about extra and missing optional properties (the spec says
 * `additionalProperties: false`, real payloads carry more); strict about what the bridge needs to act
 * once per event: `type`, `id` and the conversation id (`conversation_id`, or legacy `cid`).
 */
export function parseRtcEvent(json: unknown): RtcEvent {
  if (!isRecord(json)) throw invalid('RTC event is not a JSON object');

  const type = own(json, 'type');
  if (typeof type !== 'string' || type === '') throw invalid('RTC event has no type');

  const rawId = own(json, 'id');
  let id: string;
  if (typeof rawId === 'number' && Number.isSafeInteger(rawId) && rawId >= 0) id = String(rawId);
  else if (typeof rawId === 'string' && rawId.trim() !== '') id = rawId.trim();
  else throw invalid('RTC event has no id');

  const conversationId = nonEmptyString(own(json, 'conversation_id')) ?? nonEmptyString(own(json, 'cid'));
  if (conversationId === undefined) throw invalid('RTC event has no conversation_id');

  const rawBody = own(json, 'body');
  let body: Record<string, unknown>;
  if (isRecord(rawBody)) body = rawBody;
  else if (type.startsWith('custom:')) throw invalid('RTC custom event has no body object');
  // Other event kinds are only ever ignored by the bridge; an odd body must not make Vonage retry them.
  else body = {};

  return {
    type,
    id,
    conversationId,
    applicationId: nonEmptyString(own(json, 'application_id')),
    timestamp: nonEmptyString(own(json, 'timestamp')),
    from: nonEmptyString(own(json, 'from')),
    body,
    raw: json,
  };
}

function invalid(reason: string): InvalidInputError {
  return new InvalidInputError(400, reason);
}

/** Own properties only: a `__proto__` or `constructor` key in the JSON must never reach the prototype chain. */
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

