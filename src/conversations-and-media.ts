/**
 * Wires what sits around the core paths, for every configured Official Account, so that
 * `server.ts` only plugs it in:
 *
 * - Where messages go: per account, one fixed conversation (its `conversationId`, or
 *   `VONAGE_CONVERSATION_ID`), or a conversation per WeChat user, with the router the inbound worker
 *   uses, the recipient (and sending account) of outbound events, and the order keys of outbound jobs.
 * - Media both ways, per account (each fetches and uploads with its own access token): signed
 *   `media_url` links in inbound events (when `PUBLIC_URL` is set) served by `/media/…` from a disk
 *   cache, and agents' `media_url` uploads for outbound image, voice, video.
 */
import path from 'node:path';
import express, { type Router } from 'express';
import { isDefaultAccount, type Account } from './accounts';
import { inboundJobs } from './bridge/to-vonage/inbound-jobs';
import { createConversationRouter, type ConversationRouter } from './bridge/to-vonage/conversation-routing';
import { fetchAgentMedia } from './bridge/media/fetch-agent-media';
import { MediaFileCache } from './bridge/media/cache';
import { accountMediaLinkKey, MEDIA_LINK_MAX_TTL_MS, mediaLink, mediaRoutePathOf } from './bridge/media/links';
import { planOutbound } from './bridge/to-wechat/plan-outbound';
import { createOutboundMedia, type OutboundMedia } from './bridge/media/outbound-media';
import { templateResultJob } from './bridge/to-wechat/template-result';
import { createRecipientResolver, type RecipientResolver } from './bridge/to-wechat/recipient';
import { accountsOf, type Config } from './config';
import { mediaRouter } from './http/media-route';
import type { Logger } from './logger';
import type { NewJob, Store } from './store/store';
import type { VonageClient } from './vonage/client';
import type { RtcEvent } from './vonage/webhook';
import type { WeChatMessage } from './wechat/message';
import { createWeChatMediaClient } from './wechat/media';
import type { AccessTokenManager } from './wechat/token-manager';

type Tokens = Pick<AccessTokenManager, 'getToken' | 'invalidate'>;

export interface ConversationsAndMedia {
  /** `per-user` when any account uses per-user conversations. */
  mode: 'fixed' | 'per-user';
  accounts: Account[];
  /** The jobs for an accepted WeChat message of an account (webhook path: pure apart from the clock). */
  jobsFor(accountId: string): (message: WeChatMessage) => NewJob[];
  /** The job for an RTC event (webhook path: pure). */
  planOutbound(event: RtcEvent): NewJob | undefined;
  /** When any account is in per-user mode. */
  router: ConversationRouter | undefined;
  /** The recipient of an outbound event and the account it is sent from. */
  recipientOf: RecipientResolver;
  /** An account's uploader of agents' media. */
  outboundMediaOf(accountId: string): OutboundMedia;
  /** `GET /media/…` of every account. */
  mediaRoute: Router;
  /** Prepares the media caches and logs the modes; call before listening. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createConversationsAndMedia(deps: {
  config: Config;
  store: Store;
  vonage: VonageClient;
  /** The access tokens of an account (one manager per AppID). */
  tokensOf: (accountId: string) => Tokens;
  logger: Logger;
  now?: () => number;
}): ConversationsAndMedia {
  const { config, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const accounts = accountsOf(config);
  const perUser = accounts.some((account) => account.conversationId === undefined);
  const media = config.media ?? {};
  const allowPrivateNetworks = media.allowPrivateNetworks === true;
  const publicUrl = config.publicUrl;
  const cacheRoot = media.cacheDir ?? './data/media';

  const perAccount = new Map(
    accounts.map((account) => {
      const routePath = mediaRoutePathOf(account.id);
      const linkKey = accountMediaLinkKey(account.id, { appSecret: account.appSecret, linkSecret: media.linkSecret });
      // Links are minted when the message is accepted and last as long as WeChat keeps the file.
      const mediaUrl =
        publicUrl === undefined ? undefined : (mediaId: string) => mediaLink(publicUrl, linkKey, mediaId, now() + MEDIA_LINK_MAX_TTL_MS, routePath);
      const weChatMedia = createWeChatMediaClient({ baseUrl: config.weChat.apiBaseUrl, tokens: deps.tokensOf(account.id), now });
      const accountLogger = isDefaultAccount(account.id) ? logger : logger.child({ account: account.id });
      // The default account keeps the cache directory it had; a media_id is only unique within its account.
      const cacheDir = isDefaultAccount(account.id) ? cacheRoot : path.join(cacheRoot, 'accounts', account.id);
      const cache = new MediaFileCache({ dir: cacheDir, now, logger: accountLogger.child({ component: 'media-cache' }) });
      return [
        account.id,
        {
          account,
          cache,
          // Every message goes to the conversation; a template message's result also becomes its status.
          jobsFor: (message: WeChatMessage) => {
            const receivedAt = now();
            const target = { conversationId: account.conversationId, accountId: account.id };
            const jobs = inboundJobs(message, target, { receivedAt, ...(mediaUrl ? { mediaUrl } : {}) });
            const templateResult = templateResultJob(message, receivedAt, account.id);
            return templateResult === undefined ? jobs : [...jobs, templateResult];
          },
          outboundMedia: createOutboundMedia({
            store,
            weChatMedia,
            fetchMedia: (url, type) => fetchAgentMedia(url, type, { allowPrivateNetworks }),
            logger: accountLogger.child({ component: 'outbound-media' }),
            accountId: account.id,
          }),
          mediaRoute: mediaRouter({ linkKey, cache, weChatMedia, logger: accountLogger.child({ component: 'media' }), now, routePath }),
        },
      ] as const;
    }),
  );
  const accountState = (accountId: string) => {
    const state = perAccount.get(accountId);
    if (state === undefined) throw new Error(`no account ${accountId} is configured`);
    return state;
  };

  const router = perUser
    ? createConversationRouter({ directory: deps.vonage, store, logger: logger.child({ component: 'conversation-routing' }) })
    : undefined;
  const mediaRoutes = express.Router();
  for (const state of perAccount.values()) mediaRoutes.use(state.mediaRoute);

  return {
    mode: perUser ? 'per-user' : 'fixed',
    accounts,
    jobsFor: (accountId) => accountState(accountId).jobsFor,
    planOutbound: (event) => planOutbound(event, { accounts }),
    router,
    recipientOf: createRecipientResolver(accounts, store),
    outboundMediaOf: (accountId) => accountState(accountId).outboundMedia,
    mediaRoute: mediaRoutes,
    async start() {
      for (const state of perAccount.values()) await state.cache.start();
      for (const account of accounts) {
        const context = { account: account.id, appId: account.appId };
        if (account.conversationId === undefined) {
          logger.info(context, 'per-user conversations: each WeChat user of the account gets a Vonage conversation of their own');
        } else {
          logger.info({ ...context, conversationId: account.conversationId }, 'fixed conversation: every WeChat user of the account in one conversation');
        }
      }
      if (publicUrl === undefined) {
        logger.info('PUBLIC_URL is not set: inbound image, voice and video events carry no media_url (set it to give agents links to the files)');
      }
      if (allowPrivateNetworks) logger.warn('agent media_url may be http and on private addresses (tests and sandbox only)');
    },
    async stop() {
      for (const state of perAccount.values()) await state.cache.stop();
    },
  };
}
