/**
 * The WeChat platform emulator's pushes to the account's server: what a user did, as WeChat's XML,
 * signed for the server's mode and delivered as WeChat delivers (push.ts), each delivery in the
 * traffic log and on the user's chat line ("retrying", "delivered"), and the server's answer read
 * as WeChat reads a passive reply (passive-reply.ts): a valid one reaches the user's chat, an
 * invalid one shows the error.
 */
import type { DeliveryAttempt } from '../delivery';
import type { TrafficRecorder } from '../traffic';
import { actionHasMsgId, userActionXml, type UserAction } from './messages';
import { PASSIVE_REPLY_ERROR, readPassiveReply, type ReadPassiveReply } from './passive-reply';
import { deliverPush, signPush } from './push';
import type { ChatItem, PlatformState, UserState } from './state';

export interface PushResult {
  /** The message's MsgId (events have none). */
  msgId: string | undefined;
  /** The passive reply the account's server answered with, as WeChat read it. */
  reply?: ReadPassiveReply;
  /** Why the answer was refused as a reply (the user saw 该公众号暂时无法提供服务). */
  replyError?: string;
  /** The plaintext XML (before any encryption). */
  xml: string;
  deliveries: DeliveryAttempt[];
  /** Whether some delivery got `200`. */
  acknowledged: boolean;
}

/** A user's action, or any XML as it is (for pushes the action builders lack). */
export type PushedAction = UserAction | { kind: 'xml'; xml: string };

/**
 * Pushes `action` to the account's server. With a user and their chat item, the item follows the
 * deliveries and a passive reply lands in the user's chat.
 */
export type PushDispatch = (user: UserState | undefined, action: PushedAction, item?: ChatItem) => Promise<PushResult>;

export interface PushDispatchDeps {
  state: PlatformState;
  traffic: TrafficRecorder;
  /** How long WeChat waits for the server's answer before pushing again. */
  answerTimeoutMs: number;
  /** Aborts the waits and the request in flight (the platform is closing). */
  signal: AbortSignal;
}

export function createPushDispatch(deps: PushDispatchDeps): PushDispatch {
  const { state, traffic } = deps;
  const realNow = state.realNow;

  return async function push(user, action, item) {
    const target = state.server;
    if (!target) throw new Error('WeChat platform: no server configured; call connect({url, token}) first');
    let msgId: string | undefined;
    let xml: string;
    if (action.kind === 'xml') {
      xml = action.xml;
      msgId = /<MsgId>(?:<!\[CDATA\[)?(\d+)/.exec(xml)?.[1];
    } else {
      if (actionHasMsgId(action)) msgId = state.newMsgId();
      xml = userActionXml(action, {
        toUserName: state.accountId,
        fromUserName: user!.openid,
        createTime: Math.floor(realNow() / 1000),
        ...(msgId !== undefined ? { msgId } : {}),
      });
    }
    if (item && msgId) item.msgId = msgId;
    const mode = target.mode ?? 'plain';
    const signed = signPush(xml, {
      token: target.token,
      mode,
      ...(state.aesKey ? { aesKey: state.aesKey } : {}),
      appId: state.appId,
      timestamp: Math.floor(realNow() / 1000),
    });
    const deliveries = await deliverPush({
      url: target.url,
      push: signed,
      answerTimeoutMs: deps.answerTimeoutMs,
      now: realNow,
      signal: deps.signal,
      onDelivery: (delivery) => {
        traffic.record({
          at: delivery.at,
          channel: 'wechat-push',
          caller: 'WeChat',
          method: 'POST',
          path: `${new URL(target.url).pathname}?${signed.query}`,
          requestBody: signed.body,
          ...(delivery.status !== undefined ? { status: delivery.status } : {}),
          ...(delivery.body !== undefined ? { responseBody: delivery.body } : {}),
          ...(delivery.error !== undefined ? { error: delivery.error } : {}),
          durationMs: delivery.durationMs,
          note: [
            delivery.attempt > 1 ? `retry: delivery ${delivery.attempt} of 3, same MsgId` : undefined,
            mode !== 'plain' ? `${mode} mode; the plaintext inside Encrypt:\n${xml}` : undefined,
          ]
            .filter(Boolean)
            .join('\n') || undefined,
        });
        if (user && item) {
          const acknowledged = delivery.status === 200;
          const last = delivery.attempt >= 3;
          const why = delivery.error ?? `HTTP ${delivery.status ?? '?'}`;
          item.delivery = acknowledged
            ? { state: 'delivered', attempts: delivery.attempt }
            : last
              ? { state: 'failed', attempts: delivery.attempt, detail: `该公众号暂时无法提供服务，请稍后再试 (the account's server: ${why})` }
              : { state: 'retrying', attempts: delivery.attempt, detail: `${why}; WeChat pushes again` };
          state.updateChat(user, item);
        }
      },
    });
    const answered = deliveries.find((d) => d.status === 200);
    const result: PushResult = { msgId, xml, deliveries, acknowledged: answered !== undefined };
    const openid = user?.openid ?? /<FromUserName>(?:<!\[CDATA\[)?([^<\]]*)/.exec(xml)?.[1] ?? '';
    const verdict = answered
      ? readPassiveReply(answered.body ?? '', { openid, accountId: state.accountId, mode, token: target.token, appId: state.appId, ...(state.aesKey ? { aesKey: state.aesKey } : {}) })
      : ({ kind: 'none' } as const);
    if (verdict.kind === 'reply' && verdict.reply.mediaId !== undefined && verdict.reply.msgType !== 'music' && user && !state.liveMedia(verdict.reply.mediaId)) {
      result.replyError = `the reply's MediaId is unknown or expired (40007)`;
    } else if (verdict.kind === 'invalid') {
      result.replyError = verdict.reason;
    } else if (verdict.kind === 'reply') {
      result.reply = verdict.reply;
      if (user) {
        state.setTyping(user, false);
        state.addChat(user, { from: 'account', msgType: verdict.reply.msgType, kind: verdict.reply.msgType === 'text' ? 'text' : verdict.reply.msgType === 'image' ? 'image' : 'other', text: verdict.reply.text, ...(verdict.reply.mediaId ? { mediaId: verdict.reply.mediaId } : {}) });
      }
    }
    if (result.replyError !== undefined && user && item) {
      item.delivery = { state: 'failed', attempts: answered!.attempt, detail: `${PASSIVE_REPLY_ERROR} (the passive reply: ${result.replyError})` };
      state.updateChat(user, item);
    }
    return result;
  };
}
