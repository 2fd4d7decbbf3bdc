/**
 * A fake WeChat API server: a real HTTP server on 127.0.0.1 (port 0) that follows WeChat's
 * documented API closely enough for our client to be tested end to end.
 *
 * - `POST /cgi-bin/stable_token`: checks grant_type/appid/secret (40002, 41002, 40013, 41004, 40125
 *   as WeChat does) and, in normal mode, returns the SAME token while it is valid with the
 *   remaining `expires_in`. Like WeChat, it rotates the token shortly before expiry (5 min for
 *   the real 7200 s TTL; scaled down for short test TTLs) and keeps the old one valid until it
 *   expires. `force_refresh: true` always issues a new token.
 * - `POST /cgi-bin/message/custom/send` and `/cgi-bin/message/custom/typing`: check the
 *   `access_token` query (41001 missing, 40001 unknown, 42001 expired), refuse `\uXXXX` escapes
 *   (40033), validate the JSON (47001, 40003 touser, 40008 msgtype, 45072 command) and answer
 *   `{"errcode":0,"errmsg":"ok"}`.
 * - `inject(path, responses)`: the next requests to `path` consume these, one each:
 *   `{errcode, errmsg?}` answers that error (errcode 0: handled normally); `{status}` answers that
 *   HTTP status; `{delayMs}` handles the request normally (a send is accepted and recorded) but
 *   answers only after the delay, like a slow WeChat that did deliver; `{reset: true}` destroys the
 *   connection after reading the request, without handling it.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export type InjectedResponse = { errcode: number; errmsg?: string } | { status: number } | { delayMs: number } | { reset: true };

export interface SentRequest {
  path: string;
  rawBody: string;
  json: unknown;
  accessToken: string;
}

export interface FakeWeChat {
  baseUrl: string;
  /** stable_token requests received (any outcome). */
  readonly tokenFetches: number;
  /** custom/send and custom/typing calls accepted (in arrival order). */
  sent: SentRequest[];
  /** Every custom/send and custom/typing request received, accepted or not. */
  requests: Array<{ path: string; rawBody: string; accessToken: string }>;
  /** Every stable_token request body received (parsed). */
  tokenRequests: unknown[];
  inject(path: string, responses: InjectedResponse[]): void;
  /** The current token now answers 42001; the next stable_token call issues a new one. */
  expireTokens(): void;
  /** Tokens issued so far, oldest first (for tests that check which token was used). */
  readonly issuedTokens: string[];
  waitForSends(n: number, timeoutMs?: number): Promise<SentRequest[]>;
  close(): Promise<void>;
}

const ERRMSG: Record<number, string> = {
  [-1]: 'system error',
  0: 'ok',
  40001: 'invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken',
  40002: 'invalid grant_type',
  40003: 'invalid openid',
  40008: 'invalid message type',
  40013: 'invalid appid',
  40014: 'invalid access_token',
  40033: 'invalid charset. please check your request, if include \\uxxxx will create fail!',
  40125: 'invalid appsecret',
  40164: 'invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  42001: 'access_token expired',
  43004: 'require subscribe',
  45015: 'response out of time limit or subscription is canceled',
  45047: 'out of response count limit',
  45072: 'command invalid',
  47001: 'data format error',
};

const SEND_PATHS = new Set(['/cgi-bin/message/custom/send', '/cgi-bin/message/custom/typing']);
const STABLE_TOKEN_PATH = '/cgi-bin/stable_token';
const MSG_TYPES = new Set([
  'text', 'image', 'voice', 'video', 'music', 'news', 'mpnews', 'mpnewsarticle', 'msgmenu', 'wxcard', 'miniprogrampage',
]);

interface IssuedToken {
  value: string;
  expiresAt: number;
  revoked: boolean;
}

export async function startFakeWeChat(options: {
  appId: string;
  appSecret: string;
  tokenTtlSeconds?: number;
  now?: () => number;
}): Promise<FakeWeChat> {
  const ttlMs = (options.tokenTtlSeconds ?? 7200) * 1000;
  // WeChat rotates 5 min before expiry of a 2 h token; keep the same proportion for short TTLs.
  const rotateBeforeMs = Math.min(300_000, ttlMs / 24);
  const now = options.now ?? Date.now;
  const tokens = new Map<string, IssuedToken>();
  const issuedTokens: string[] = [];
  let current: IssuedToken | undefined;
  let tokenFetches = 0;
  const sent: SentRequest[] = [];
  const requests: FakeWeChat['requests'] = [];
  const tokenRequests: unknown[] = [];
  const injected = new Map<string, InjectedResponse[]>();
  const sendWaiters: Array<() => void> = [];
  const timers = new Set<NodeJS.Timeout>();

  function issueToken(): IssuedToken {
    const token: IssuedToken = {
      value: `${issuedTokens.length + 90}_${randomBytes(60).toString('base64url')}`,
      expiresAt: now() + ttlMs,
      revoked: false,
    };
    tokens.set(token.value, token);
    issuedTokens.push(token.value);
    current = token;
    return token;
  }

  function answer(res: http.ServerResponse, body: unknown, status = 200): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'Content-Type': 'application/json; encoding=utf-8' });
    res.end(JSON.stringify(body));
  }

  function error(errcode: number, errmsg?: string): { errcode: number; errmsg: string } {
    return { errcode, errmsg: `${errmsg ?? ERRMSG[errcode] ?? 'error'} rid: ${randomBytes(6).toString('hex')}` };
  }

  function handleStableToken(rawBody: string): { status: number; body: unknown } {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      return { status: 200, body: error(47001) };
    }
    tokenRequests.push(json);
    if (json['grant_type'] !== 'client_credential') return { status: 200, body: error(40002) };
    if (!json['appid']) return { status: 200, body: error(41002) };
    if (json['appid'] !== options.appId) return { status: 200, body: error(40013) };
    if (!json['secret']) return { status: 200, body: error(41004) };
    if (json['secret'] !== options.appSecret) return { status: 200, body: error(40125) };
    const stillGood = current && !current.revoked && current.expiresAt - now() > rotateBeforeMs;
    const token = json['force_refresh'] === true || !stillGood ? issueToken() : current!;
    return { status: 200, body: { access_token: token.value, expires_in: Math.floor((token.expiresAt - now()) / 1000) } };
  }

  function checkAccessToken(accessToken: string | null): { errcode: number } | undefined {
    if (!accessToken) return error(41001);
    const token = tokens.get(accessToken);
    if (!token) return error(40001);
    if (token.revoked || token.expiresAt <= now()) return error(42001);
    return undefined;
  }

  function handleSend(path: string, rawBody: string, accessToken: string): { status: number; body: unknown } {
    const tokenError = checkAccessToken(accessToken);
    if (tokenError) return { status: 200, body: tokenError };
    if (/\\u[0-9a-fA-F]{4}/.test(rawBody)) return { status: 200, body: error(40033) };
    let json: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(rawBody);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      json = parsed as Record<string, unknown>;
    } catch {
      return { status: 200, body: error(47001) };
    }
    if (typeof json['touser'] !== 'string' || json['touser'] === '') return { status: 200, body: error(40003) };
    if (path.endsWith('/typing')) {
      if (json['command'] !== 'Typing' && json['command'] !== 'CancelTyping') return { status: 200, body: error(45072) };
    } else {
      const msgtype = json['msgtype'];
      if (typeof msgtype !== 'string' || !MSG_TYPES.has(msgtype) || typeof json[msgtype] !== 'object') {
        return { status: 200, body: error(40008) };
      }
    }
    sent.push({ path, rawBody, json, accessToken });
    for (const wake of sendWaiters.splice(0)) wake();
    return { status: 200, body: { errcode: 0, errmsg: 'ok' } };
  }

  function handle(path: string, rawBody: string, accessToken: string): { status: number; body: unknown } {
    if (path === STABLE_TOKEN_PATH) return handleStableToken(rawBody);
    return handleSend(path, rawBody, accessToken);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const path = url.pathname;
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const accessToken = url.searchParams.get('access_token') ?? '';
      if (req.method !== 'POST' || (path !== STABLE_TOKEN_PATH && !SEND_PATHS.has(path))) {
        answer(res, { errcode: 404, errmsg: 'not found' }, 404);
        return;
      }
      if (path === STABLE_TOKEN_PATH) tokenFetches += 1;
      else requests.push({ path, rawBody, accessToken });

      const next = injected.get(path)?.shift();
      if (next && 'reset' in next) {
        req.socket.destroy();
        return;
      }
      if (next && 'status' in next) {
        res.writeHead(next.status, { 'Content-Type': 'text/plain' });
        res.end(http.STATUS_CODES[next.status] ?? 'error');
        return;
      }
      if (next && 'errcode' in next && next.errcode !== 0) {
        answer(res, error(next.errcode, next.errmsg));
        return;
      }
      const result = handle(path, rawBody, accessToken);
      if (next && 'delayMs' in next) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          answer(res, result.body, result.status);
        }, next.delayMs);
        timers.add(timer);
        return;
      }
      answer(res, result.body, result.status);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    get tokenFetches() {
      return tokenFetches;
    },
    get issuedTokens() {
      return issuedTokens;
    },
    sent,
    requests,
    tokenRequests,
    inject(path, responses) {
      injected.set(path, [...(injected.get(path) ?? []), ...responses]);
    },
    expireTokens() {
      for (const token of tokens.values()) token.revoked = true;
    },
    async waitForSends(n, timeoutMs = 2_000) {
      const deadline = Date.now() + timeoutMs;
      while (sent.length < n) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`fake WeChat: expected ${n} accepted sends, got ${sent.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, remaining);
          sendWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return sent.slice(0, n);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
