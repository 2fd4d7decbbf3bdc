/**
 * Outbound Vonage event body → WeChat passive reply XML (被动回复用户消息), the body of the HTTP answer
 * to WeChat's push. Pure: values in, values out.
 *
 * The event body is read exactly as for a customer-service message (custom-message.ts: nested or
 * flat form, `msg_type` default `text`, every value a string), so an agent's event means the same
 * thing whichever channel carries it; the result is then written in the passive reply's own XML.
 *
 * Formats (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html,
 * samples in test/fixtures/replies/): ToUserName = the user's openid (the push's FromUserName),
 * FromUserName = the account's original id (the push's ToUserName), CreateTime in Unix seconds, then
 * per type: text `Content`; image/voice `Image|Voice.MediaId`; video `Video.{MediaId,Title,Description}`;
 * music `Music.{Title,Description,MusicUrl,HQMusicUrl,ThumbMediaId}`; news `ArticleCount` +
 * `Articles.item.{Title,Description,PicUrl,Url}`. No other type can be a passive reply (mpnews,
 * msgmenu, wxcard, miniprogrampage are customer-service only): they are refused with a 400.
 */
import { InvalidInputError } from '../errors';
import { buildCustomSendBody } from './custom-message';
import { buildWeChatXml, type XmlBuildFields } from './xml';

export const PASSIVE_REPLY_TYPES: readonly string[] = ['text', 'image', 'voice', 'video', 'music', 'news'];

export interface PassiveReplyInput {
  /** The user's openid (the push's FromUserName). */
  toUser: string;
  /** The account's original id, `gh_…` (the push's ToUserName). */
  fromAccount: string;
  /** Unix seconds. */
  createTime: number;
  /** The outbound event body. */
  body: Record<string, unknown>;
}

/**
 * Why this event body cannot be a passive reply, or undefined when it can. Checked when a reply is
 * queued, so that the agent hears of a bad event at once instead of when the user next writes.
 */
export function passiveReplyProblem(body: Record<string, unknown>): string | undefined {
  try {
    passiveReplyFields({ toUser: 'openid', fromAccount: 'account', createTime: 0, body });
    return undefined;
  } catch (error) {
    if (error instanceof InvalidInputError) return error.message;
    throw error;
  }
}

/** The plaintext passive reply XML (`<xml><ToUserName>…</xml>`); safe mode wraps it in buildEncryptedReplyXml. */
export function buildPassiveReplyXml(input: PassiveReplyInput): string {
  return buildWeChatXml(passiveReplyFields(input));
}

/** A text reply, e.g. the holding text on WeChat's last delivery. */
export function buildPassiveTextReplyXml(input: Omit<PassiveReplyInput, 'body'> & { content: string }): string {
  return buildPassiveReplyXml({ ...input, body: { msg_type: 'text', content: input.content } });
}

function passiveReplyFields(input: PassiveReplyInput): XmlBuildFields {
  if (typeof input.fromAccount !== 'string' || input.fromAccount === '') {
    throw new InvalidInputError(400, 'the account id (the push ToUserName) is required');
  }
  if (!Number.isSafeInteger(input.createTime) || input.createTime < 0) throw new RangeError('createTime must be Unix seconds');
  const send = buildCustomSendBody({ to: input.toUser, body: input.body });
  const msgType = send['msgtype'] as string;
  if (!PASSIVE_REPLY_TYPES.includes(msgType)) {
    throw new InvalidInputError(
      400,
      `msg_type ${msgType} cannot be a passive reply; passive replies are ${PASSIVE_REPLY_TYPES.join(', ')}`,
    );
  }
  const object = send[msgType] as Record<string, string | undefined>;
  const head: XmlBuildFields = {
    ToUserName: input.toUser,
    FromUserName: input.fromAccount,
    CreateTime: input.createTime,
    MsgType: msgType,
  };
  switch (msgType) {
    case 'text':
      return { ...head, Content: object['content'] };
    case 'image':
      return { ...head, Image: { MediaId: object['media_id'] } };
    case 'voice':
      return { ...head, Voice: { MediaId: object['media_id'] } };
    case 'video':
      return { ...head, Video: { MediaId: object['media_id'], Title: object['title'], Description: object['description'] } };
    case 'music':
      return {
        ...head,
        Music: {
          Title: object['title'],
          Description: object['description'],
          MusicUrl: object['musicurl'],
          HQMusicUrl: object['hqmusicurl'],
          ThumbMediaId: object['thumb_media_id'],
        },
      };
    default: {
      // news: buildCustomSendBody allows exactly one article, which every push may be answered with
      // (more than one only outside replies to text/image/video/news/location messages).
      const articles = (send['news'] as { articles: Array<Record<string, string | undefined>> }).articles;
      return {
        ...head,
        ArticleCount: articles.length,
        Articles: {
          item: articles.map((article) => ({
            Title: article['title'],
            Description: article['description'],
            PicUrl: article['picurl'],
            Url: article['url'],
          })),
        },
      };
    }
  }
}
