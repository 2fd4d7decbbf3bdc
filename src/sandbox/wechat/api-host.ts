/**
 * One WeChat API host for several Official Accounts, as `api.weixin.qq.com` is: every account's
 * server calls the same host, and WeChat tells the accounts apart by credentials alone.
 *
 * Each account is its own platform emulator (platform.ts: its users, tokens, windows); this
 * host forwards each request to the account it belongs to:
 *
 * - `stable_token` by the `appid` in its JSON body (an unknown AppID: errcode 40013 "invalid appid",
 *   WeChat's global return code for it, which the single-account emulator answers too);
 * - every other `/cgi-bin/` call by its `access_token` query parameter: the account that issued the
 *   token. A token no account issued is errcode 40001 ("access_token is invalid or not latest",
 *   WeChat's global return code), so a token can never act for another account: each account's
 *   emulator only ever sees its own tokens.
 * - anything else (`/mmbiz/` picture links) goes to the first account.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { WeChatPlatform } from './platform';

export interface WeChatApiHost {
  baseUrl: string;
  close(): Promise<void>;
}

/** The emulators' own limit on request bodies (media uploads of up to 10 MB). */
const MAX_REQUEST_BYTES = 12 * 1024 * 1024;

export async function startWeChatApiHost(accounts: Array<{ appId: string; platform: WeChatPlatform }>): Promise<WeChatApiHost> {
  if (accounts.length === 0) throw new Error('startWeChatApiHost needs at least one account');
  const answer = (res: http.ServerResponse, errcode: number, errmsg: string) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ errcode, errmsg: `${errmsg} rid: ${randomBytes(6).toString('hex')}` }));
  };

  /** The account's emulator, or WeChat's answer when no account has these credentials. */
  function targetOf(url: URL, body: Buffer): WeChatPlatform | { errcode: number; errmsg: string } {
    if (url.pathname === '/cgi-bin/stable_token') {
      let appId: unknown;
      try {
        appId = (JSON.parse(body.toString('utf8')) as { appid?: unknown }).appid;
      } catch {
        return accounts[0]!.platform; // The emulator answers malformed JSON itself (47001).
      }
      if (typeof appId !== 'string' || appId === '') return accounts[0]!.platform; // 41002 from the emulator.
      return accounts.find((a) => a.appId === appId)?.platform ?? { errcode: 40013, errmsg: 'invalid appid' };
    }
    if (url.pathname.startsWith('/cgi-bin/')) {
      const token = url.searchParams.get('access_token');
      if (token === null || token === '') return accounts[0]!.platform; // 41001 from the emulator.
      return (
        accounts.find((a) => a.platform.issuedTokens.includes(token))?.platform ?? {
          errcode: 40001,
          errmsg: 'invalid credential, access_token is invalid or not latest',
        }
      );
    }
    return accounts[0]!.platform;
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://host');
      const target = targetOf(url, body);
      if ('errcode' in target) return answer(res, target.errcode, target.errmsg);
      const forward = http.request(
        `${target.baseUrl}${req.url ?? '/'}`,
        { method: req.method, headers: { ...req.headers, host: new URL(target.baseUrl).host } },
        (upstream) => {
          res.writeHead(upstream.statusCode ?? 502, upstream.headers);
          upstream.pipe(res);
        },
      );
      forward.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
