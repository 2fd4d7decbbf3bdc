/**
 * Wires the two things issue 4 added around the core paths, so that `server.ts` only plugs them in:
 *
 * - Where messages go: one fixed conversation (`VONAGE_CONVERSATION_ID` set), or a conversation per
 *   WeChat user (unset), with the router the inbound worker uses, the recipient rule of outbound
 *   events, and the order keys of outbound jobs.
 * - Media both ways: signed `media_url` links in inbound events (when `PUBLIC_URL` is set) served by
 *   `/media/:id` from a disk cache, and agents' `media_url` uploads for outbound image, voice, video.
 */
import type { Router } from 'express';
import { inboundJobs } from './bridge/accept-inbound';
import { createConversationRouter, type ConversationRouter } from './bridge/conversation-routing';
import { fetchAgentMedia } from './bridge/fetch-agent-media';
import { MediaFileCache } from './bridge/media-cache';
import { MEDIA_LINK_MAX_TTL_MS, mediaLink, mediaLinkKey } from './bridge/media-links';
import { planOutbound } from './bridge/outbound';
import { createOutboundMedia, type OutboundMedia } from './bridge/outbound-media';
import { templateResultJob } from './bridge/template-result';
import { recipientFromBody, recipientFromConversation, type RecipientResolver } from './bridge/outbound-recipient';
import type { Config } from './config';
import { mediaRouter } from './http/media-route';
import type { Logger } from './logger';
import type { NewJob, Store } from './store/store';
import type { VonageClient } from './vonage/client';
import type { RtcEvent } from './vonage/webhook';
import type { WeChatMessage } from './wechat/message';
import { createWeChatMediaClient } from './wechat/media';
import type { AccessTokenManager } from './wechat/token-manager';

export interface ConversationsAndMedia {
  mode: 'fixed' | 'per-user';
  /** The jobs for an accepted WeChat message (webhook path: pure apart from the clock). */
  jobsFor(message: WeChatMessage): NewJob[];
  /** The job for an RTC event (webhook path: pure). */
  planOutbound(event: RtcEvent): NewJob | undefined;
  /** Per-user mode only. */
  router: ConversationRouter | undefined;
  recipientOf: RecipientResolver;
  outboundMedia: OutboundMedia;
  /** `GET /media/:mediaId`. */
  mediaRoute: Router;
  /** Prepares the media cache and logs the mode; call before listening. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createConversationsAndMedia(deps: {
  config: Config;
  store: Store;
  vonage: VonageClient;
  weChatTokens: Pick<AccessTokenManager, 'getToken' | 'invalidate'>;
  logger: Logger;
  now?: () => number;
}): ConversationsAndMedia {
  const { config, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const fixedConversationId = config.vonage.conversationId;
  const perUser = fixedConversationId === undefined;
  const media = config.media ?? {};
  const allowPrivateNetworks = media.allowPrivateNetworks === true;

  const linkKey = mediaLinkKey({ appSecret: config.weChat.appSecret, linkSecret: media.linkSecret });
  const publicUrl = config.publicUrl;
  // Links are minted when the message is accepted and last as long as WeChat keeps the file.
  const mediaUrl = publicUrl === undefined ? undefined : (mediaId: string) => mediaLink(publicUrl, linkKey, mediaId, now() + MEDIA_LINK_MAX_TTL_MS);

  const weChatMedia = createWeChatMediaClient({ baseUrl: config.weChat.apiBaseUrl, tokens: deps.weChatTokens, now });
  const cache = new MediaFileCache({ dir: media.cacheDir ?? './data/media', now, logger: logger.child({ component: 'media-cache' }) });

  const router = perUser
    ? createConversationRouter({ directory: deps.vonage, store, logger: logger.child({ component: 'conversation-routing' }) })
    : undefined;

  return {
    mode: perUser ? 'per-user' : 'fixed',
    // Every message goes to the conversation; a template message's result also becomes its status.
    jobsFor: (message) => {
      const receivedAt = now();
      const jobs = inboundJobs(message, { conversationId: fixedConversationId }, { receivedAt, ...(mediaUrl ? { mediaUrl } : {}) });
      const templateResult = templateResultJob(message, receivedAt);
      return templateResult === undefined ? jobs : [...jobs, templateResult];
    },
    planOutbound: (event) => planOutbound(event, { perUserConversations: perUser }),
    router,
    recipientOf: perUser ? recipientFromConversation(store) : recipientFromBody,
    outboundMedia: createOutboundMedia({
      store,
      weChatMedia,
      fetchMedia: (url, type) => fetchAgentMedia(url, type, { allowPrivateNetworks }),
      logger: logger.child({ component: 'outbound-media' }),
    }),
    mediaRoute: mediaRouter({ linkKey, cache, weChatMedia, logger: logger.child({ component: 'media' }), now }),
    async start() {
      await cache.start();
      if (perUser) logger.info('per-user conversations: each WeChat user gets a Vonage conversation named wechat:<openid>');
      else logger.info({ conversationId: fixedConversationId }, 'fixed conversation: every WeChat user in VONAGE_CONVERSATION_ID');
      if (publicUrl === undefined) {
        logger.info('PUBLIC_URL is not set: inbound image, voice and video events carry no media_url (set it to give agents links to the files)');
      }
      if (allowPrivateNetworks) logger.warn('agent media_url may be http and on private addresses (tests and sandbox only)');
    },
    async stop() {
      await cache.stop();
    },
  };
}
