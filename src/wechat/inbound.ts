/**
 * Opening a push: from what WeChat sent (the query values it signed and the body) to the typed
 * message, or a refusal that says which HTTP status to answer and why. Pure: values in, values out,
 * no I/O and no HTTP framework; the webhook maps HTTP to it and keeps the store's checks.
 *
 *   signature → fresh timestamp → outer XML → mode allowed → (encrypted: Encrypt, msg_signature,
 *   decrypt with the current key, else the previous one → inner XML) → the message model
 *
 * The query checks come first and need no body, so the webhook runs `checkPushQuery` before it
 * reads one (unsigned floods then cost almost nothing); `openPush` runs them again, with the same
 * arrival time, so that it is complete on its own.
 */
import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors';
import { decryptWeChatMessage, WeChatCryptoError } from './crypto';
import { parseWeChatMessage, readWeChatMessage, weChatContentDigest, type WeChatMessage } from './message';
import { isFreshTimestamp, verifyWeChatMsgSignature, verifyWeChatSignature } from './signature';
import { parseWeChatXml } from './xml';

/** How WeChat pushes a message: plaintext, plaintext plus ciphertext, or ciphertext only. */
export const WECHAT_MESSAGE_MODES = ['plain', 'compatible', 'safe'] as const;
export type WeChatMessageMode = (typeof WECHAT_MESSAGE_MODES)[number];

/** A signed query is good this long either side of its timestamp (isFreshTimestamp's window). */
const TIMESTAMP_WINDOW_SECONDS = 300;

/** The query values of a push, each one string, or undefined when missing or repeated. */
export interface PushQuery {
  timestamp?: string | undefined;
  nonce?: string | undefined;
  signature?: string | undefined;
  msg_signature?: string | undefined;
  encrypt_type?: string | undefined;
}

/** What the account's configuration says about its pushes. */
export interface PushAccount {
  token: string;
  appId: string;
  /** The current EncodingAESKey's AES key first, then the previous one. */
  aesKeys: readonly Buffer[];
  /** WECHAT_MESSAGE_MODES; undefined: what the keys allow (see acceptedMessageModes). */
  messageModes?: readonly WeChatMessageMode[] | undefined;
}

/** Not a push to take: the status to answer and the reason (the answer's text and the log line's). */
export interface PushRefusal {
  kind: 'refused';
  status: InvalidInputError['status'];
  reason: string;
}

/** A push opened: its message, how it came, and the credential the replay guard remembers it by. */
export interface OpenedPush {
  kind: 'opened';
  message: WeChatMessage;
  mode: WeChatMessageMode;
  /**
   * The plain `signature` covers only timestamp and nonce, so a captured query could carry any body
   * while its timestamp is fresh: the signed query may come again only with this same content.
   */
  replay: {
    /** `wechat-push:` and a digest of the signed query. */
    credential: string;
    /** The message's content digest. */
    requestDigest: string;
    /** Epoch ms: as long as the timestamp is accepted, plus a minute for clock skew. */
    expiresAt: number;
  };
}

const refused = (status: PushRefusal['status'], reason: string): PushRefusal => ({ kind: 'refused', status, reason });

/** The modes a configuration accepts: WECHAT_MESSAGE_MODES, or else plain and, with a key, the encrypted two. */
export function acceptedMessageModes(account: Pick<PushAccount, 'aesKeys' | 'messageModes'>): ReadonlySet<WeChatMessageMode> {
  if (account.messageModes !== undefined) return new Set(account.messageModes);
  return new Set<WeChatMessageMode>(account.aesKeys.length > 0 ? ['plain', 'compatible', 'safe'] : ['plain']);
}

/**
 * The checks a push's query must pass before its body is worth reading: WeChat's plain signature,
 * and a timestamp within five minutes of `receivedAtMs` (a captured signed request is only good
 * that long). Undefined when it passes.
 */
export function checkPushQuery(query: PushQuery, token: string, receivedAtMs: number): PushRefusal | undefined {
  if (!verifyWeChatSignature({ token, timestamp: query.timestamp, nonce: query.nonce, signature: query.signature })) {
    return refused(401, 'invalid signature');
  }
  if (!isFreshTimestamp(query.timestamp, receivedAtMs, TIMESTAMP_WINDOW_SECONDS)) return refused(401, 'stale timestamp');
  return undefined;
}

/**
 * Opens a push received at `receivedAtMs` (epoch ms, when its request arrived: the timestamp is
 * judged then, not after the body was read). Plain mode, or compatible/safe mode
 * (`encrypt_type=aes`; compatible when the body also carries the plaintext fields).
 */
export function openPush(input: {
  query: PushQuery;
  body: string;
  account: PushAccount;
  receivedAtMs: number;
  /** The caller already ran `checkPushQuery` on this query at `receivedAtMs` (before reading the body): not hashed twice. */
  queryChecked?: boolean;
}): OpenedPush | PushRefusal {
  const { query, body, account } = input;
  const queryRefusal = input.queryChecked === true ? undefined : checkPushQuery(query, account.token, input.receivedAtMs);
  if (queryRefusal) return queryRefusal;
  if (body.trim() === '') return refused(400, 'empty body');
  try {
    const outer = parseWeChatXml(body);
    const encryptType = query.encrypt_type;
    const mode: WeChatMessageMode = encryptType !== 'aes' ? 'plain' : outer.MsgType !== undefined ? 'compatible' : 'safe';
    // A plain push is signed over timestamp and nonce only, never over its body: an account that
    // pushes encrypted refuses plain pushes so that a captured query cannot carry a forged body.
    if (!acceptedMessageModes(account).has(mode)) return refused(401, `${mode} mode push refused (WECHAT_MESSAGE_MODES)`);

    let message: WeChatMessage;
    if (encryptType === 'aes') {
      const encrypt = outer.Encrypt;
      if (typeof encrypt !== 'string' || encrypt === '') return refused(400, 'missing Encrypt');
      const signed = verifyWeChatMsgSignature({
        token: account.token,
        timestamp: query.timestamp,
        nonce: query.nonce,
        encrypt,
        msgSignature: query.msg_signature,
      });
      if (!signed) return refused(401, 'invalid msg_signature');
      if (account.aesKeys.length === 0) return refused(400, 'encrypted message but WECHAT_ENCODING_AES_KEY is not set');
      // Compatible mode also carries a plaintext copy: trust only what was inside the ciphertext.
      message = readWeChatMessage(decryptWithAnyKey(encrypt, account));
    } else {
      if (encryptType !== undefined && encryptType !== 'raw') return refused(400, 'unknown encrypt_type');
      message = parseWeChatMessage(outer);
    }
    return { kind: 'opened', message, mode, replay: replayCredentialOf(query, message) };
  } catch (error) {
    // The XML, the ciphertext or the message model is not acceptable: each says why.
    if (error instanceof InvalidInputError) return refused(error.status, error.message);
    throw error;
  }
}

/** The current key first, then the previous one, so a key rotation loses no message in flight. */
function decryptWithAnyKey(encrypt: string, account: PushAccount): string {
  let firstError: unknown;
  for (const key of account.aesKeys) {
    try {
      return decryptWeChatMessage(encrypt, key, account.appId);
    } catch (error) {
      if (!(error instanceof WeChatCryptoError)) throw error;
      firstError ??= error;
    }
  }
  throw firstError;
}

function replayCredentialOf(query: PushQuery, message: WeChatMessage): OpenedPush['replay'] {
  const timestamp = query.timestamp ?? '';
  const signed = createHash('sha256')
    .update(`${timestamp}\n${query.nonce ?? ''}\n${(query.signature ?? '').toLowerCase()}`)
    .digest('hex');
  return {
    credential: `wechat-push:${signed}`,
    requestDigest: weChatContentDigest(message),
    expiresAt: (Number(timestamp) + TIMESTAMP_WINDOW_SECONDS + 60) * 1000,
  };
}
