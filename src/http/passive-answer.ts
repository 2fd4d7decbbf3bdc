/**
 * The webhook's side of passive-reply mode (bridge/passive-replies.ts): once a push is stored, the
 * answer to WeChat's request carries the user's next reply.
 *
 * - A reply waiting (or deposited within 4.5 s of the request's arrival) is the answer, as passive
 *   reply XML (encrypted and signed when the push was): `delivered` `via: "passive"` once written.
 * - None by then: the request is left unanswered, so that WeChat gives up at 5 s and delivers the push
 *   again (the dedup key makes the copy no second event) and the next delivery holds again. On the
 *   last delivery (WeChat delivers a push three times at most, dropping each connection that has
 *   no answer after 5 s) the answer is the holding text, or `success`, and the reply, when it
 *   comes, waits for the user's next message.
 *
 * Pushes that cannot be answered with a message (most events: unsubscribe, VIEW, LOCATION, template
 * and mass-send reports) get `success` at once.
 */
import type { Request, Response } from 'express';
import { setTimeout as delay } from 'node:timers/promises';
import { accountUserKey, DEFAULT_ACCOUNT_ID } from '../accounts';
import type { PassiveReplies, PassiveReply } from '../bridge/to-wechat/passive-replies';
import type { Logger } from '../logger';
import type { SeenKeys } from '../store/store';
import { buildEncryptedReplyXml } from '../wechat/crypto';
import { weChatContentDigest, type WeChatMessage } from '../wechat/message';
import { buildPassiveReplyXml, buildPassiveTextReplyXml } from '../wechat/passive-reply';
import { arrivalOf } from './ack-budget';

/** The latest a reply is written: half a second inside WeChat's 5 s, for the network on the way back. */
export const PASSIVE_HOLD_MS = 4_500;
/** The first delivery and two retries (the doc quoted above). */
export const WECHAT_DELIVERIES = 3;
/** Tries to store a delivered reply's status (200 ms doubling: about 6 s in all). */
const STATUS_TRIES = 5;
/** An unanswered request that WeChat did not hang up by then is closed by us. */
const ABANDON_AFTER_MS = 15_000;

/**
 * Events a passive reply may answer: following, scanning a QR code, a menu click, a scan that waits for
 * a message (事件推送 doc: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html).
 */
const ANSWERABLE_EVENTS: ReadonlySet<string> = new Set(['subscribe', 'SCAN', 'CLICK', 'scancode_waitmsg']);

export interface PassiveAnswerDeps {
  replies: Pick<PassiveReplies, 'isPassive' | 'waitFor' | 'putBack' | 'settle'>;
  store: SeenKeys;
  logger: Logger;
  /** The account whose callback this is: its keys seal the answer, its id scopes the mailbox. */
  accountId?: string;
  weChat: { token: string; appId: string; aesKeys: Buffer[] };
  /** WECHAT_PASSIVE_HOLDING_TEXT. */
  holdingText: string | undefined;
  now: () => number;
  holdMs?: number;
}

export type PassiveAnswerer = ReturnType<typeof createPassiveAnswerer>;

export function createPassiveAnswerer(deps: PassiveAnswerDeps) {
  const holdMs = deps.holdMs ?? PASSIVE_HOLD_MS;
  const { logger } = deps;
  /** The mailbox of the push's sender: one per account and openid. */
  const userOf = (message: WeChatMessage): string => accountUserKey(deps.accountId ?? DEFAULT_ACCOUNT_ID, message.fromUserName);

  /** 1, 2, 3: which delivery of this push this is, counted in the store (a retry may reach another instance). */
  async function deliveryNumber(message: WeChatMessage): Promise<number> {
    const key = `passive-push:${userOf(message)}:${weChatContentDigest(message)}`;
    const expiresAt = deps.now() + 10 * 60 * 1000;
    for (let n = 1; n < WECHAT_DELIVERIES; n += 1) {
      if (await deps.store.markSeen(`${key}#${n}`, expiresAt)) return n;
    }
    return WECHAT_DELIVERIES;
  }

  /** The XML answer, encrypted and signed with the push's own nonce when the push was encrypted. */
  function sealed(req: Request, plaintext: string, encrypted: boolean): string {
    if (!encrypted) return plaintext;
    const nonce = typeof req.query['nonce'] === 'string' ? req.query['nonce'] : '';
    return buildEncryptedReplyXml({
      plaintext,
      aesKey: deps.weChat.aesKeys[0]!,
      appId: deps.weChat.appId,
      token: deps.weChat.token,
      timestamp: String(Math.floor(deps.now() / 1000)),
      nonce,
    });
  }

  /** Writes the answer; true once it is handed to the connection, false when WeChat hung up first. */
  function write(res: Response, body: string, type: string): Promise<boolean> {
    if (res.destroyed || res.writableEnded) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      res.once('finish', () => resolve(true));
      res.once('close', () => resolve(res.writableFinished));
      res.status(200).type(type).send(body);
    });
  }

  async function answerWith(req: Request, res: Response, message: WeChatMessage, reply: PassiveReply, encrypted: boolean): Promise<void> {
    const openid = message.fromUserName;
    const context = { openid, conversationId: reply.outbound.conversationId, eventId: reply.outbound.eventId };
    let xml: string;
    try {
      const createTime = Math.floor(deps.now() / 1000);
      xml = sealed(req, buildPassiveReplyXml({ toUser: openid, fromAccount: message.toUserName, createTime, body: reply.outbound.body }), encrypted);
    } catch (error) {
      // Checked when it was queued; a reply that still cannot be built fails rather than blocking the queue.
      logger.error({ ...context, err: error }, 'could not build a passive reply');
      await deps.replies.settle(reply, { status: 'failed', errorCode: 'invalid_event', errorMessage: (error as Error).message });
      await write(res, 'success', 'text/plain');
      return;
    }
    if (await write(res, xml, 'application/xml')) {
      logger.debug(context, 'answered the push with a passive reply');
      // WeChat has it: try hard to say so (else its expiry reports it uncertain). The answer is out
      // already, so these tries hold nobody up.
      for (let attempt = 0; ; attempt += 1) {
        try {
          await deps.replies.settle(reply, { status: 'delivered', via: 'passive' });
          break;
        } catch (error) {
          if (attempt >= STATUS_TRIES - 1) throw error;
          logger.warn({ ...context, err: error }, 'could not store the status of a delivered passive reply; retrying');
          await delay(200 * 2 ** attempt);
        }
      }
    } else {
      logger.warn(context, 'WeChat hung up before the passive reply was written; it waits for the next push');
      await deps.replies.putBack(userOf(message), reply);
    }
  }

  return {
    /**
     * Answers a stored push: at once with `success` when it is not for passive replies, else as
     * described at the top of this file. `encrypted`: the push came with `encrypt_type=aes`.
     */
    async answer(req: Request, res: Response, message: WeChatMessage, encrypted: boolean): Promise<void> {
      try {
        await hold(req, res, message, encrypted);
      } catch (error) {
        // The push is stored whatever happens here: a plain `success` loses nothing but this reply's speed.
        logger.error({ openid: message.fromUserName, err: error }, 'passive reply lookup failed; answered success');
        if (!res.headersSent && !res.destroyed) res.status(200).type('text/plain').send('success');
      }
    },
  };

  async function hold(req: Request, res: Response, message: WeChatMessage, encrypted: boolean): Promise<void> {
    const openid = message.fromUserName;
    const answerable = message.msgType !== 'event' || ANSWERABLE_EVENTS.has(message.event ?? '');
    const user = userOf(message);
    if (!answerable || !(await deps.replies.isPassive(user))) {
      await write(res, 'success', 'text/plain');
      return;
    }
    const delivery = await deliveryNumber(message);
    const hungUp = new AbortController();
    res.once('close', () => hungUp.abort());
    const deadline = deps.now() + Math.max(0, holdMs - (performance.now() - arrivalOf(res)));
    const reply = await deps.replies.waitFor(user, deadline, hungUp.signal);
    if (reply) {
      if (hungUp.signal.aborted) await deps.replies.putBack(user, reply);
      else await answerWith(req, res, message, reply, encrypted);
      return;
    }
    if (hungUp.signal.aborted) return;
    if (delivery >= WECHAT_DELIVERIES) {
      logger.info({ openid, delivery }, 'no reply within the last delivery; the reply will answer the next message');
      if (deps.holdingText === undefined) await write(res, 'success', 'text/plain');
      else {
        const createTime = Math.floor(deps.now() / 1000);
        const text = buildPassiveTextReplyXml({ toUser: openid, fromAccount: message.toUserName, createTime, content: deps.holdingText });
        await write(res, sealed(req, text, encrypted), 'application/xml');
      }
      return;
    }
    // Unanswered, WeChat delivers the push again after its 5 s.
    logger.debug({ openid, delivery }, 'no reply yet; leaving the push unanswered so that WeChat delivers it again');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        res.destroy();
        resolve();
      }, ABANDON_AFTER_MS);
      timer.unref();
      res.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
