/**
 * Every outbound HTTP call the bridge makes to Vonage and to WeChat's JSON APIs: Node's own
 * `http`/`https` on keep-alive agents.
 *
 * Why not axios: measured on one core (loopback server, 32 requests in flight, keep-alive), axios
 * spent 230–300 µs of CPU per request, `http.request` on a keep-alive agent 40 µs (undici 30 µs,
 * but a new dependency for 10 µs more).
 *
 * What every call gets here, once:
 * - keep-alive sockets, at most `maxSockets` per origin (a bounded pool; more requests wait for a
 *   socket), the most recently used first (`lifo`, so idle sockets expire instead of all staying warm);
 * - one wall-clock deadline over connect, send and answer (our own timer: a socket timeout does not
 *   bound a slow trickle, nor a connect that hangs);
 * - an answer larger than `maxResponseBytes` is cut off and fails;
 * - no redirects (a 3xx is an answer like any other), the body decoded as UTF-8;
 * - HTTP_PROXY, HTTPS_PROXY and NO_PROXY honoured, as axios did (the agents of Node 24.5 and newer
 *   read them; `ignoredProxySettings` in node-version.ts names what an older Node would ignore);
 * - a `User-Agent` naming the bridge (WeChat's and Vonage's logs then show who called), unless the
 *   caller sets one;
 * - a failure tells whether the whole request had been handed to the OS (the remote may have it)
 *   and whether it timed out, by a code, never by a message that could hold the URL (WeChat's access
 *   token travels in the query) or a header (the Vonage JWT).
 *
 * A leaf: it imports nothing of the bridge.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The whole exchange, connect to the answer's last byte. */
  timeoutMs: number;
  /** An answer body larger than this fails with ERR_RESPONSE_TOO_LARGE. */
  maxResponseBytes: number;
}

/** An answer, whatever its status (the caller classifies it). */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface HttpRequester {
  request(request: HttpRequest): Promise<HttpAnswer>;
  /** Closes every pooled socket (and any request still in flight); a later request opens new ones. */
  close(): void;
}

export interface HttpRequesterOptions {
  /** Sockets per origin, in use and idle; more requests queue for one. Default 64. */
  maxSockets?: number;
  /** How long an idle socket stays in the pool. Default 5 s (as Node's global agent). */
  keepAliveMs?: number;
  /** The DNS lookup (tests: a failing one). Default Node's. */
  lookup?: LookupFunction;
  /** Where HTTP_PROXY, HTTPS_PROXY and NO_PROXY are read. Default `process.env`. */
  proxyEnv?: NodeJS.ProcessEnv;
}

export const DEFAULT_MAX_SOCKETS = 64;
const DEFAULT_KEEP_ALIVE_MS = 5_000;
export const USER_AGENT = 'wechat-conversation-bridge';


/** The request got no answer. `message` holds codes and numbers only: never the URL or a header. */
export class HttpRequestFailure extends Error {
  constructor(
    /** A system code (ECONNREFUSED, ECONNRESET, ENOTFOUND…), `timeout`, ERR_INVALID_URL, ERR_RESPONSE_TOO_LARGE, or `network error`. */
    readonly code: string,
    /** True once the whole request (headers and body) was handed to the OS: the remote may have it. */
    readonly requestSent: boolean,
    readonly timedOut: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'HttpRequestFailure';
  }
}

export function createHttpRequester(options: HttpRequesterOptions = {}): HttpRequester {
  const agentOptions: http.AgentOptions = {
    keepAlive: true,
    maxSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS,
    scheduling: 'lifo',
    // The agent's `timeout` is the idle socket's lifetime (it also arms an active socket's timer,
    // which only emits an event nobody listens to: the deadline below is what ends a request).
    timeout: options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS,
    proxyEnv: options.proxyEnv ?? process.env,
    ...(options.lookup ? { lookup: options.lookup } : {}),
  };
  let httpAgent: http.Agent | undefined;
  let httpsAgent: https.Agent | undefined;

  return {
    request(request) {
      let url: URL;
      try {
        url = new URL(request.url);
      } catch {
        return Promise.reject(new HttpRequestFailure('ERR_INVALID_URL', false, false, 'ERR_INVALID_URL: not a valid URL'));
      }
      if (url.protocol === 'https:') {
        httpsAgent ??= new https.Agent(agentOptions);
        return send(https.request, httpsAgent, url, request);
      }
      if (url.protocol === 'http:') {
        httpAgent ??= new http.Agent(agentOptions);
        return send(http.request, httpAgent, url, request);
      }
      return Promise.reject(new HttpRequestFailure('ERR_INVALID_URL', false, false, 'ERR_INVALID_URL: not an http(s) URL'));
    },
    close() {
      httpAgent?.destroy();
      httpsAgent?.destroy();
      httpAgent = undefined;
      httpsAgent = undefined;
    },
  };
}

type RequestFunction = (url: URL, options: http.RequestOptions) => http.ClientRequest;

function send(requestFn: RequestFunction, agent: http.Agent, url: URL, request: HttpRequest): Promise<HttpAnswer> {
  const { body, timeoutMs, maxResponseBytes } = request;
  const headers: Record<string, string | number> = { 'User-Agent': USER_AGENT, ...request.headers };
  if (body !== undefined) headers['Content-Length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.length;

  return new Promise<HttpAnswer>((resolve, reject) => {
    let settled = false;
    let requestSent = false;
    let response: http.IncomingMessage | undefined;

    const fail = (code: string, timedOut: boolean, message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Destroying the request destroys its socket: it never goes back to the pool half read.
      req.destroy();
      response?.destroy();
      reject(new HttpRequestFailure(code, requestSent, timedOut, message));
    };
    const failWith = (error: unknown) => {
      const code = systemCode(error);
      fail(code, false, `${code}, ${requestSent ? 'after' : 'before'} the request was sent`);
    };
    const tooLarge = () => fail('ERR_RESPONSE_TOO_LARGE', false, `ERR_RESPONSE_TOO_LARGE: the answer is larger than ${maxResponseBytes} bytes`);

    let req: http.ClientRequest;
    try {
      req = requestFn(url, { method: request.method, agent, headers });
    } catch (error) {
      // A header Node refuses (ERR_INVALID_CHAR…): its message names the header, so only the code goes on.
      const code = systemCode(error);
      reject(new HttpRequestFailure(code, false, false, `${code}, before the request was sent`));
      return;
    }
    const timer = setTimeout(() => {
      fail('timeout', true, `no answer within ${timeoutMs} ms, ${requestSent ? 'after' : 'before'} the request was sent`);
    }, timeoutMs);

    req.once('finish', () => {
      requestSent = true;
    });
    // Kept for the request's life: a destroyed request may still emit an error, which is then ignored.
    req.on('error', failWith);
    req.once('response', (res) => {
      response = res;
      // An answer (even one sent early, before the body was all written) means the server has the request.
      requestSent = true;
      const declared = Number(res.headers['content-length']);
      if (declared > maxResponseBytes) {
        tooLarge();
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxResponseBytes) {
          tooLarge();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', failWith);
      res.once('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, received).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
      });
      // The connection closed before the answer's end, without an error event.
      res.once('close', () => {
        if (!res.complete) fail('ECONNRESET', false, `ECONNRESET, after the request was sent (the answer was cut off)`);
      });
    });
    req.end(body);
  });
}

/**
 * The system code of a socket or DNS error (ECONNREFUSED, ECONNRESET, ENOTFOUND…); `network error`
 * when there is none. Never the message, which may name the host.
 */
function systemCode(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? code : 'network error';
}
