/**
 * Outbound event body → the JSON of WeChat's two ways to reach a user outside the reply window.
 * Pure: values in, values out.
 *
 * - Template message (模板消息), `POST /cgi-bin/message/template/send`:
 *   `{touser, template_id, url?, miniprogram?: {appid, pagepath}, client_msg_id?, data: {key: {value, color?}}}`.
 *   `client_msg_id` makes WeChat send one message per (openid, client_msg_id) for 10 minutes, so a
 *   retry of the same outbound event is never a second message.
 *   https://developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage
 *   (wechatpy client/api/message.py `send_template`).
 * - Subscription notification (订阅通知), `POST /cgi-bin/message/subscribe/bizsend`:
 *   `{touser, template_id, page?, miniprogram?: {appid, pagepath}, data: {key: {value}}}`; only to a
 *   user who accepted the template (else 43101).
 *   https://developers.weixin.qq.com/doc/service/api/notify/notify/api_sendnewsubscribemsg
 *
 * The event body names its fields the same way. A data entry may be given as `{ "value": "…" }`
 * (WeChat's shape) or as a plain string, which becomes `{ "value": "…" }`. Every id and value must be
 * a string; a wrong shape throws InvalidInputError(400) naming the field.
 */
import { InvalidInputError } from '../errors';
import { isRecord } from '../values';

export const TEMPLATE_MSG_TYPE = 'template';
export const SUBSCRIBE_MSG_TYPE = 'subscribe';

export type NotificationKind = typeof TEMPLATE_MSG_TYPE | typeof SUBSCRIBE_MSG_TYPE;

export const isNotificationType = (msgType: unknown): msgType is NotificationKind =>
  msgType === TEMPLATE_MSG_TYPE || msgType === SUBSCRIBE_MSG_TYPE;

const invalid = (message: string) => new InvalidInputError(400, message);


function requiredString(body: Record<string, unknown>, field: string, where: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value.trim() === '') throw invalid(`${where}: ${field} must be a non-empty string`);
  return value;
}

function optionalString(body: Record<string, unknown>, field: string, where: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalid(`${where}: ${field} must be a string`);
  return value;
}

function miniprogramOf(body: Record<string, unknown>, where: string): { appid: string; pagepath: string } | undefined {
  const value = body['miniprogram'];
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw invalid(`${where}: miniprogram must be an object {appid, pagepath}`);
  return { appid: requiredString(value, 'appid', `${where} miniprogram`), pagepath: requiredString(value, 'pagepath', `${where} miniprogram`) };
}

function dataOf(body: Record<string, unknown>, where: string, withColor: boolean): Record<string, Record<string, string>> {
  const value = body['data'];
  if (!isRecord(value) || Object.keys(value).length === 0) throw invalid(`${where}: data must be an object of {key: {value}}`);
  // Null prototype: a keyword named `__proto__` stays a keyword instead of replacing the prototype.
  const data = Object.create(null) as Record<string, Record<string, string>>;
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry === 'string') {
      data[key] = { value: entry };
      continue;
    }
    if (!isRecord(entry) || typeof entry['value'] !== 'string') throw invalid(`${where}: data.${key} must be a string or {value: string}`);
    const color = withColor ? optionalString(entry, 'color', `${where} data.${key}`) : undefined;
    data[key] = color === undefined ? { value: entry['value'] } : { value: entry['value'], color };
  }
  return data;
}

/** The template/send body, in the documented field order. */
export function buildTemplateSendBody(input: { to: string; body: Record<string, unknown>; clientMsgId: string }): Record<string, unknown> {
  const where = 'template message';
  const request: Record<string, unknown> = { touser: input.to, template_id: requiredString(input.body, 'template_id', where) };
  const url = optionalString(input.body, 'url', where);
  if (url !== undefined) request['url'] = url;
  const miniprogram = miniprogramOf(input.body, where);
  if (miniprogram !== undefined) request['miniprogram'] = miniprogram;
  request['client_msg_id'] = input.clientMsgId;
  request['data'] = dataOf(input.body, where, true);
  return request;
}

/** The subscribe/bizsend body, in the documented field order. */
export function buildSubscribeSendBody(input: { to: string; body: Record<string, unknown> }): Record<string, unknown> {
  const where = 'subscription notification';
  const request: Record<string, unknown> = { touser: input.to, template_id: requiredString(input.body, 'template_id', where) };
  const page = optionalString(input.body, 'page', where);
  if (page !== undefined) request['page'] = page;
  const miniprogram = miniprogramOf(input.body, where);
  if (miniprogram !== undefined) request['miniprogram'] = miniprogram;
  request['data'] = dataOf(input.body, where, false);
  return request;
}

/**
 * The fallback an outbound body carries for when the reply window is closed: a template message or a
 * subscription notification in the same shape, or undefined when it carries none.
 */
export function fallbackOf(body: Record<string, unknown>): (Record<string, unknown> & { msg_type: NotificationKind }) | undefined {
  const fallback = body['fallback'];
  if (fallback === undefined || fallback === null) return undefined;
  if (!isRecord(fallback) || !isNotificationType(fallback['msg_type'])) {
    throw invalid('fallback must be an object with msg_type "template" or "subscribe"');
  }
  return fallback as Record<string, unknown> & { msg_type: NotificationKind };
}

/**
 * WeChat's msgid from a send answer's raw text, as a string: it can exceed 2^53, so it is read from
 * the text rather than from a parsed number.
 */
export function msgIdOf(answerText: string): string | undefined {
  const match = /"msgid"\s*:\s*"?(\d+)/.exec(answerText);
  return match?.[1];
}
