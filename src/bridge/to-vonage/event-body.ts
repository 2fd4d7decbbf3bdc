/**
 * WeChat message → `custom:wechat:message` event bodies. Pure: values in, values out.
 *
 * A Vonage custom event body must serialise to at most 4096 bytes. WeChat text can be far longer
 * (and a hostile Description can be too), so a body that does not fit is split into ordered parts
 * (`part`, `parts`): nothing is dropped, nothing is rejected (the message model bounds the ids that
 * every part repeats, so there is always room for content).
 */
import { createHash } from 'node:crypto';
import { DEFAULT_ACCOUNT_ID } from '../../accounts';
import { InvalidInputError } from '../../errors';
import type { NestedValue, WeChatMessage } from '../../wechat/message';
import { weChatDedupKey } from '../../wechat/message';

export const VONAGE_BODY_LIMIT_BYTES = 4096;

/** Fields that identify the message: every part repeats them, and they are never moved into content. */
const IDENTITY_FIELDS = new Set(['direction', 'account', 'from', 'to', 'content', 'msg_type', 'msg_id', 'create_time', 'event']);
/**
 * Body keys a WeChat field can never take: the identity fields and the split counters. A field WeChat
 * does not send (a `<Part>` tag) must not pose as a part counter, or be overwritten by one when split.
 */
const RESERVED_KEYS = new Set([...IDENTITY_FIELDS, 'part', 'parts']);

/**
 * An event's msg_id is its dedup key, which embeds the EventKey (a menu URL, up to 1024 bytes). Every
 * part repeats msg_id, so one longer than this is replaced by a digest of itself, `sha256:<hex>`:
 * stable across WeChat's retries and as unique as the key. (A real MsgId, ≤ 20 digits, never is.)
 */
const MAX_MSG_ID_BYTES = 256;
/** The most a single character can cost inside a JSON string (`\u001f`, a lone surrogate `\udc00`). */
const MAX_CHAR_COST = 6;

/** Top-level values are strings (create_time, part and parts numbers); nested WeChat elements are trees of strings. */
export type InboundEventBody = Record<string, string | number | NestedValue>;

const words = (...parts: Array<string | undefined>): string => parts.filter((p) => p !== undefined && p !== '').join(' ');

/** A short readable rendering for types that carry no text, so an agent UI can show something useful. */
export function renderContent(m: WeChatMessage): string {
  const f = m.fields;
  switch (m.msgType) {
    case 'text':
      return f.content ?? '';
    case 'image':
      return '[image]';
    case 'voice':
      return f.recognition ? `[voice] ${f.recognition}` : '[voice]';
    case 'video':
      return '[video]';
    case 'shortvideo':
      return '[short video]';
    case 'location':
      return words('[location]', f.label, `(${f.location_x ?? '?'}, ${f.location_y ?? '?'})`);
    case 'link':
      return words('[link]', f.title, f.url);
    case 'miniprogrampage':
      return words('[mini program]', f.title);
    case 'event':
      return renderEvent(m);
    default:
      // A type this bridge does not know yet: its Content (if any) is still what the user sent.
      return words(`[${m.msgType}]`, f.content);
  }
}

function renderEvent(m: WeChatMessage): string {
  const f = m.fields;
  switch (m.event) {
    case 'subscribe':
      return renderFollow(f.event_key);
    case 'unsubscribe':
      return '[unfollowed the account]';
    case 'SCAN':
      return `[${words('scanned QR code', f.event_key)}]`;
    case 'LOCATION':
      return `[reported location ${f.latitude ?? '?'}, ${f.longitude ?? '?'}]`;
    case 'CLICK':
      return `[${words('menu click', f.event_key)}]`;
    case 'VIEW':
      return `[${words('menu link', f.event_key)}]`;
    default:
      return words(`[event ${m.event ?? 'unknown'}]`, f.content);
  }
}

/**
 * A follow says how it happened in its EventKey: `qrscene_<scene>` (a parametric QR code),
 * `last_trade_no_<no>` (after a payment), `scanbarcode|…` / `scanimage|…` (after scanning a product
 * barcode or image); anything else is shown as the key it is.
 */
function renderFollow(eventKey: string | undefined): string {
  if (!eventKey) return '[followed the account]';
  const after = (prefix: string): string | undefined => (eventKey.startsWith(prefix) ? eventKey.slice(prefix.length) : undefined);
  const scene = after('qrscene_');
  if (scene !== undefined) return `[${words('followed the account via QR code', scene)}]`;
  const tradeNo = after('last_trade_no_');
  if (tradeNo !== undefined) return `[${words('followed the account after payment', tradeNo)}]`;
  const barcode = after('scanbarcode|');
  if (barcode !== undefined) return `[${words('followed the account after scanning a barcode', barcode)}]`;
  const image = after('scanimage|');
  if (image !== undefined) return `[${words('followed the account after scanning an image', image)}]`;
  return `[followed the account, event key ${eventKey}]`;
}

/** Message types whose `media_id` names a file the user sent (fetchable with media/get for 3 days). */
export const MEDIA_MESSAGE_TYPES: ReadonlySet<string> = new Set(['image', 'voice', 'video', 'shortvideo']);

export interface InboundBodyOptions {
  /** The configured id of the account that received the message (`account` of the body). Default `default`. */
  accountId?: string;
  /**
   * A link a Vonage client can open for a user's media (`PUBLIC_URL` + the bridge's signed media
   * route), or undefined when the bridge has no public URL: the body then carries no `media_url`.
   */
  mediaUrl?: (mediaId: string) => string | undefined;
}

/** The whole event body, before any splitting. */
export function toInboundEventBody(m: WeChatMessage, options: InboundBodyOptions = {}): InboundEventBody {
  const createTime = Number(m.createTime);
  const body: InboundEventBody = {
    direction: 'inbound',
    account: options.accountId ?? DEFAULT_ACCOUNT_ID,
    from: m.fromUserName,
    to: m.toUserName,
    content: renderContent(m),
    msg_type: m.msgType,
    msg_id: boundedMsgId(m.msgId ?? weChatDedupKey(m)),
    create_time: Number.isSafeInteger(createTime) ? createTime : m.createTime,
  };
  if (m.event !== undefined) body.event = m.event;
  for (const [key, value] of Object.entries(m.fields)) {
    // The text's `content` is already the rendered content; every other field is kept as is.
    if (!RESERVED_KEYS.has(key)) body[key] = value;
  }
  for (const [key, value] of Object.entries(m.nested)) {
    // A flat field of the same name (a table's reading of the block) wins; the block is still whole in content if split.
    if (!RESERVED_KEYS.has(key) && !(key in body)) body[key] = value;
  }
  const mediaId = m.fields.media_id;
  if (options.mediaUrl && MEDIA_MESSAGE_TYPES.has(m.msgType) && typeof mediaId === 'string' && mediaId !== '') {
    const url = options.mediaUrl(mediaId);
    if (url !== undefined) body.media_url = url;
  }
  return body;
}

function boundedMsgId(msgId: string): string {
  if (utf8Bytes(msgId) <= MAX_MSG_ID_BYTES) return msgId;
  return `sha256:${createHash('sha256').update(msgId, 'utf8').digest('hex')}`;
}

const utf8Bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), 'utf8');

/**
 * Splits one body into bodies that each serialise to at most `limit` bytes.
 *
 * Long non-identity fields that do not fit beside the content are appended to the content
 * stream as `name: value` lines, so they are split with it rather than lost.
 */
export function splitEventBody(body: InboundEventBody, limit = VONAGE_BODY_LIMIT_BYTES): InboundEventBody[] {
  if (utf8Bytes(body) <= limit) return [body];

  const base: InboundEventBody = {};
  let content = body.content === undefined ? '' : fieldText(body.content);
  // Room for the part counters and some content in every part.
  const reserve = utf8Bytes({ part: 99999, parts: 99999 }) + 256;
  const extras = Object.entries(body)
    .filter(([key]) => !IDENTITY_FIELDS.has(key))
    .sort(([, a], [, b]) => utf8Bytes(a) - utf8Bytes(b));
  for (const [key, value] of Object.entries(body)) if (IDENTITY_FIELDS.has(key) && key !== 'content') base[key] = value;
  for (const [key, value] of extras) {
    if (utf8Bytes({ ...base, [key]: value, content: '' }) + reserve <= limit) base[key] = value;
    else content += `\n${key}: ${fieldText(value)}`;
  }

  const budget = limit - utf8Bytes({ ...base, content: '', part: 99999, parts: 99999 });
  // Unreachable for a parsed message (its ids are bounded); a hand-built one must not yield parts
  // over the limit, or one part per character.
  if (budget < MAX_CHAR_COST * 16) {
    throw new InvalidInputError(400, 'message identity fields (from, to, msg_type, msg_id, event) leave no room for content');
  }
  const chunks = chunkBySerialisedSize(content, budget);
  return chunks.map((chunk, index) => ({ ...base, content: chunk, part: index + 1, parts: chunks.length }));
}

/** A body value as text: a nested element as its JSON. */
function fieldText(value: string | number | NestedValue): string {
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Cuts text on code-point boundaries so that each piece's JSON string form fits in `budget` bytes. */
function chunkBySerialisedSize(text: string, budget: number): string[] {
  const chunks: string[] = [];
  let current = '';
  let size = 0;
  for (const char of text) {
    // The cost of a character inside a JSON string: escapes (\n, \u0002, \") count in full.
    const cost = Buffer.byteLength(JSON.stringify(char), 'utf8') - 2;
    if (size + cost > budget && current !== '') {
      chunks.push(current);
      current = '';
      size = 0;
    }
    current += char;
    size += cost;
  }
  chunks.push(current);
  return chunks;
}

/** Every event body (one, or its ordered parts) for a WeChat message. */
export function toInboundEventBodies(m: WeChatMessage, limit = VONAGE_BODY_LIMIT_BYTES, options: InboundBodyOptions = {}): InboundEventBody[] {
  return splitEventBody(toInboundEventBody(m, options), limit);
}
