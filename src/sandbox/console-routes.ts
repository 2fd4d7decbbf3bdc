/**
 * What the bridge serves in sandbox mode only, mounted through `createApp`'s `extraRoutes`:
 *
 * - `/` and its assets: the console (static files from src/sandbox/console, no framework, no CDN);
 * - `/sandbox/api/...`: what the console does as the WeChat user (the platform emulator's user
 *   actions), a Server-Sent Events stream of every change and of the raw traffic, and the two things
 *   an agent's own backend would do for it: mint a Client SDK user token, upload media to WeChat;
 * - `/sandbox/vonage/...`: a plain pass-through to the Vonage emulator, so the agent pane talks the
 *   Conversation API with its user token from the console's origin, like any Vonage client.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { type Express, type Request, type Response } from 'express';
import type { Logger } from '../logger';
import { isRecord } from '../values';
import type { DemoBot } from './demo-bot';
import type { TrafficRecorder } from './traffic';
import type { VonageEmulator } from './vonage/emulator';
import type { WeChatPlatform } from './wechat/platform';

export interface ConsoleDeps {
  weChat: WeChatPlatform;
  /** The agent that answers every message (switched from the console). */
  demoBot?: Pick<DemoBot, 'enabled' | 'setEnabled'>;
  vonage: VonageEmulator;
  traffic: TrafficRecorder;
  agent: { name: string; displayName: string };
  /** A Client SDK user token (`sub` = the agent's user name) signed with the application's key. */
  mintAgentToken: () => string;
  /** To upload the agent's images to WeChat, as the account's owner would. */
  weChatCredentials: { appId: string; appSecret: string };
  /**
   * Several Official Accounts (the first is `weChat`'s): the phone pane picks one, and every
   * `/sandbox/api/wechat/…` call and the state take `?account=<id>`. Default: `weChat` alone, as `default`.
   */
  accounts?: ConsoleAccount[];
  logger: Logger;
}

export interface ConsoleAccount {
  /** The bridge's configured id (`default`, or its callback path's last part). */
  id: string;
  /** What the picker shows. */
  label: string;
  weChat: WeChatPlatform;
  weChatCredentials: { appId: string; appSecret: string };
}

export interface ConsoleRoutes {
  mount(app: Express): void;
  /** Ends the open event streams (a server does not close while they last). */
  close(): void;
}

/** Big enough for a phone photo as a data URL; WeChat's own image limit is 10 MB. */
const JSON_LIMIT = '15mb';
const HEARTBEAT_MS = 15_000;

/**
 * The failures a user can switch on from the console to watch the bridge retry and dead-letter,
 * through the emulators' own failure controls (`script`, `inject`). WeChat's -1 is its documented
 * "system busy" global return code; 503 is Vonage's answer when the service is unavailable.
 */
export const CONSOLE_FAULTS = {
  'vonage-503': { label: 'Vonage answers 503', durationMs: 20_000 },
  'vonage-slow': { label: 'Vonage answers after 6 s', durationMs: 20_000 },
  'wechat-busy': { label: 'WeChat answers errcode -1 (system busy)', durationMs: 20_000 },
  'wechat-slow': { label: 'WeChat answers after 6 s', durationMs: 20_000 },
} as const;
export type ConsoleFault = keyof typeof CONSOLE_FAULTS;
const SEND_PATH = '/cgi-bin/message/custom/send';
const SLOW_MS = 6_000;
/** More than any burst of requests during a fault; whatever is left is dropped when it ends. */
const FAULT_REQUESTS = 1_000;

/** The console's files: beside this module when run from src (ts-jest), in src/ when run from dist. */
export function consoleDirectory(): string {
  const candidates = [path.join(__dirname, 'console'), path.join(__dirname, '..', '..', 'src', 'sandbox', 'console')];
  const found = candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
  if (!found) throw new Error(`sandbox console files not found (looked in ${candidates.join(', ')})`);
  return found;
}

export function createConsoleRoutes(deps: ConsoleDeps): ConsoleRoutes {
  const { vonage, traffic, logger } = deps;
  const accounts: ConsoleAccount[] = deps.accounts ?? [
    { id: 'default', label: 'Sandbox Official Account', weChat: deps.weChat, weChatCredentials: deps.weChatCredentials },
  ];
  /** The account a request names with `?account=` (the first when it names none), or undefined for an unknown one. */
  const accountOf = (req: Request): ConsoleAccount | undefined => {
    const named = req.query['account'];
    if (named === undefined || named === '') return accounts[0];
    return typeof named === 'string' ? accounts.find((a) => a.id === named) : undefined;
  };
  const answerUnknownAccount = (req: Request, res: Response): void => {
    const named = req.query['account'];
    res.status(404).json({ error: `no account ${typeof named === 'string' ? named : JSON.stringify(named)} in this sandbox` });
  };
  const streams = new Set<Response>();
  let closed = false;
  const unsubscribe: Array<() => void> = [];

  const broadcast = (event: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of streams) res.write(frame);
  };
  unsubscribe.push(traffic.subscribe((entry) => broadcast('traffic', entry)));
  for (const account of accounts) unsubscribe.push(account.weChat.onChange((change) => broadcast('wechat', { ...change, account: account.id })));
  unsubscribe.push(vonage.onChange((change) => broadcast('vonage', change)));
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(': keep-alive\n\n');
  }, HEARTBEAT_MS);
  heartbeat.unref();

  const vonageOrigin = new URL(vonage.baseUrl).origin;
  // A new one per start: a page that reconnects to a restarted sandbox sees it change and reloads.
  const instanceId = randomUUID();

  // Each fault lasts its duration; a fault of one emulator clears that emulator's queue when it ends.
  const faults = new Map<ConsoleFault, { until: number; timer: NodeJS.Timeout }>();
  const faultState = () => [...faults.entries()].map(([fault, { until }]) => ({ fault, label: CONSOLE_FAULTS[fault].label, until }));
  const clearEmulator = (fault: ConsoleFault) =>
    fault.startsWith('vonage') ? vonage.clearScript() : accounts.forEach((account) => account.weChat.clearInjected());
  function endFault(fault: ConsoleFault): void {
    const active = faults.get(fault);
    if (!active) return;
    clearTimeout(active.timer);
    faults.delete(fault);
    clearEmulator(fault);
    broadcast('faults', faultState());
  }
  function applyFault(fault: ConsoleFault): void {
    switch (fault) {
      case 'vonage-503':
        vonage.script(Array.from({ length: FAULT_REQUESTS }, () => ({ status: 503 })));
        break;
      case 'vonage-slow':
        vonage.script(Array.from({ length: FAULT_REQUESTS }, () => ({ delayMs: SLOW_MS })));
        break;
      // WeChat's faults hit every account: it is one platform.
      case 'wechat-busy':
        for (const { weChat } of accounts) weChat.inject(SEND_PATH, Array.from({ length: FAULT_REQUESTS }, () => ({ errcode: -1, errmsg: 'system error' })));
        break;
      case 'wechat-slow':
        for (const { weChat } of accounts) weChat.inject(SEND_PATH, Array.from({ length: FAULT_REQUESTS }, () => ({ delayMs: SLOW_MS })));
        break;
    }
  }
  function startFault(fault: ConsoleFault): void {
    // One fault per emulator at a time: the new one replaces the other.
    for (const [other, active] of faults) {
      if (other.split('-')[0] === fault.split('-')[0]) {
        clearTimeout(active.timer);
        faults.delete(other);
      }
    }
    clearEmulator(fault);
    applyFault(fault);
    const { durationMs } = CONSOLE_FAULTS[fault];
    const timer = setTimeout(() => endFault(fault), durationMs);
    timer.unref();
    faults.set(fault, { until: Date.now() + durationMs, timer });
    broadcast('faults', faultState());
  }

  function state(account: ConsoleAccount) {
    const { weChat } = account;
    return {
      instanceId,
      faults: faultState(),
      account: { id: weChat.accountId, appId: account.weChatCredentials.appId, configuredId: account.id, label: account.label },
      accounts: accounts.map((a) => ({ id: a.id, label: a.label, originalId: a.weChat.accountId })),
      pushMode: weChat.pushMode,
      accountType: weChat.accountType,
      demoBot: deps.demoBot?.enabled ?? false,
      clockOffsetMs: weChat.clockOffsetMs,
      users: weChat.users().map((user) => ({ ...user, chat: weChat.chat(user.openid) })),
      agent: deps.agent,
      vonageApiBase: '/sandbox/vonage/v1',
      traffic: traffic.recent(300),
    };
  }

  /** Runs a user action in the background: the push may take 15 s when the server is silent. */
  function inBackground(what: string, action: () => Promise<unknown>): void {
    action().catch((error: unknown) => logger.warn({ err: error }, `sandbox: ${what} failed`));
  }

  function userOr404(req: Request, res: Response, weChat: WeChatPlatform): string | undefined {
    const openid = String(req.params['openid']);
    if (weChat.user(openid)) return openid;
    res.status(404).json({ error: `no simulated user ${openid}` });
    return undefined;
  }

  /** The platform of the request's account; answers 404 itself for an unknown account. */
  function platformOr404(req: Request, res: Response): WeChatPlatform | undefined {
    const account = accountOf(req);
    if (account === undefined) answerUnknownAccount(req, res);
    return account?.weChat;
  }

  const api = express.Router();
  api.use(express.json({ limit: JSON_LIMIT }));

  api.get('/state', (req, res) => {
    const account = accountOf(req);
    if (account === undefined) {
      answerUnknownAccount(req, res);
      return;
    }
    res.json(state(account));
  });

  // Every WeChat action below acts on the request's account.
  api.use('/wechat', (req, res, next) => {
    const weChat = platformOr404(req, res);
    if (weChat === undefined) return;
    res.locals.weChat = weChat;
    next();
  });
  const platformOf = (res: Response): WeChatPlatform => res.locals.weChat as WeChatPlatform;

  api.get('/stream', (req, res) => {
    // Closed (the sandbox is stopping): drop the connection. A browser's EventSource retries after a
    // network error until the next sandbox answers; after an HTTP error it would give up for good.
    if (closed) {
      req.socket.destroy();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    res.write(`event: hello\ndata: ${JSON.stringify({ instanceId })}\n\n`);
    streams.add(res);
    req.on('close', () => streams.delete(res));
  });

  // The account's templates, as its admin page lists them (for the agent's "send as template").
  api.get('/wechat/templates', (_req, res) => {
    res.json(platformOf(res).templates());
  });

  api.post('/wechat/users', (req, res) => {
    const weChat = platformOf(res);
    const given = bodyOf(req).nickname;
    const nickname = typeof given === 'string' ? given.slice(0, 40) : undefined;
    inBackground('add user', async () => {
      const user = await weChat.addUser({ ...(nickname ? { nickname } : {}), follow: false });
      await weChat.follow(user.openid);
    });
    res.status(202).json({ ok: true });
  });

  api.post('/wechat/users/:openid/messages', (req, res) => {
    const weChat = platformOf(res);
    const openid = userOr404(req, res, weChat);
    if (!openid) return;
    const user = weChat.user(openid)!;
    if (!user.following) {
      res.status(409).json({ error: `${user.nickname} does not follow the account` });
      return;
    }
    const body = bodyOf(req);
    switch (body['kind']) {
      case 'text': {
        const content = typeof body['content'] === 'string' ? body['content'] : '';
        if (content.trim() === '') {
          res.status(400).json({ error: 'empty text' });
          return;
        }
        inBackground('send text', () => weChat.sendText(openid, content));
        break;
      }
      case 'image': {
        const image = parseDataUrl(body['dataUrl']);
        if (!image) {
          res.status(400).json({ error: 'dataUrl must be a data: URL of a PNG, JPEG or GIF image' });
          return;
        }
        inBackground('send image', () => weChat.sendImage(openid, image));
        break;
      }
      case 'location': {
        const latitude = Number(body['latitude']);
        const longitude = Number(body['longitude']);
        if (!Number.isFinite(latitude) || !Number.isFinite(longitude)) {
          res.status(400).json({ error: 'latitude and longitude must be numbers' });
          return;
        }
        const label = typeof body['label'] === 'string' ? body['label'] : undefined;
        inBackground('send location', () => weChat.sendLocation(openid, { latitude, longitude, scale: 15, ...(label ? { label } : {}) }));
        break;
      }
      default:
        res.status(400).json({ error: 'kind must be text, image or location' });
        return;
    }
    res.status(202).json({ ok: true });
  });

  // The user answers a subscription popup (one notification of that template per acceptance).
  api.post('/wechat/users/:openid/subscriptions', (req, res) => {
    const weChat = platformOf(res);
    const openid = userOr404(req, res, weChat);
    if (!openid) return;
    const templateId = bodyOf(req).templateId;
    if (typeof templateId !== 'string' || !weChat.templates().some((t) => t.templateId === templateId && t.kind === 'subscribe')) {
      res.status(400).json({ error: 'templateId must name one of the account\'s subscription templates' });
      return;
    }
    const accepted = bodyOf(req).accepted !== false;
    inBackground('subscription', () => weChat.answerSubscription(openid, templateId, accepted));
    res.status(202).json({ ok: true });
  });

  api.post('/wechat/users/:openid/follow', (req, res) => {
    const weChat = platformOf(res);
    const openid = userOr404(req, res, weChat);
    if (!openid) return;
    inBackground('follow', () => weChat.follow(openid));
    res.status(202).json({ ok: true });
  });

  api.post('/wechat/users/:openid/unfollow', (req, res) => {
    const weChat = platformOf(res);
    const openid = userOr404(req, res, weChat);
    if (!openid) return;
    inBackground('unfollow', () => weChat.unfollow(openid));
    res.status(202).json({ ok: true });
  });

  api.post('/wechat/clock', (req, res) => {
    const weChat = platformOf(res);
    const hours = Number(bodyOf(req).hours);
    if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 365) {
      res.status(400).json({ error: 'hours must be a positive number' });
      return;
    }
    weChat.advanceClock(hours * 60 * 60 * 1000);
    res.json({ clockOffsetMs: weChat.clockOffsetMs });
  });

  api.post('/wechat/expire-tokens', (_req, res) => {
    platformOf(res).expireTokens();
    res.json({ ok: true });
  });

  api.post('/wechat/push-mode', (req, res) => {
    const weChat = platformOf(res);
    const mode = bodyOf(req).mode;
    if (mode !== 'plain' && mode !== 'compatible' && mode !== 'safe') {
      res.status(400).json({ error: 'mode must be plain, compatible or safe' });
      return;
    }
    weChat.setPushMode(mode);
    res.json({ pushMode: weChat.pushMode });
  });

  api.post('/wechat/account-type', (req, res) => {
    const weChat = platformOf(res);
    const type = bodyOf(req).type;
    if (type !== 'verified' && type !== 'unverified-subscription') {
      res.status(400).json({ error: 'type must be verified or unverified-subscription' });
      return;
    }
    weChat.setAccountType(type);
    res.json({ accountType: weChat.accountType });
  });

  api.post('/demo-bot', (req, res) => {
    const enabled = bodyOf(req).enabled;
    if (typeof enabled !== 'boolean' || !deps.demoBot) {
      res.status(400).json({ error: 'enabled must be true or false' });
      return;
    }
    deps.demoBot.setEnabled(enabled);
    res.json({ demoBot: deps.demoBot.enabled });
  });

  api.post('/faults', (req, res) => {
    const fault = bodyOf(req).fault;
    if (fault === 'none') {
      for (const active of [...faults.keys()]) endFault(active);
    } else if (typeof fault === 'string' && Object.hasOwn(CONSOLE_FAULTS, fault)) {
      startFault(fault as ConsoleFault);
    } else {
      res.status(400).json({ error: `fault must be none or one of ${Object.keys(CONSOLE_FAULTS).join(', ')}` });
      return;
    }
    res.json({ faults: faultState() });
  });

  api.get('/wechat/media/:mediaId', (req, res) => {
    const media = platformOf(res).media(String(req.params['mediaId']));
    if (!media) {
      res.status(404).type('text/plain').send('no such media (or older than 3 days)');
      return;
    }
    res.type(media.contentType).send(media.bytes);
  });

  api.post('/agent/token', (_req, res) => {
    res.json({ token: deps.mintAgentToken(), user: deps.agent });
  });

  // The agent's backend puts the image on WeChat (media/upload) and the agent sends its media_id.
  api.post('/agent/media', async (req, res) => {
    // The account of the conversation the agent writes in: a media_id is only good for its own account.
    const account = accountOf(req);
    if (account === undefined) {
      answerUnknownAccount(req, res);
      return;
    }
    const image = parseDataUrl(bodyOf(req).dataUrl);
    if (!image) {
      res.status(400).json({ error: 'dataUrl must be a data: URL of a PNG, JPEG or GIF image' });
      return;
    }
    try {
      res.json(await uploadToWeChat(account.weChat.baseUrl, account.weChatCredentials, image));
    } catch (error) {
      res.status(502).json({ error: error instanceof Error ? error.message : String(error) });
    }
  });

  // A transparent proxy: method, path, query, Authorization and body go through unchanged.
  const proxy = express.Router();
  proxy.use(express.raw({ type: () => true, limit: '2mb' }));
  proxy.use(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const name of ['authorization', 'content-type', 'accept']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD' && Buffer.isBuffer(req.body) && req.body.length > 0;
    try {
      const upstream = await fetch(`${vonageOrigin}${req.url}`, {
        method: req.method,
        headers,
        ...(hasBody ? { body: req.body as Buffer } : {}),
      });
      const body = Buffer.from(await upstream.arrayBuffer());
      res.status(upstream.status);
      const type = upstream.headers.get('content-type');
      if (type) res.type(type);
      res.send(body);
    } catch (error) {
      res.status(502).json({ error: `Vonage emulator unreachable: ${error instanceof Error ? error.message : String(error)}` });
    }
  });

  return {
    mount(app) {
      app.use('/sandbox/api', api);
      app.use('/sandbox/vonage', proxy);
      app.use(express.static(consoleDirectory(), { index: 'index.html', maxAge: 0 }));
    },
    close() {
      closed = true;
      clearInterval(heartbeat);
      for (const { timer } of faults.values()) clearTimeout(timer);
      faults.clear();
      for (const off of unsubscribe.splice(0)) off();
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif']);

/** A JSON request body as an object (an empty one for anything else). */
function bodyOf(req: Request): Record<string, unknown> {
  const body: unknown = req.body;
  return isRecord(body) ? body : {};
}

function parseDataUrl(value: unknown): { bytes: Buffer; contentType: string; filename: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^data:([\w/+.-]+);base64,([A-Za-z0-9+/=]+)$/.exec(value);
  if (!match || !IMAGE_TYPES.has(match[1]!)) return undefined;
  const bytes = Buffer.from(match[2]!, 'base64');
  if (bytes.length === 0) return undefined;
  const extension = match[1]!.split('/')[1]!.replace('jpeg', 'jpg');
  return { bytes, contentType: match[1]!, filename: `image.${extension}` };
}

/** `stable_token` then `media/upload`, over HTTP like any WeChat API client. */
async function uploadToWeChat(
  baseUrl: string,
  credentials: { appId: string; appSecret: string },
  image: { bytes: Buffer; contentType: string; filename: string },
): Promise<{ media_id: string }> {
  const headers = { 'x-sandbox-caller': 'console' };
  const tokenResponse = await fetch(`${baseUrl}/cgi-bin/stable_token`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credential', appid: credentials.appId, secret: credentials.appSecret }),
  });
  const token = (await tokenResponse.json()) as { access_token?: string; errcode?: number; errmsg?: string };
  if (!token.access_token) throw new Error(`stable_token failed: ${token.errcode} ${token.errmsg}`);
  const form = new FormData();
  form.append('media', new Blob([new Uint8Array(image.bytes)], { type: image.contentType }), image.filename);
  const upload = await fetch(`${baseUrl}/cgi-bin/media/upload?access_token=${encodeURIComponent(token.access_token)}&type=image`, {
    method: 'POST',
    headers,
    body: form,
  });
  const result = (await upload.json()) as { media_id?: string; errcode?: number; errmsg?: string };
  if (!result.media_id) throw new Error(`media/upload failed: ${result.errcode} ${result.errmsg}`);
  return { media_id: result.media_id };
}
