/**
 * What every WeChat API call shares: the JSON it sends, reading HTTP statuses and errcodes, and the
 * refetch-once rule for a rejected access token. The clients' own tests (api-client, media,
 * token-manager) cover the same code against a fake WeChat.
 */
import { PermanentError, RetryableError } from '../../../src/errors';
import {
  apiBaseOf,
  checkHttpStatus,
  networkErrorCode,
  parseRetryAfterMs,
  parseWeChatAnswer,
  readErrcode,
  retryLaterError,
  serializeWeChatJson,
  tokenRejection,
  withAccessToken,
  type AccessTokenSource,
  type TokenAttempt,
} from '../../../src/wechat/transport';

describe('serializeWeChatJson', () => {
  it('writes raw UTF-8 and never \\u escapes', () => {
    const json = serializeWeChatJson({ text: { content: '中文 😀 \u2028 tab\tline\nend\u0001\u001f lone\ud800 pair\ud83d\ude00' } });
    expect(json).not.toMatch(/\\u[0-9a-fA-F]{4}/);
    expect(JSON.parse(json)).toEqual({ text: { content: '中文 😀 \u2028 tab\tline\nend lone pair😀' } });
  });
});

describe('reading an answer', () => {
  const thrown = (run: () => void): unknown => {
    try {
      run();
    } catch (error) {
      return error;
    }
    return undefined;
  };

  it('lets a 2xx through and classifies every other status', () => {
    expect(thrown(() => checkHttpStatus(200, undefined, 'WeChat x answered'))).toBeUndefined();
    expect(thrown(() => checkHttpStatus(204, undefined, 'WeChat x answered'))).toBeUndefined();
    const busy = thrown(() => checkHttpStatus(429, '7', 'WeChat x answered'));
    expect(busy).toBeInstanceOf(RetryableError);
    expect(busy).toMatchObject({ message: 'WeChat x answered HTTP 429', retryAfterMs: 7_000 });
    expect(thrown(() => checkHttpStatus(502, undefined, 'T:'))).toMatchObject({ message: 'T: HTTP 502', kind: 'retryable' });
    const refused = thrown(() => checkHttpStatus(404, undefined, 'T:'));
    expect(refused).toBeInstanceOf(PermanentError);
    expect(refused).toMatchObject({ message: 'T: HTTP 404', code: 'http_404' });
    expect(thrown(() => checkHttpStatus(302, undefined, 'T:'))).toMatchObject({ code: 'http_302' });
  });

  it('reads only JSON objects, and errcodes as numbers', () => {
    expect(parseWeChatAnswer('{"errcode":0}')).toEqual({ errcode: 0 });
    expect(parseWeChatAnswer('[1]')).toBeUndefined();
    expect(parseWeChatAnswer('null')).toBeUndefined();
    expect(parseWeChatAnswer('<html>')).toBeUndefined();
    expect(readErrcode({})).toBe(0);
    expect(readErrcode({ errcode: '42001' })).toBe(42001);
    expect(readErrcode({ errcode: 'x' })).toBeNaN();
  });

  it('knows the stale-token and retry-later errcodes', () => {
    for (const errcode of [40001, 40014, 42001]) expect(tokenRejection(errcode, 'm')).toEqual({ kind: 'token-rejected', errcode, errmsg: 'm' });
    expect(tokenRejection(45015, 'm')).toBeUndefined();
    expect(retryLaterError(45011, 'freq', 'WeChat x')).toMatchObject({ message: 'WeChat x: 45011 freq', retryAfterMs: 60_000 });
    expect(retryLaterError(-1, '', 'WeChat x')).toMatchObject({ message: 'WeChat x: -1', retryAfterMs: undefined });
    expect(retryLaterError(45015, 'm', 'WeChat x')).toBeUndefined();
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
    expect(parseRetryAfterMs('2')).toBe(2_000);
    expect(parseRetryAfterMs('soon')).toBeUndefined();
    expect(parseRetryAfterMs(new Date(Date.now() - 60_000).toUTCString())).toBe(0);
  });

  it('names a network failure by its code only, from the error or its cause', () => {
    expect(networkErrorCode(Object.assign(new Error('connect ECONNREFUSED https://x/?access_token=T'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(networkErrorCode(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe('ECONNRESET');
    expect(networkErrorCode(Object.assign(new Error('x'), { code: 'not a code ?access_token=T' }))).toBe('network error');
    expect(networkErrorCode('boom')).toBe('network error');
  });

  it('trims the trailing slashes of a base URL', () => {
    expect(apiBaseOf('https://api.weixin.qq.com//')).toBe('https://api.weixin.qq.com');
    expect(apiBaseOf('http://127.0.0.1:1')).toBe('http://127.0.0.1:1');
  });
});

describe('withAccessToken', () => {
  function source(tokens: string[]): AccessTokenSource & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      getToken: async () => {
        calls.push('get');
        return tokens[0]!;
      },
      invalidate: async (stale) => {
        calls.push(`invalidate ${stale}`);
        return tokens[1]!;
      },
    };
  }
  const rejected = { kind: 'token-rejected', errcode: 42001, errmsg: 'access_token expired' } as const;
  const giveUp = () => new Error('gave up');

  it('calls once with the current token when it is accepted', async () => {
    const tokens = source(['A', 'B']);
    const seen: string[] = [];
    const value = await withAccessToken(tokens, async (token): Promise<TokenAttempt<number>> => {
      seen.push(token);
      return { kind: 'done', value: 7 };
    }, { giveUp });
    expect(value).toBe(7);
    expect(seen).toEqual(['A']);
    expect(tokens.calls).toEqual(['get']);
  });

  it('refetches once after a rejection and calls again with the fresh token', async () => {
    const tokens = source(['A', 'B']);
    const seen: string[] = [];
    const refetches: unknown[] = [];
    const value = await withAccessToken(
      tokens,
      async (token): Promise<TokenAttempt<string>> => {
        seen.push(token);
        return token === 'A' ? rejected : { kind: 'done', value: `ok with ${token}` };
      },
      { giveUp, onRefetch: (rejection) => refetches.push(rejection) },
    );
    expect(value).toBe('ok with B');
    expect(seen).toEqual(['A', 'B']);
    expect(tokens.calls).toEqual(['get', 'invalidate A']);
    expect(refetches).toEqual([rejected]);
  });

  it('gives up after the second rejection, with the error the caller builds, and never loops', async () => {
    const tokens = source(['A', 'B']);
    let tries = 0;
    const error = await withAccessToken(
      tokens,
      async () => {
        tries += 1;
        return { ...rejected, errcode: tries === 1 ? 40001 : 40014 };
      },
      { giveUp: (rejection) => new Error(`gave up on ${rejection.errcode}`) },
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe('gave up on 40014');
    expect(tries).toBe(2);
    expect(tokens.calls).toEqual(['get', 'invalidate A']);
  });

  it('runs beforeRequest once, after the token and before the first call; a failure to get a token skips both', async () => {
    const order: string[] = [];
    const tokens: AccessTokenSource = {
      getToken: async () => {
        order.push('token');
        return 'A';
      },
      invalidate: async () => 'B',
    };
    await withAccessToken(
      tokens,
      async (token) => {
        order.push(`call ${token}`);
        return token === 'A' ? rejected : { kind: 'done', value: undefined };
      },
      { giveUp, beforeRequest: async () => void order.push('before') },
    );
    expect(order).toEqual(['token', 'before', 'call A', 'call B']);

    const before = jest.fn(async () => undefined);
    const call = jest.fn(async (): Promise<TokenAttempt<void>> => ({ kind: 'done', value: undefined }));
    const failing: AccessTokenSource = { getToken: () => Promise.reject(new RetryableError('no token')), invalidate: async () => 'B' };
    await expect(withAccessToken(failing, call, { giveUp, beforeRequest: before })).rejects.toThrow('no token');
    expect(before).not.toHaveBeenCalled();
    expect(call).not.toHaveBeenCalled();
  });

  it('lets an error thrown by a call through untouched, without a refetch', async () => {
    const tokens = source(['A', 'B']);
    const boom = new PermanentError('refused', { code: '45015' });
    await expect(withAccessToken(tokens, () => Promise.reject(boom), { giveUp })).rejects.toBe(boom);
    expect(tokens.calls).toEqual(['get']);
  });
});
