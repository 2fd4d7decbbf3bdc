/**
 * `/weChatEvent`: WeChat's URL verification (GET) and message push (POST), as a chain of tiny
 * middlewares so that each step reads on its own and the order is visible in one place:
 *
 *   signed, fresh query → admit (budget) → body (64 KiB) → open the push (wechat/inbound.ts) →
 *   storable → signed query not reused for other content → store durably → `success`
 *
 * The query is checked before the body is even read, so unsigned floods cost almost nothing.
 * Everything about WeChat's protocol is `openPush`'s; this file maps HTTP to it and keeps the
 * store's checks. The answer is due `ackTimeoutMs` after arrival whatever takes the time (ack-budget.ts).
 */
import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import { InvalidInputError } from '../errors';
import type { NewJob } from '../store/store';
import { unstorableReason } from '../store/storable-text';
import { checkPushQuery, openPush, type OpenedPush, type PushAccount, type PushQuery, type PushRefusal } from '../wechat/inbound';
import type { WeChatMessage } from '../wechat/message';
import { verifyWeChatSignature } from '../wechat/signature';
import { storeThenAcknowledge, type DurableAckDeps } from './durable-ack';
import type { PassiveAnswerer } from './passive-answer';
import { isReplayedCredential, replayKeysOf, seenKeysOf, type ReplayKeys } from './replay-guard';

export const WECHAT_BODY_LIMIT = '64kb';

export interface WeChatWebhookDeps extends DurableAckDeps {
  weChat: PushAccount;
  /** The jobs that deliver one accepted message (the bridge decides where it goes). */
  jobsFor: (message: WeChatMessage) => NewJob[];
  now: () => number;
  /** WECHAT_REPLY_MODE passive or auto: the answer may carry a reply (passive-answer.ts). */
  passive?: PassiveAnswerer | undefined;
  /** The account's callback path (`/weChatEvent/{id}`); default `/weChatEvent`, the `default` account's. */
  path?: string;
  /** The account's id, for log lines. */
  accountId?: string;
}

/**
 * A parameter of a parsed query as a single string; repeated or missing parameters are `undefined`.
 * Takes `req.query` once read: Express 5 parses the query string again on every `req.query`.
 */
const queryString = (query: Request['query'], name: string): string | undefined => {
  const value = query[name];
  return typeof value === 'string' ? value : undefined;
};

const pushQueryOf = (req: Request): PushQuery => {
  const { query } = req;
  return {
    timestamp: queryString(query, 'timestamp'),
    nonce: queryString(query, 'nonce'),
    signature: queryString(query, 'signature'),
    msg_signature: queryString(query, 'msg_signature'),
    encrypt_type: queryString(query, 'encrypt_type'),
  };
};

const refusalError = (refusal: PushRefusal): InvalidInputError => new InvalidInputError(refusal.status, refusal.reason);

/** The push's query as read and checked, when its request arrived (epoch ms), and the push as opened, between the steps of one request. */
const checkedQueryOf = (res: Response): PushQuery => res.locals.pushQuery as PushQuery;
const receivedAtOf = (res: Response): number => res.locals.pushReceivedAt as number;
const openedOf = (res: Response): OpenedPush => res.locals.weChatPush as OpenedPush;

export function requireWeChatSignature(token: string): RequestHandler {
  return (req, _res, next) => {
    const { query } = req;
    const ok = verifyWeChatSignature({
      token,
      timestamp: queryString(query, 'timestamp'),
      nonce: queryString(query, 'nonce'),
      signature: queryString(query, 'signature'),
    });
    next(ok ? undefined : new InvalidInputError(401, 'invalid signature'));
  };
}

function answerEchostr(req: Request, res: Response): void {
  res.status(200).type('text/plain').send(queryString(req.query, 'echostr') ?? '');
}

/** A push's signature and timestamp, before its body is read; the arrival time is kept for openPush. */
export function requireSignedPushQuery(token: string, now: () => number): RequestHandler {
  return (req, res, next) => {
    const receivedAt = now();
    const query = pushQueryOf(req);
    const refusal = checkPushQuery(query, token, receivedAt);
    if (refusal) return next(refusalError(refusal));
    res.locals.pushQuery = query;
    res.locals.pushReceivedAt = receivedAt;
    next();
  };
}

/**
 * Opens the pushed body into `res.locals.weChatPush`, after `requireSignedPushQuery` (which read and
 * checked the query). A message with text no store can hold is the sender's fault: 400, so that
 * WeChat stops pushing it.
 */
export function openPushedMessage(weChat: PushAccount): RequestHandler {
  return (req, res, next) => {
    const push = openPush({
      query: checkedQueryOf(res),
      body: typeof req.body === 'string' ? req.body : '',
      account: weChat,
      receivedAtMs: receivedAtOf(res),
      queryChecked: true,
    });
    if (push.kind === 'refused') return next(refusalError(push));
    const unstorable = unstorableReason(push.message);
    if (unstorable !== undefined) return next(new InvalidInputError(400, `message not accepted: ${unstorable}`));
    res.locals.weChatPush = push;
    next();
  };
}

/**
 * Each signed query is remembered (in the store, so every instance sees it) with a digest of the
 * content it came with, for as long as the timestamp is accepted: the same query with the same
 * content is WeChat retrying (answered `success`, the dedup key absorbs it), the same query with
 * other content is a forgery (401). The keys are stored with the message's jobs, so a push whose
 * storing failed (a `503`) is still taken when WeChat retries it.
 */
export function refuseReusedSignature(deps: Pick<WeChatWebhookDeps, 'store' | 'logger'>): RequestHandler {
  return async (_req, res, next) => {
    const { replay } = openedOf(res);
    const keys = replayKeysOf(replay.credential, replay.requestDigest, replay.expiresAt);
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
  return async (req, res: Response) => {
    const { message, mode } = openedOf(res);
    // A passive reply to an encrypted push must be encrypted too.
    const encrypted = mode !== 'plain';
    const passive = deps.passive;
    const keys = res.locals.replayKeys as ReplayKeys | undefined;
    await storeThenAcknowledge(deps, res, {
      jobs: deps.jobsFor(message),
      direction: 'inbound',
      successText: 'success',
      context: { ...(deps.accountId !== undefined ? { account: deps.accountId } : {}), msgType: message.msgType, event: message.event, msgId: message.msgId },
      ...(keys ? { seenKeys: seenKeysOf(keys) } : {}),
      ...(passive ? { answer: () => passive.answer(req, res, message, encrypted) } : {}),
    });
  };
}

export function weChatWebhookRouter(deps: WeChatWebhookDeps): Router {
  const router = express.Router();
  const path = deps.path ?? '/weChatEvent';
  router.get(path, requireWeChatSignature(deps.weChat.token), answerEchostr);
  router.post(
    path,
    requireSignedPushQuery(deps.weChat.token, deps.now),
    deps.admit,
    express.text({ type: () => true, limit: WECHAT_BODY_LIMIT }),
    openPushedMessage(deps.weChat),
    refuseReusedSignature(deps),
    storeAndAcknowledge(deps),
  );
  return router;
}
