/**
 * The typed model of an inbound WeChat message or event, declared by field tables (wechatpy's
 * messages.py / events.py style): one table row per field, `[snake_case name, where it is in the XML]`.
 *
 * Every value stays a string exactly as sent. Types and events not in the tables are passed through,
 * never rejected, and for every type any top-level text field the tables do not name is carried along
 * under its generic snake_case name, so a field WeChat adds tomorrow still reaches the bridge. Nested
 * elements (a subscription-message `List`, a mass-send `ArticleUrlResult`, beacons) are carried along
 * whole in `nested`, as snake_case trees whose leaves are strings.
 */
import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors';
import { parseWeChatXml, type XmlElement, type XmlNode } from './xml';

export interface WeChatMessage {
  /** Our account's original id (gh_…). */
  toUserName: string;
  /** The user's openid. */
  fromUserName: string;
  /** Unix seconds, decimal digits. */
  createTime: string;
  msgType: string;
  /** MsgId (64-bit, so a string); for the *JOBFINISH events WeChat spells it MsgID. */
  msgId: string | undefined;
  /**
   * `<Event>` in the case WeChat sent it (SCAN, LOCATION, CLICK, VIEW are upper case). Kept whatever the
   * MsgType: a `device_event` carries `bind` / `unbind` in it.
   */
  event: string | undefined;
  /** Type-specific fields, snake_case, strings only; a null-prototype object. */
  fields: Readonly<Record<string, string>>;
  /**
   * Every top-level element that is not a single text (a block with children, or a repeated tag), by its
   * snake_case name: children by snake_case name, repeated elements as arrays, every leaf a string.
   * Null-prototype objects throughout. A block the tables flatten into `fields` is carried here too.
   */
  nested: Readonly<Record<string, NestedValue>>;
}

/** A nested element as the bridge passes it on: text, children by snake_case tag, or every occurrence. */
export type NestedValue = string | NestedObject | NestedValue[];
export interface NestedObject {
  [key: string]: NestedValue;
}

export type WeChatEventMessage = WeChatMessage & { msgType: 'event'; event: string };

export function isWeChatEvent(message: WeChatMessage): message is WeChatEventMessage {
  return message.msgType === 'event' && message.event !== undefined;
}

/** Where a field comes from: a tag path ('ScanCodeInfo/ScanType') or a reader for list-valued data. */
type FieldSource = string | ((root: XmlElement) => string | undefined);
type FieldTable = readonly (readonly [field: string, source: FieldSource])[];

/**
 * Tags that never become `fields`: the common ones are properties of WeChatMessage, and `Encrypt` is
 * the safe-mode envelope (a compatible-mode body parsed as is must not carry its ciphertext along).
 */
const NON_FIELD_TAGS = new Set(['ToUserName', 'FromUserName', 'CreateTime', 'MsgType', 'MsgId', 'MsgID', 'Event', 'Encrypt']);

/** Never field names, whatever a caller-built root contains (parseWeChatXml already drops these tags). */
const UNSAFE_FIELDS = new Set(['__proto__', 'constructor', 'prototype']);

const VIDEO: FieldTable = [
  ['media_id', 'MediaId'],
  ['thumb_media_id', 'ThumbMediaId'],
];

/** Messages by MsgType (looked up lower-cased). */
export const WECHAT_MESSAGE_FIELDS: Readonly<Record<string, FieldTable>> = {
  text: [
    ['content', 'Content'],
    ['msg_data_id', 'MsgDataId'], // set when the text comes from an article
    ['idx', 'Idx'],
    ['biz_msg_menu_id', 'bizmsgmenuid'], // a msgmenu click arrives as text carrying the chosen item id
  ],
  image: [
    ['pic_url', 'PicUrl'],
    ['media_id', 'MediaId'],
  ],
  voice: [
    ['media_id', 'MediaId'],
    ['format', 'Format'],
    ['recognition', 'Recognition'], // only when speech recognition is switched on
    ['media_id_16k', 'MediaId16K'],
  ],
  video: VIDEO,
  shortvideo: VIDEO,
  location: [
    ['location_x', 'Location_X'], // latitude
    ['location_y', 'Location_Y'], // longitude
    ['scale', 'Scale'],
    ['label', 'Label'],
  ],
  link: [
    ['title', 'Title'],
    ['description', 'Description'],
    ['url', 'Url'],
  ],
  miniprogrampage: [
    ['app_id', 'AppId'],
    ['title', 'Title'],
    ['page_path', 'PagePath'],
    ['thumb_url', 'ThumbUrl'],
    ['thumb_media_id', 'ThumbMediaId'],
  ],
};

const EVENT_KEY: FieldTable = [['event_key', 'EventKey']];
const QR_SCENE: FieldTable = [...EVENT_KEY, ['ticket', 'Ticket']];
const MENU: FieldTable = [...EVENT_KEY, ['menu_id', 'MenuId']];
// Menu pop-ups report their result in a nested info element; it is flattened into plain fields named
// after the inner tags. The photo list becomes `pic_count` (as WeChat states it) and `pic_md5_sums`,
// the PicMd5Sum values in document order joined by ',' (hex digests never contain a comma).
const SCAN_CODE: FieldTable = [
  ...EVENT_KEY,
  ['scan_type', 'ScanCodeInfo/ScanType'],
  ['scan_result', 'ScanCodeInfo/ScanResult'],
];
const SEND_PICS: FieldTable = [
  ...EVENT_KEY,
  ['pic_count', 'SendPicsInfo/Count'],
  ['pic_md5_sums', readPicMd5Sums],
];
const KF_SESSION: FieldTable = [['kf_account', 'KfAccount']];

/** Events by Event (looked up lower-cased; the `event` property keeps WeChat's case). */
export const WECHAT_EVENT_FIELDS: Readonly<Record<string, FieldTable>> = {
  subscribe: QR_SCENE, // via a parametric QR code: EventKey = 'qrscene_' + scene, plus Ticket
  unsubscribe: EVENT_KEY,
  scan: QR_SCENE, // an existing follower scanned a parametric QR code: EventKey = scene
  location: [
    ['latitude', 'Latitude'],
    ['longitude', 'Longitude'],
    ['precision', 'Precision'],
  ],
  click: MENU,
  view: MENU, // EventKey is the URL
  view_miniprogram: MENU, // EventKey is the page path
  scancode_push: SCAN_CODE,
  scancode_waitmsg: SCAN_CODE,
  pic_sysphoto: SEND_PICS,
  pic_photo_or_album: SEND_PICS,
  pic_weixin: SEND_PICS,
  location_select: [
    ...EVENT_KEY,
    ['location_x', 'SendLocationInfo/Location_X'],
    ['location_y', 'SendLocationInfo/Location_Y'],
    ['scale', 'SendLocationInfo/Scale'],
    ['label', 'SendLocationInfo/Label'],
    ['poiname', 'SendLocationInfo/Poiname'],
  ],
  templatesendjobfinish: [['status', 'Status']],
  masssendjobfinish: [
    ['status', 'Status'],
    ['total_count', 'TotalCount'],
    ['filter_count', 'FilterCount'],
    ['sent_count', 'SentCount'],
    ['error_count', 'ErrorCount'],
    ['copyright_check_state', 'CopyrightCheckResult/CheckState'],
  ],
  kf_create_session: KF_SESSION,
  kf_close_session: KF_SESSION,
  kf_switch_session: [
    ['from_kf_account', 'FromKfAccount'],
    ['to_kf_account', 'ToKfAccount'],
  ],
};

/**
 * The longest id WeChat puts in a common field, with room to spare: openids are 28 characters,
 * original ids 15, MsgIds at most 20 digits, event names well under 64. The bound keeps every
 * event part's identity (repeated in each part) far below Vonage's 4096-byte body limit.
 */
export const MAX_WECHAT_ID_LENGTH = 128;

/** Reads the typed model from a parsed `<xml>` root. A root without the four common fields is not a WeChat message. */
export function parseWeChatMessage(root: XmlElement): WeChatMessage {
  const toUserName = text(root, 'ToUserName');
  const fromUserName = text(root, 'FromUserName');
  const createTime = text(root, 'CreateTime');
  const msgType = text(root, 'MsgType');
  if (!toUserName || !fromUserName || !createTime || !msgType || !/^\d{1,15}$/.test(createTime)) {
    throw new InvalidInputError(400, 'not a WeChat message');
  }
  const event = text(root, 'Event');
  const msgId = text(root, 'MsgId') ?? text(root, 'MsgID');
  const ids = { ToUserName: toUserName, FromUserName: fromUserName, MsgType: msgType, Event: event, MsgId: msgId };
  for (const [tag, value] of Object.entries(ids)) {
    if (value !== undefined && value.length > MAX_WECHAT_ID_LENGTH) {
      throw new InvalidInputError(400, `not a WeChat message: ${tag} is longer than ${MAX_WECHAT_ID_LENGTH} characters`);
    }
  }
  const table =
    (msgType === 'event' && event !== undefined ? lookup(WECHAT_EVENT_FIELDS, event) : lookup(WECHAT_MESSAGE_FIELDS, msgType)) ?? [];

  const fields = Object.create(null) as Record<string, string>;
  const claimedTags = new Set<string>();
  for (const [field, source] of table) {
    if (typeof source === 'string') claimedTags.add(source.split('/')[0]!);
    const value = typeof source === 'string' ? textAt(root, source) : source(root);
    if (value !== undefined) fields[field] = value;
  }
  const nested = Object.create(null) as Record<string, NestedValue>;
  for (const [tag, node] of Object.entries(root)) {
    if (NON_FIELD_TAGS.has(tag)) continue;
    const field = snakeCase(tag);
    if (field === '' || UNSAFE_FIELDS.has(field)) continue;
    if (typeof node !== 'string') {
      if (!(field in nested)) nested[field] = toNestedValue(node);
    } else if (!claimedTags.has(tag) && !(field in fields)) {
      fields[field] = node;
    }
  }

  return {
    toUserName,
    fromUserName,
    createTime,
    msgType,
    msgId,
    event,
    fields: Object.freeze(fields),
    nested: Object.freeze(nested),
  };
}

// The parsed tree is already bounded (depth, element count) by parseWeChatXml, so this recursion is too.
function toNestedValue(node: XmlNode): NestedValue {
  if (typeof node === 'string') return node;
  if (Array.isArray(node)) return node.map(toNestedValue);
  const object = Object.create(null) as NestedObject;
  for (const [tag, child] of Object.entries(node)) {
    const key = snakeCase(tag);
    // Two tags that snake-case alike (`PicUrl`, `Pic_Url`): the first one in the document is kept.
    if (key !== '' && !UNSAFE_FIELDS.has(key) && !(key in object)) object[key] = toNestedValue(child);
  }
  return object;
}

/** parseWeChatXml + parseWeChatMessage. Throws InvalidInputError(400) for anything that is not a WeChat message. */
export function readWeChatMessage(xmlText: string): WeChatMessage {
  return parseWeChatMessage(parseWeChatXml(xmlText));
}

/**
 * The key WeChat's retries share. Messages: `msg:<FromUserName>:<MsgId>` (MsgId alone has collided
 * between users). Events, and anything without a MsgId:
 * `evt:<FromUserName>:<CreateTime>:<Event or ''>:<weChatContentDigest>`. FromUserName + CreateTime
 * + Event + EventKey is not enough: two subscription-message results, two pop-ups with different
 * templates or two session switches of one user in one second differ only in other fields. WeChat's
 * retries of one push carry the same content, so the digest is the same for each of them.
 */
export function weChatDedupKey(message: WeChatMessage): string {
  if (message.msgType !== 'event' && message.msgId !== undefined) {
    return `msg:${message.fromUserName}:${message.msgId}`;
  }
  return `evt:${message.fromUserName}:${message.createTime}:${message.event ?? ''}:${weChatContentDigest(message)}`;
}

/**
 * sha256 hex of the message's whole content in a canonical form (every field and nested element, keys
 * sorted), so the same push gives the same digest however its XML was laid out (whitespace, CDATA or
 * not, tag order) and any difference in content gives another one.
 */
export function weChatContentDigest(message: WeChatMessage): string {
  const content = {
    to: message.toUserName,
    from: message.fromUserName,
    create_time: message.createTime,
    msg_type: message.msgType,
    msg_id: message.msgId ?? null,
    event: message.event ?? null,
    fields: message.fields,
    nested: message.nested,
  };
  return createHash('sha256').update(canonicalJson(content), 'utf8').digest('hex');
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

/**
 * `PicUrl` → `pic_url`, `Location_X` → `location_x`, `AgentID` → `agent_id`, `HQMusicUrl` → `hq_music_url`.
 * Every pattern is linear (fixed-width lookahead, no nested quantifiers): tag names come from the sender.
 */
export function snakeCase(tag: string): string {
  return tag
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])(?=[A-Z][a-z])/g, '$1_')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toLowerCase();
}

function lookup(tables: Readonly<Record<string, FieldTable>>, name: string): FieldTable | undefined {
  const key = name.toLowerCase();
  return Object.hasOwn(tables, key) ? tables[key] : undefined;
}

/** The node's text when it is a single text element; anything else (missing, repeated, nested) is undefined. */
function text(element: XmlElement, tag: string): string | undefined {
  const node: XmlNode | undefined = element[tag];
  return typeof node === 'string' ? node : undefined;
}

function textAt(root: XmlElement, path: string): string | undefined {
  let node: XmlNode | undefined = root;
  for (const tag of path.split('/')) {
    if (node === undefined || typeof node === 'string' || Array.isArray(node)) return undefined;
    node = node[tag];
  }
  return typeof node === 'string' ? node : undefined;
}

function readPicMd5Sums(root: XmlElement): string | undefined {
  const picsInfo = childElement(root, 'SendPicsInfo');
  if (picsInfo === undefined) return undefined;
  const items = childElement(picsInfo, 'PicList')?.['item']; // an empty <PicList/> parses as '', not an element
  const list = items === undefined ? [] : Array.isArray(items) ? items : [items];
  const sums: string[] = [];
  for (const item of list) {
    const sum = typeof item === 'object' && !Array.isArray(item) ? item['PicMd5Sum'] : undefined;
    if (typeof sum === 'string') sums.push(sum);
  }
  return sums.join(',');
}

function childElement(element: XmlElement | undefined, tag: string): XmlElement | undefined {
  const node = element?.[tag];
  return node !== undefined && typeof node === 'object' && !Array.isArray(node) ? node : undefined;
}
