/**
 * Every HTTP request the bridge makes to a platform (Vonage's Conversation API, WeChat's APIs) goes
 * through one `HttpRequester`: Node's own http/https on keep-alive agents with a bounded pool.
 *
 * Why not axios: in a CPU measurement of the same POST on this kind of machine (one core, 32
 * requests in flight, keep-alive), axios took 230–300 µs of CPU per request and Node's
 * `http.request` 40 µs; the call to Vonage was the largest single cost per inbound message.
 *
 * What the callers rely on, kept here once:
 * - one wall-clock deadline over connect, send and answer (a socket-idle timer would not bound a
 *   slow trickle of bytes);
 * - an answer larger than `maxResponseBytes` is cut off and fails;
 * - a failure tells whether the whole request had been handed to the OS (`requestSent`): one that
 *   never left cannot have reached the platform, which decides whether a send may be repeated;
 * - no redirects (a 3xx is just an answer);
 * - an error never carries the URL (WeChat's access token is in its query) nor a header (the JWT).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs: number;
  maxResponseBytes: number;
}

/** An answer, whatever its status: the caller classifies it. */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface HttpRequester {
  request(request: HttpRequest): Promise<HttpAnswer>;
  /** Closes the pooled connections. */
  close(): void;
}

/** No answer came. The message is the code (or `timeout`): never a URL, a header or a body. */
export class HttpRequestFailure extends Error {
  constructor(
    /** True once the whole request (headers and body) was handed to the OS: the server may have it. */
    readonly requestSent: boolean,
    readonly timedOut: boolean,
    /** A system code such as ECONNREFUSED, ECONNRESET, ENOTFOUND; `timeout`; ERR_INVALID_URL; ERR_RESPONSE_TOO_LARGE. */
    readonly code: string,
  ) {
    super(timedOut ? 'timeout' : code);
    this.name = 'HttpRequestFailure';
  }
}

export interface HttpRequesterOptions {
  /** Connections per origin at most; more requests wait for one. Default 64. */
  maxSockets?: number;
  /** Name resolution (tests: a DNS failure). Default the system's. */
  lookup?: LookupFunction;
  /**
   * HTTP_PROXY, HTTPS_PROXY and NO_PROXY, as axios honoured them before (Node 24's agents read them
   * from here). Default `process.env`.
   */
  proxyEnv?: NodeJS.ProcessEnv;
}

const CODE = /^[A-Z0-9_]+$/;

function codeOf(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && CODE.test(code) ? code : 'network error';
}

export function createHttpRequester(options: HttpRequesterOptions = {}): HttpRequester {
  const agentOptions: http.AgentOptions & { proxyEnv: NodeJS.ProcessEnv } = {
    keepAlive: true,
    maxSockets: options.maxSockets ?? 64,
    scheduling: 'lifo',
    proxyEnv: options.proxyEnv ?? process.env,
  };
  let plain: http.Agent | undefined;
  let secure: https.Agent | undefined;
  const agentFor = (protocol: string): http.Agent => (protocol === 'https:' ? (secure ??= new https.Agent(agentOptions)) : (plain ??= new http.Agent(agentOptions)));

  return {
    request(request) {
      return new Promise<HttpAnswer>((resolve, reject) => {
        let url: URL;
        try {
          url = new URL(request.url);
          if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
        } catch {
          reject(new HttpRequestFailure(false, false, 'ERR_INVALID_URL'));
          return;
        }
        let sent = false;
        let settled = false;
        let outgoing: http.ClientRequest | undefined;
        const fail = (timedOut: boolean, code: string) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(new HttpRequestFailure(sent, timedOut, code));
          outgoing?.destroy();
        };
        const timer = setTimeout(() => fail(true, 'timeout'), request.timeoutMs);
        const headers: Record<string, string | number> = { ...request.headers };
        if (request.body !== undefined) headers['Content-Length'] = Buffer.byteLength(request.body);
        try {
          outgoing = (url.protocol === 'https:' ? https : http).request(
            {
              protocol: url.protocol,
              hostname: url.hostname.replace(/^\[|\]$/g, ''),
              port: url.port,
              path: url.pathname + url.search,
              method: request.method,
              headers,
              agent: agentFor(url.protocol),
              ...(options.lookup ? { lookup: options.lookup } : {}),
            },
            (answer) => {
              const declared = Number(answer.headers['content-length']);
              if (Number.isFinite(declared) && declared > request.maxResponseBytes) return fail(false, 'ERR_RESPONSE_TOO_LARGE');
              const chunks: Buffer[] = [];
              let size = 0;
              answer.on('data', (chunk: Buffer) => {
                size += chunk.length;
                if (size > request.maxResponseBytes) return fail(false, 'ERR_RESPONSE_TOO_LARGE');
                chunks.push(chunk);
              });
              answer.on('end', () => {
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                resolve({ status: answer.statusCode ?? 0, headers: answer.headers, text: Buffer.concat(chunks, size).toString('utf8') });
              });
              answer.on('error', (error) => fail(false, codeOf(error)));
              answer.on('aborted', () => fail(false, 'ECONNRESET'));
            },
          );
        } catch (error) {
          // Refused before anything was sent: a header value Node will not write, say.
          fail(false, codeOf(error));
          return;
        }
        outgoing.once('finish', () => {
          sent = true;
        });
        outgoing.on('error', (error) => fail(false, codeOf(error)));
        outgoing.end(request.body);
      });
    },
    close() {
      plain?.destroy();
      secure?.destroy();
    },
  };
}
