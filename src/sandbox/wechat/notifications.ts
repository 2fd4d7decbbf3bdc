/**
 * The WeChat emulator's template messages and subscription notifications: the account's templates,
 * and the rules of `template/send` and `subscribe/bizsend`, as pure checks the platform calls.
 *
 * Rules, each from WeChat's documentation:
 * - template/send (https://developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage):
 *   `template_id` must be one of the account's templates (40037 invalid template_id); the recipient
 *   must follow the account (43004 require subscribe); every keyword of the template needs a
 *   `{value}` within its type's length (47003 argument invalid); one message per
 *   (openid, client_msg_id) for 10 minutes ("防重入id … 10分钟有效"). Templates do not use the
 *   customer-service window. WeChat answers `{errcode:0, errmsg:"ok", msgid}` and later pushes
 *   TEMPLATESENDJOBFINISH (`failed:user block` when the user refused the account's templates).
 * - subscribe/bizsend (https://developers.weixin.qq.com/doc/service/api/notify/notify/api_sendnewsubscribemsg):
 *   the template must be a subscription template of the account (40037), the user must have
 *   accepted it, and each acceptance allows one notification (43101 user refuse to accept the msg);
 *   keywords as above (47003).
 * - Keyword lengths (the parameter table of both pages): thing 20 characters, character_string,
 *   number, letter and amount 32, symbol and phrase 5, phone_number 17, car_number 8, name 10;
 *   time and date must be non-empty.
 */

export type NotificationKind = 'template' | 'subscribe';

export interface EmulatedTemplate {
  templateId: string;
  kind: NotificationKind;
  title: string;
  /** The keywords the template shows, in order, e.g. `thing1`, `time2`. */
  keywords: Array<{ key: string; label: string }>;
}

/** What the sandbox account has, so the console and tests can send something real-looking. */
export const DEFAULT_TEMPLATES: readonly EmulatedTemplate[] = [
  {
    templateId: 'tmpl_order_update_4rTz9',
    kind: 'template',
    title: 'Order update',
    keywords: [
      { key: 'character_string1', label: 'Order number' },
      { key: 'thing2', label: 'Status' },
      { key: 'time3', label: 'Updated' },
    ],
  },
  {
    templateId: 'tmpl_service_reply_8KqW2',
    kind: 'template',
    title: 'Customer service reply',
    keywords: [
      { key: 'thing1', label: 'Reply' },
      { key: 'time2', label: 'Time' },
    ],
  },
  {
    templateId: 'sub_appointment_reminder_Qm31x',
    kind: 'subscribe',
    title: 'Appointment reminder',
    keywords: [
      { key: 'thing1', label: 'Service' },
      { key: 'time2', label: 'When' },
    ],
  },
];

/** Longest value per keyword type (characters); absent: any non-empty value. */
const KEYWORD_MAX_CHARS: Readonly<Record<string, number>> = {
  thing: 20,
  character_string: 32,
  number: 32,
  letter: 32,
  amount: 32,
  symbol: 5,
  phrase: 5,
  phone_number: 17,
  car_number: 8,
  name: 10,
};

/** `client_msg_id` is honoured for 10 minutes. */
export const CLIENT_MSG_ID_TTL_MS = 10 * 60 * 1000;

const keywordType = (key: string): string => key.replace(/\d+$/, '');

/**
 * The 47003 reason for the data of a send, or undefined when every keyword is there and fits.
 * WeChat's own errmsg reads `argument invalid! data.thing2.value …`.
 */
export function templateDataProblem(template: EmulatedTemplate, data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return 'argument invalid! data is empty';
  const entries = data as Record<string, unknown>;
  for (const { key } of template.keywords) {
    const entry = entries[key];
    const value = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)['value'] : undefined;
    if (typeof value !== 'string' || value.trim() === '') return `argument invalid! data.${key}.value is empty`;
    const max = KEYWORD_MAX_CHARS[keywordType(key)];
    if (max !== undefined && [...value].length > max) return `argument invalid! data.${key}.value exceeds limit ${max}`;
  }
  return undefined;
}

/** A keyword's value as the phone shows it: text as it is, nothing for none, anything else as JSON. */
function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  return value === undefined || value === null ? '' : JSON.stringify(value);
}

/** What the user's phone shows for a template message or a notification. */
export function renderNotification(template: EmulatedTemplate, data: Record<string, { value?: unknown }>): string {
  const lines = template.keywords.map(({ key, label }) => `${label}: ${valueText(data[key]?.value)}`);
  return `[${template.kind === 'template' ? 'template' : 'notification'}] ${template.title} · ${lines.join(' · ')}`;
}
