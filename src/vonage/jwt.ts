/**
 * The application JWT that authenticates our calls to the Conversation API.
 *
 * Vonage wants RS256 over `{application_id, iat, jti, exp}` (no `sub`/`acl`: those are for Client SDK
 * user tokens) and refuses any token more than 24 h after its `iat`, whatever `exp` says. Signing costs an
 * RSA operation, so one token is reused until shortly before it expires (minting one per request is
 * slow; caching one forever ends in 401s once Vonage stops accepting it). Refreshing
 * `refreshBeforeSeconds` early leaves room for clock skew and for a request already in flight.
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';

/** Vonage's documented bounds for `exp - iat`. */
const MIN_TTL_SECONDS = 30;
const MAX_TTL_SECONDS = 24 * 60 * 60;

export interface ApplicationTokenOptions {
  applicationId: string;
  /** The application's RSA private key, parsed (`loadVonagePrivateKey(...).key`) or as PEM text. */
  privateKey: crypto.KeyObject | string;
  /** Lifetime of each token; default 900 s (Vonage's own default), at most 24 h. */
  ttlSeconds?: number;
  /** A cached token is replaced once it has less than this left; default 60 s. */
  refreshBeforeSeconds?: number;
  /** Clock in epoch milliseconds; default `Date.now`. */
  now?: () => number;
}

export interface ApplicationTokenSource {
  /** A valid bearer token: the cached one, or a freshly signed one when it is about to expire. */
  token(): string;
}

export interface ApplicationTokenClaims {
  application_id: string;
  iat: number;
  jti: string;
  exp: number;
}

export function createApplicationTokenSource(options: ApplicationTokenOptions): ApplicationTokenSource {
  const { applicationId } = options;
  const ttlSeconds = options.ttlSeconds ?? 900;
  const refreshBeforeSeconds = options.refreshBeforeSeconds ?? 60;
  const now = options.now ?? Date.now;

  if (typeof applicationId !== 'string' || applicationId.trim() === '') {
    throw new Error('Vonage application id is empty');
  }
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < MIN_TTL_SECONDS || ttlSeconds > MAX_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds must be an integer from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS}`);
  }
  if (!Number.isFinite(refreshBeforeSeconds) || refreshBeforeSeconds < 0 || refreshBeforeSeconds >= ttlSeconds) {
    throw new RangeError('refreshBeforeSeconds must be at least 0 and less than ttlSeconds');
  }
  const key = toRsaPrivateKey(options.privateKey);

  let cached: { value: string; refreshAtSeconds: number } | undefined;

  return {
    token(): string {
      const nowSeconds = Math.floor(now() / 1000);
      if (cached && nowSeconds < cached.refreshAtSeconds) return cached.value;
      const claims: ApplicationTokenClaims = {
        application_id: applicationId,
        iat: nowSeconds,
        jti: crypto.randomUUID(),
        exp: nowSeconds + ttlSeconds,
      };
      const value = jwt.sign(claims, key, { algorithm: 'RS256', header: { alg: 'RS256', typ: 'JWT' } });
      cached = { value, refreshAtSeconds: claims.exp - refreshBeforeSeconds };
      return value;
    },
  };
}

function toRsaPrivateKey(privateKey: crypto.KeyObject | string): crypto.KeyObject {
  let key: crypto.KeyObject;
  if (typeof privateKey === 'string') {
    try {
      key = crypto.createPrivateKey(privateKey);
    } catch {
      throw new Error('Vonage private key is not a PEM private key');
    }
  } else {
    key = privateKey;
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
    throw new Error('Vonage private key must be an RSA private key');
  }
  return key;
}
