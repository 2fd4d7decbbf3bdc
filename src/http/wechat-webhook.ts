/**
 * `/weChatEvent`: WeChat's URL verification (GET) and message push (POST), as a chain of tiny
 * middlewares so that each check reads on its own and the order is visible in one place:
 *
 *   signature → fresh timestamp → admit (budget) → body (64 KiB) → mode allowed → decrypt + parse →
 *   signed query not reused for other content → store durably → `success`
 *
 * The signature is checked before the body is even read, so unsigned floods cost almost nothing.
 * The answer is due `ackTimeoutMs` after arrival whatever takes the time (ack-budget.ts).
 */
import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import { InvalidInputError } from '../errors';
import type { NewJob } from '../store/store';
import { unstorableReason } from '../store/storable-text';
import { decryptWeChatMessage, WeChatCryptoError } from '../wechat/crypto';
import type { WeChatMessageMode } from '../config';
import { parseWeChatMessage, weChatContentDigest, type WeChatMessage } from '../wechat/message';
import { isFreshTimestamp, verifyWeChatMsgSignature, verifyWeChatSignature } from '../wechat/signature';
import { parseWeChatXml } from '../wechat/xml';
import { storeThenAcknowledge, type DurableAckDeps } from './durable-ack';
import { isReplayedCredential, replayKeysOf, seenKeysOf, type ReplayKeys } from './replay-guard';

export const WECHAT_BODY_LIMIT = '64kb';

/** A signed query is good this long either side of its timestamp (isFreshTimestamp's window). */
const TIMESTAMP_WINDOW_SECONDS = 300;

export interface WeChatWebhookDeps extends DurableAckDeps {
  weChat: { token: string; appId: string; aesKeys: Buffer[]; messageModes?: readonly WeChatMessageMode[] | undefined };
  /** The jobs that deliver one accepted message (the bridge decides where it goes). */
  jobsFor: (message: WeChatMessage) => NewJob[];
  now: () => number;
  /** The account's callback path (`/weChatEvent/{id}`); default `/weChatEvent`, the `default` account's. */
  path?: string;
  /** The account's id, for log lines. */
  accountId?: string;
}

/** A query parameter as a single string; repeated or missing parameters are `undefined`. */
const queryString = (req: Request, name: string): string | undefined => {
  const value = req.query[name];
  return typeof value === 'string' ? value : undefined;
};

export function requireWeChatSignature(token: string): RequestHandler {
  return (req, _res, next) => {
    const ok = verifyWeChatSignature({
      token,
      timestamp: queryString(req, 'timestamp'),
      nonce: queryString(req, 'nonce'),
      signature: queryString(req, 'signature'),
    });
    next(ok ? undefined : new InvalidInputError(401, 'invalid signature'));
  };
}

/** Replay protection: a captured signed request is only good for five minutes. */
export function requireFreshTimestamp(now: () => number): RequestHandler {
  return (req, _res, next) => {
    next(isFreshTimestamp(queryString(req, 'timestamp'), now()) ? undefined : new InvalidInputError(401, 'stale timestamp'));
  };
}

function answerEchostr(req: Request, res: Response): void {
  res.status(200).type('text/plain').send(queryString(req, 'echostr') ?? '');
}

/** The modes a configuration accepts: WECHAT_MESSAGE_MODES, or else plain and, with a key, the encrypted two. */
export function acceptedMessageModes(weChat: WeChatWebhookDeps['weChat']): ReadonlySet<WeChatMessageMode> {
  if (weChat.messageModes !== undefined) return new Set(weChat.messageModes);
  return new Set<WeChatMessageMode>(weChat.aesKeys.length > 0 ? ['plain', 'compatible', 'safe'] : ['plain']);
}

/**
 * Reads the pushed XML into `res.locals.weChatMessage`: plain mode, or compatible/safe mode
 * (`encrypt_type=aes`; compatible when the body also carries the plaintext fields).
 */
export function readWeChatMessage(weChat: WeChatWebhookDeps['weChat']): RequestHandler {
  const accepted = acceptedMessageModes(weChat);
  return (req, res, next) => {
    const text = typeof req.body === 'string' ? req.body : '';
    if (text.trim() === '') return next(new InvalidInputError(400, 'empty body'));
    const outer = parseWeChatXml(text);
    const encryptType = queryString(req, 'encrypt_type');
    const mode: WeChatMessageMode = encryptType !== 'aes' ? 'plain' : outer.MsgType !== undefined ? 'compatible' : 'safe';
    // A plain push is signed over timestamp and nonce only, never over its body: an account that
    // pushes encrypted refuses plain pushes so that a captured query cannot carry a forged body.
    if (!accepted.has(mode)) return next(new InvalidInputError(401, `${mode} mode push refused (WECHAT_MESSAGE_MODES)`));

    if (encryptType === 'aes') {
      const encrypt = outer.Encrypt;
      if (typeof encrypt !== 'string' || encrypt === '') return next(new InvalidInputError(400, 'missing Encrypt'));
      const signed = verifyWeChatMsgSignature({
        token: weChat.token,
        timestamp: queryString(req, 'timestamp'),
        nonce: queryString(req, 'nonce'),
        encrypt,
        msgSignature: queryString(req, 'msg_signature'),
      });
      if (!signed) return next(new InvalidInputError(401, 'invalid msg_signature'));
      if (weChat.aesKeys.length === 0) {
        return next(new InvalidInputError(400, 'encrypted message but WECHAT_ENCODING_AES_KEY is not set'));
      }
      // Compatible mode also carries a plaintext copy: trust only what was inside the ciphertext.
      return acceptMessage(parseWeChatMessage(parseWeChatXml(decryptWithAnyKey(encrypt, weChat))), res, next);
    }
    if (encryptType !== undefined && encryptType !== 'raw') return next(new InvalidInputError(400, 'unknown encrypt_type'));
    return acceptMessage(parseWeChatMessage(outer), res, next);
  };
}

/** A message with text no store can hold is the sender's fault: 400, so that WeChat stops pushing it. */
function acceptMessage(message: WeChatMessage, res: Response, next: NextFunction): void {
  const unstorable = unstorableReason(message);
  if (unstorable !== undefined) return next(new InvalidInputError(400, `message not accepted: ${unstorable}`));
  res.locals.weChatMessage = message;
  return next();
}

/** The current key first, then the previous one, so a key rotation loses no message in flight. */
function decryptWithAnyKey(encrypt: string, weChat: WeChatWebhookDeps['weChat']): string {
  let firstError: unknown;
  for (const key of weChat.aesKeys) {
    try {
      return decryptWeChatMessage(encrypt, key, weChat.appId);
    } catch (error) {
      if (!(error instanceof WeChatCryptoError)) throw error;
      firstError ??= error;
    }
  }
  throw firstError;
}

/**
 * The plain `signature` covers only timestamp and nonce, so a captured query could carry any body
 * while its timestamp is fresh. Each signed query is remembered (in the store, so every instance
 * sees it) with a digest of the content it came with, for as long as the timestamp is accepted: the
 * same query with the same content is WeChat retrying (answered `success`, the dedup key absorbs
 * it), the same query with other content is a forgery (401). The keys are stored with the message's
 * jobs, so a push whose storing failed (a `503`) is still taken when WeChat retries it.
 */
export function refuseReusedSignature(deps: Pick<WeChatWebhookDeps, 'store' | 'logger'>): RequestHandler {
  return async (req, res, next) => {
    const message = res.locals.weChatMessage as WeChatMessage;
    const timestamp = queryString(req, 'timestamp') ?? '';
    const signed = createHash('sha256')
      .update(`${timestamp}\n${queryString(req, 'nonce') ?? ''}\n${(queryString(req, 'signature') ?? '').toLowerCase()}`)
      .digest('hex');
    const keys = replayKeysOf(`wechat-push:${signed}`, weChatContentDigest(message), (Number(timestamp) + TIMESTAMP_WINDOW_SECONDS + 60) * 1000);
    let forged: boolean;
    try {
      forged = await isReplayedCredential(deps.store, keys);
    } catch (error) {
      deps.logger.error({ err: error }, 'could not check the WeChat push signature for reuse, answered 503');
      res.status(503).type('text/plain').send('try again');
      return;
    }
    if (forged) return next(new InvalidInputError(401, 'signature already used for another message'));
    res.locals.replayKeys = keys;
    next();
  };
}

export function storeAndAcknowledge(deps: WeChatWebhookDeps): RequestHandler {
  return async (_req, res: Response) => {
    const message = res.locals.weChatMessage as WeChatMessage;
    const keys = res.locals.replayKeys as ReplayKeys | undefined;
    await storeThenAcknowledge(deps, res, {
      jobs: deps.jobsFor(message),
      direction: 'inbound',
      successText: 'success',
      context: { ...(deps.accountId !== undefined ? { account: deps.accountId } : {}), msgType: message.msgType, event: message.event, msgId: message.msgId },
      ...(keys ? { seenKeys: seenKeysOf(keys) } : {}),
    });
  };
}

export function weChatWebhookRouter(deps: WeChatWebhookDeps): Router {
  const router = express.Router();
  const path = deps.path ?? '/weChatEvent';
  router.get(path, requireWeChatSignature(deps.weChat.token), answerEchostr);
  router.post(
    path,
    requireWeChatSignature(deps.weChat.token),
    requireFreshTimestamp(deps.now),
    deps.admit,
    express.text({ type: () => true, limit: WECHAT_BODY_LIMIT }),
    readWeChatMessage(deps.weChat),
    refuseReusedSignature(deps),
    storeAndAcknowledge(deps),
  );
  return router;
}
