/**
 * `/weChatEvent`: WeChat's URL verification (GET) and message push (POST), as a chain of tiny
 * middlewares so that each check reads on its own and the order is visible in one place:
 *
 *   signature → fresh timestamp → body (64 KiB) → decrypt + parse → store durably → `success`
 *
 * The signature is checked before the body is even read, so unsigned floods cost almost nothing.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import { InvalidInputError } from '../errors';
import type { NewJob } from '../store/store';
import { unstorableReason } from '../store/storable-text';
import { decryptWeChatMessage, WeChatCryptoError } from '../wechat/crypto';
import { parseWeChatMessage, type WeChatMessage } from '../wechat/message';
import { isFreshTimestamp, verifyWeChatMsgSignature, verifyWeChatSignature } from '../wechat/signature';
import { parseWeChatXml } from '../wechat/xml';
import { storeThenAcknowledge, type DurableAckDeps } from './durable-ack';

export const WECHAT_BODY_LIMIT = '64kb';

export interface WeChatWebhookDeps extends DurableAckDeps {
  weChat: { token: string; appId: string; aesKeys: Buffer[] };
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

/** Reads the pushed XML into `res.locals.weChatMessage`: plain mode, or compatible/safe mode (`encrypt_type=aes`). */
export function readWeChatMessage(weChat: WeChatWebhookDeps['weChat']): RequestHandler {
  return (req, res, next) => {
    const text = typeof req.body === 'string' ? req.body : '';
    if (text.trim() === '') return next(new InvalidInputError(400, 'empty body'));
    const outer = parseWeChatXml(text);
    const encryptType = queryString(req, 'encrypt_type');

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

export function storeAndAcknowledge(deps: WeChatWebhookDeps): RequestHandler {
  return async (_req, res: Response) => {
    const message = res.locals.weChatMessage as WeChatMessage;
    await storeThenAcknowledge(deps, res, {
      jobs: deps.jobsFor(message),
      direction: 'inbound',
      successText: 'success',
      context: { ...(deps.accountId !== undefined ? { account: deps.accountId } : {}), msgType: message.msgType, event: message.event, msgId: message.msgId },
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
    express.text({ type: () => true, limit: WECHAT_BODY_LIMIT }),
    readWeChatMessage(deps.weChat),
    storeAndAcknowledge(deps),
  );
  return router;
}
