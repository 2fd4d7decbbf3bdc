/**
 * Outbound Vonage event body → WeChat customer-service (客服) JSON. Pure: values in, values out.
 *
 * The mapping (one WeChat message type per event; `msg_type` defaults to `text`):
 *
 * - Nested form, every type: the event body carries WeChat's own type object under the type's key,
 *   exactly as WeChat prints it: `{ "msg_type": "image", "image": { "media_id": "…" } }`,
 *   `{ "msg_type": "news", "news": { "articles": [ { "title": "…", "url": "…" } ] } }`.
 * - Flat form, every type: the same fields directly on the event body in WeChat's snake_case,
 *   `{ "msg_type": "image", "media_id": "…" }`; text is `{ "content": "…" }` (the contract's shape);
 *   news takes `articles: [...]` or the one article's fields flat (`title`, `description`, `url`, `picurl`);
 *   msgmenu takes `head_content`, `list`, `tail_content`. Flat is unambiguous because only the
 *   fields of the one selected type are read (an inbound-style `content` rendering beside an
 *   image's `media_id` is simply ignored).
 * - When the type's key is present it wins and the flat fields are not read: the two forms never mix.
 * - `kf_account` (flat) or `customservice: { kf_account }` (nested) → `customservice.kf_account`.
 *
 * Only the fields in the table below are sent, in WeChat's documented order (so the output is
 * byte-identical to the official examples in test/fixtures/custom-send); unknown fields are dropped.
 * Every value must be a string: WeChat ids are opaque strings and we never coerce them.
 * A missing required field or a wrong shape throws InvalidInputError(400) naming the field.
 *
 * Sources: https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage
 * (parameter table: title/description optional; musicurl, hqmusicurl, thumb_media_id, appid, pagepath required).
 */
import { InvalidInputError } from '../errors';
import { isRecord } from '../values';

interface FieldSpec {
  readonly name: string;
  readonly required: boolean;
}

const required = (name: string): FieldSpec => ({ name, required: true });
const optional = (name: string): FieldSpec => ({ name, required: false });

/** Types whose WeChat object is a flat record of string fields, in WeChat's order. */
const FIELD_TABLE: Readonly<Record<string, readonly FieldSpec[]>> = {
  text: [required('content')],
  image: [required('media_id')],
  voice: [required('media_id')],
  // The doc examples send thumb_media_id with video, but wechatpy and others omit it: optional.
  video: [required('media_id'), optional('thumb_media_id'), optional('title'), optional('description')],
  music: [optional('title'), optional('description'), required('musicurl'), required('hqmusicurl'), required('thumb_media_id')],
  mpnews: [required('media_id')],
  mpnewsarticle: [required('article_id')],
  wxcard: [required('card_id')],
  miniprogrampage: [optional('title'), required('appid'), required('pagepath'), required('thumb_media_id')],
};

/**
 * A news card's one article. WeChat marks every article field optional; we require `title`
 * because a card without one renders as an empty box, which nobody means to send.
 */
const NEWS_ARTICLE_FIELDS: readonly FieldSpec[] = [required('title'), optional('description'), optional('url'), optional('picurl')];

const MSGMENU_ITEM_FIELDS: readonly FieldSpec[] = [required('id'), required('content')];

/** Every customer-service type we build, in the order used by error messages. */
export const CUSTOM_MESSAGE_TYPES: readonly string[] = [...Object.keys(FIELD_TABLE), 'news', 'msgmenu'];

/**
 * WeChat's documented key order puts `msgtype` after the type object for msgmenu (and before it
 * everywhere else). JSON key order means nothing to WeChat; we keep the doc's order so that our
 * bytes equal the official examples.
 */
const MSGTYPE_AFTER_OBJECT: ReadonlySet<string> = new Set(['msgmenu']);

export interface CustomSendInput {
  /** The recipient's openid. */
  to: string;
  /** WeChat msgtype; defaults to `body.msg_type`, then `text`. */
  msgType?: string;
  /** The outbound Vonage event body (see the mapping at the top of this file). */
  body: Record<string, unknown>;
}

export type TypingCommand = 'Typing' | 'CancelTyping';

/** `{"touser","msgtype",<type>:{…},"customservice"?}` for `POST /cgi-bin/message/custom/send`. */
export function buildCustomSendBody(input: CustomSendInput): Record<string, unknown> {
  const touser = requireOpenId(input.to);
  const body = input.body ?? {};
  const msgType = input.msgType ?? body['msg_type'] ?? 'text';
  if (typeof msgType !== 'string' || !CUSTOM_MESSAGE_TYPES.includes(msgType)) {
    throw new InvalidInputError(
      400,
      `unsupported msg_type ${JSON.stringify(msgType)}; supported: ${CUSTOM_MESSAGE_TYPES.join(', ')}`,
    );
  }

  const typeObject = buildTypeObject(msgType, body);
  const out: Record<string, unknown> = { touser };
  if (!MSGTYPE_AFTER_OBJECT.has(msgType)) out['msgtype'] = msgType;
  out[msgType] = typeObject;
  if (MSGTYPE_AFTER_OBJECT.has(msgType)) out['msgtype'] = msgType;

  const kfAccount = readKfAccount(body);
  if (kfAccount !== undefined) out['customservice'] = { kf_account: kfAccount };
  return out;
}

/** `{"touser","command"}` for `POST /cgi-bin/message/custom/typing`. */
export function buildTypingBody(to: string, command: TypingCommand): Record<string, unknown> {
  if (command !== 'Typing' && command !== 'CancelTyping') {
    throw new InvalidInputError(400, `typing command must be Typing or CancelTyping, got ${JSON.stringify(command)}`);
  }
  return { touser: requireOpenId(to), command };
}

function requireOpenId(to: unknown): string {
  if (typeof to !== 'string' || to.trim() === '') {
    throw new InvalidInputError(400, 'to (the recipient openid) is required');
  }
  return to;
}

/** The type's own object, nested (`body[msgType]`) or flat (fields on `body`). */
function buildTypeObject(msgType: string, body: Record<string, unknown>): Record<string, unknown> {
  const nested = body[msgType];
  const nestedForm = nested !== undefined && nested !== null;
  if (nestedForm && !isRecord(nested)) {
    throw new InvalidInputError(400, `body.${msgType} must be an object`);
  }
  const source = nestedForm ? nested : body;
  const where = nestedForm ? `body.${msgType}` : 'body';

  if (msgType === 'news') return buildNews(source, where, nestedForm);
  if (msgType === 'msgmenu') return buildMsgMenu(source, where);
  return pickFields(source, FIELD_TABLE[msgType] ?? [], where, msgType);
}

function buildNews(source: Record<string, unknown>, where: string, nestedForm: boolean): Record<string, unknown> {
  let articles: unknown = source['articles'];
  // Flat form may also give the single article's fields directly on the body.
  if (articles === undefined && !nestedForm) articles = [source];
  if (!Array.isArray(articles) || articles.length === 0) {
    throw new InvalidInputError(400, `msg_type news needs articles (${where}.articles: one article)`);
  }
  // Current docs: one article per customer-service news message (more gives 45008).
  if (articles.length > 1) {
    throw new InvalidInputError(400, `msg_type news takes exactly one article, got ${articles.length} (${where}.articles)`);
  }
  const article: unknown = articles[0];
  const articleWhere = articles === source['articles'] ? `${where}.articles[0]` : where;
  if (!isRecord(article)) throw new InvalidInputError(400, `${articleWhere} must be an object`);
  return { articles: [pickFields(article, NEWS_ARTICLE_FIELDS, articleWhere, 'news')] };
}

function buildMsgMenu(source: Record<string, unknown>, where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const head = readString(source, 'head_content', where);
  if (head !== undefined) out['head_content'] = head;
  const list = source['list'];
  if (!Array.isArray(list) || list.length === 0) {
    throw new InvalidInputError(400, `msg_type msgmenu needs list (${where}.list: [{ id, content }, …])`);
  }
  out['list'] = list.map((item, index) => {
    const itemWhere = `${where}.list[${index}]`;
    if (!isRecord(item)) throw new InvalidInputError(400, `${itemWhere} must be an object with id and content`);
    return pickFields(item, MSGMENU_ITEM_FIELDS, itemWhere, 'msgmenu');
  });
  const tail = readString(source, 'tail_content', where);
  if (tail !== undefined) out['tail_content'] = tail;
  return out;
}

function pickFields(
  source: Record<string, unknown>,
  fields: readonly FieldSpec[],
  where: string,
  msgType: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const value = readString(source, field.name, where);
    if (value === undefined || (field.required && value === '')) {
      if (field.required) {
        throw new InvalidInputError(400, `msg_type ${msgType} needs ${field.name} (${where}.${field.name})`);
      }
      continue;
    }
    out[field.name] = value;
  }
  return out;
}

/** A string field, undefined when absent; anything else than a string is refused, never coerced. */
function readString(source: Record<string, unknown>, name: string, where: string): string | undefined {
  const value = source[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new InvalidInputError(400, `${where}.${name} must be a string`);
  return value;
}

function readKfAccount(body: Record<string, unknown>): string | undefined {
  const customservice = body['customservice'];
  if (customservice !== undefined && customservice !== null) {
    if (!isRecord(customservice)) throw new InvalidInputError(400, 'body.customservice must be an object');
    const nested = readString(customservice, 'kf_account', 'body.customservice');
    if (nested) return nested;
  }
  const flat = readString(body, 'kf_account', 'body');
  return flat || undefined;
}
