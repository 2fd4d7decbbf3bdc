/**
 * One signed credential, one request. A webhook's credential (WeChat's signed query, a Vonage
 * token's `jti`) may come again only with the very same request (the sender retrying it), never
 * with another body (a captured credential replayed with a forged one).
 *
 * Two keys per request: the credential's, and the credential's with a digest of the request. Both
 * are stored in the same transaction as the request's jobs, so a request that failed to store (a
 * `503`) can still be retried with its credential, and nothing is remembered for it otherwise.
 */
import { wasSeen, type EnqueueOptions, type SeenKeys } from '../store/store';

export interface ReplayKeys {
  credentialKey: string;
  requestKey: string;
  /** Epoch ms: as long as the credential itself is accepted, plus a margin for clock skew. */
  expiresAt: number;
}

export function replayKeysOf(credential: string, requestDigest: string, expiresAt: number): ReplayKeys {
  return { credentialKey: credential, requestKey: `${credential}:${requestDigest}`, expiresAt };
}

/** True when the credential was used before for another request. */
export async function isReplayedCredential(store: SeenKeys, keys: ReplayKeys): Promise<boolean> {
  // The second probe only for a credential seen before: is it the very same request again?
  return (await wasSeen(store, keys.credentialKey)) && !(await wasSeen(store, keys.requestKey));
}

/** The keys as the store records them with the request's jobs. */
export function seenKeysOf(keys: ReplayKeys): NonNullable<EnqueueOptions['seenKeys']> {
  return [keys.credentialKey, keys.requestKey].map((key) => ({ key, expiresAt: keys.expiresAt }));
}
