/**
 * The XML WeChat pushes for what a user does, in the layout of the official samples
 * (test/fixtures/messages/official): strings in CDATA, numbers bare, `MsgId` a bare 64-bit integer.
 * Pure: values in, XML out.
 */

export type UserAction =
  | { kind: 'text'; content: string }
  | { kind: 'image'; picUrl: string; mediaId: string }
  | { kind: 'location'; latitude: number; longitude: number; scale?: number; label?: string }
  | { kind: 'follow' }
  | { kind: 'unfollow' };

export interface UserMessageEnvelope {
  /** The account's original id (`gh_…`). */
  toUserName: string;
  /** The user's openid. */
  fromUserName: string;
  /** Seconds since the epoch. */
  createTime: number;
  /** Digits; messages have one, events do not. */
  msgId?: string;
}

type Field = readonly [tag: string, value: string | number, form: 'cdata' | 'bare'];

export function userActionXml(action: UserAction, envelope: UserMessageEnvelope): string {
  const head: Field[] = [
    ['ToUserName', envelope.toUserName, 'cdata'],
    ['FromUserName', envelope.fromUserName, 'cdata'],
    ['CreateTime', envelope.createTime, 'bare'],
  ];
  const msgId: Field[] = envelope.msgId !== undefined ? [['MsgId', envelope.msgId, 'bare']] : [];
  switch (action.kind) {
    case 'text':
      return render([...head, ['MsgType', 'text', 'cdata'], ['Content', action.content, 'cdata'], ...msgId]);
    case 'image':
      return render([
        ...head,
        ['MsgType', 'image', 'cdata'],
        ['PicUrl', action.picUrl, 'cdata'],
        ['MediaId', action.mediaId, 'cdata'],
        ...msgId,
      ]);
    case 'location':
      return render([
        ...head,
        ['MsgType', 'location', 'cdata'],
        ['Location_X', action.latitude, 'bare'],
        ['Location_Y', action.longitude, 'bare'],
        ['Scale', action.scale ?? 15, 'bare'],
        ['Label', action.label ?? '', 'cdata'],
        ...msgId,
      ]);
    case 'follow':
      return render([...head, ['MsgType', 'event', 'cdata'], ['Event', 'subscribe', 'cdata'], ['EventKey', '', 'cdata']]);
    case 'unfollow':
      return render([...head, ['MsgType', 'event', 'cdata'], ['Event', 'unsubscribe', 'cdata'], ['EventKey', '', 'cdata']]);
  }
}

/** Whether WeChat gives this action a MsgId (messages do, events do not). */
export const actionHasMsgId = (action: UserAction): boolean => action.kind !== 'follow' && action.kind !== 'unfollow';

function render(fields: readonly Field[]): string {
  const lines = fields.map(([tag, value, form]) => {
    if (form === 'bare') return `<${tag}>${typeof value === 'number' ? formatNumber(value) : value}</${tag}>`;
    return `<${tag}><![CDATA[${String(value).replaceAll(']]>', ']]]]><![CDATA[>')}]]></${tag}>`;
  });
  return `<xml>\n${lines.join('\n')}\n</xml>`;
}

/** Coordinates keep their decimals as typed (23.134521), integers stay integers. */
function formatNumber(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError('not a finite number');
  return String(value);
}

/**
 * The push after a template message was handed to the user (or not): `Status` is `success`,
 * `failed:user block` or `failed: system failed`, with the send's msgid as `MsgID` (sic).
 * developers.weixin.qq.com, 模板消息 "事件推送"; wechatpy events.py TemplateSendJobFinishEvent.
 */
export function templateJobFinishXml(envelope: Omit<UserMessageEnvelope, 'msgId'> & { msgId: string; status: string }): string {
  return render([
    ['ToUserName', envelope.toUserName, 'cdata'],
    ['FromUserName', envelope.fromUserName, 'cdata'],
    ['CreateTime', envelope.createTime, 'bare'],
    ['MsgType', 'event', 'cdata'],
    ['Event', 'TEMPLATESENDJOBFINISH', 'cdata'],
    ['MsgID', envelope.msgId, 'bare'],
    ['Status', envelope.status, 'cdata'],
  ]);
}

/**
 * The push when a user answers a subscription popup: one `List` per template, nested in
 * `SubscribeMsgPopupEvent` (developers.weixin.qq.com, 订阅通知 "事件推送" subscribe_msg_popup_event).
 */
export function subscribePopupXml(envelope: Omit<UserMessageEnvelope, 'msgId'> & { templateId: string; accepted: boolean }): string {
  return subscribeEventXml(envelope, 'subscribe_msg_popup_event', 'SubscribeMsgPopupEvent', [
    ['TemplateId', envelope.templateId, 'cdata'],
    ['SubscribeStatusString', envelope.accepted ? 'accept' : 'reject', 'cdata'],
    ['PopupScene', 2, 'bare'],
  ]);
}

/** The push after a subscription notification was sent: its msgid and result, nested in `SubscribeMsgSentEvent`. */
export function subscribeSentXml(envelope: Omit<UserMessageEnvelope, 'msgId'> & { templateId: string; msgId: string }): string {
  return subscribeEventXml(envelope, 'subscribe_msg_sent_event', 'SubscribeMsgSentEvent', [
    ['TemplateId', envelope.templateId, 'cdata'],
    ['MsgID', envelope.msgId, 'bare'],
    ['ErrorCode', 0, 'bare'],
    ['ErrorStatus', 'success', 'cdata'],
  ]);
}

function subscribeEventXml(envelope: Omit<UserMessageEnvelope, 'msgId'>, event: string, wrapper: string, list: Field[]): string {
  const head = render([
    ['ToUserName', envelope.toUserName, 'cdata'],
    ['FromUserName', envelope.fromUserName, 'cdata'],
    ['CreateTime', envelope.createTime, 'bare'],
    ['MsgType', 'event', 'cdata'],
    ['Event', event, 'cdata'],
  ]);
  const nested = render(list).replace(/^<xml>/, `<${wrapper}><List>`).replace(/<\/xml>$/, `</List></${wrapper}>`);
  return head.replace(/\n<\/xml>$/, `\n${nested}\n</xml>`);
}
