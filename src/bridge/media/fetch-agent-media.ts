/**
 * Downloads a file an agent named by URL (`media_url` of an outbound image, voice or video), with
 * WeChat's limits and without letting the URL reach inside our network (SSRF):
 *
 * - https only, no credentials in the URL; at most `maxRedirects` (3) redirects, each checked again.
 * - Every address the host name resolves to must be public: loopback, private, link-local, CGNAT,
 *   multicast, documentation and other reserved ranges (IPv4 and IPv6, mapped forms included) are
 *   refused. The check runs inside the socket's own DNS lookup, on the very addresses it then
 *   connects to, so a name that resolves differently a moment later (DNS rebinding) gains nothing.
 *   A literal IP in the URL is checked the same way.
 * - Size: WeChat's limit for the type (image 10 MB, voice 2 MB, video 10 MB, thumb 64 KB), from
 *   Content-Length at once and while streaming; the download stops at the first byte over.
 * - Type: the declared Content-Type must be one WeChat takes for the type (or a generic
 *   octet-stream), and the first bytes must be that format (PNG, JPEG, GIF; AMR, MP3; MP4): the
 *   upload then declares the format the bytes really have.
 * - One deadline (15 s) over the whole exchange.
 *
 * `allowPrivateNetworks` lifts the address rule and allows http: for tests and the sandbox, whose
 * servers are on loopback. It is not an environment setting.
 *
 * Every refusal is an AgentMediaError (a PermanentError): the agent gets a `failed` status saying
 * why (`media_too_large`, `unsupported_media_type`, `media_url_refused`, `media_download_failed`).
 */
import { lookup as dnsLookup } from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { PermanentError } from '../../errors';
import { USER_AGENT } from '../../outbound-http';

export type OutboundMediaType = 'image' | 'voice' | 'video' | 'thumb';

interface Format {
  contentType: string;
  extension: string;
  /** Content types a server may declare for it. */
  declared: readonly string[];
  matches: (head: Buffer) => boolean;
}

const startsWith = (head: Buffer, bytes: number[] | string, at = 0): boolean => {
  const expected = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  return head.length >= at + expected.length && head.subarray(at, at + expected.length).equals(expected);
};

const PNG: Format = { contentType: 'image/png', extension: 'png', declared: ['image/png'], matches: (h) => startsWith(h, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) };
const JPEG: Format = { contentType: 'image/jpeg', extension: 'jpg', declared: ['image/jpeg', 'image/jpg', 'image/pjpeg'], matches: (h) => startsWith(h, [0xff, 0xd8, 0xff]) };
const GIF: Format = { contentType: 'image/gif', extension: 'gif', declared: ['image/gif'], matches: (h) => startsWith(h, 'GIF87a') || startsWith(h, 'GIF89a') };
const AMR: Format = { contentType: 'audio/amr', extension: 'amr', declared: ['audio/amr', 'audio/amr-wb', 'audio/3gpp'], matches: (h) => startsWith(h, '#!AMR') };
const MP3: Format = {
  contentType: 'audio/mpeg',
  extension: 'mp3',
  declared: ['audio/mpeg', 'audio/mp3', 'audio/mpeg3', 'audio/x-mpeg-3'],
  matches: (h) => startsWith(h, 'ID3') || (h.length >= 2 && h[0] === 0xff && (h[1]! & 0xe0) === 0xe0),
};
const MP4: Format = { contentType: 'video/mp4', extension: 'mp4', declared: ['video/mp4'], matches: (h) => startsWith(h, 'ftyp', 4) };

/** WeChat's temporary media limits per upload type. */
export const OUTBOUND_MEDIA_RULES: Readonly<Record<OutboundMediaType, { maxBytes: number; formats: readonly Format[]; describe: string }>> = {
  image: { maxBytes: 10 * 1024 * 1024, formats: [PNG, JPEG, GIF], describe: 'PNG, JPEG or GIF, at most 10 MB' },
  voice: { maxBytes: 2 * 1024 * 1024, formats: [AMR, MP3], describe: 'AMR or MP3, at most 2 MB' },
  video: { maxBytes: 10 * 1024 * 1024, formats: [MP4], describe: 'MP4, at most 10 MB' },
  thumb: { maxBytes: 64 * 1024, formats: [JPEG], describe: 'JPEG, at most 64 KB' },
};

/** Declared types that say nothing about the format: the bytes decide. */
const GENERIC_TYPES = new Set(['', 'application/octet-stream', 'binary/octet-stream', 'application/binary']);

export const MEDIA_STATUS_CODES = {
  tooLarge: 'media_too_large',
  unsupportedType: 'unsupported_media_type',
  refused: 'media_url_refused',
  downloadFailed: 'media_download_failed',
} as const;

export class AgentMediaError extends PermanentError {
  constructor(code: (typeof MEDIA_STATUS_CODES)[keyof typeof MEDIA_STATUS_CODES], message: string) {
    super(message, { code });
    this.name = 'AgentMediaError';
  }
}

export interface FetchedMedia {
  bytes: Buffer;
  /** The format the bytes have (not what the server claimed). */
  contentType: string;
  /** `<type>.<extension>`: WeChat's upload wants a file name with the right extension. */
  filename: string;
}

export interface FetchAgentMediaOptions {
  /** Tests and the sandbox only: allow http and loopback or private addresses. */
  allowPrivateNetworks?: boolean;
  /** Default 15 s over the whole exchange, redirects included. */
  timeoutMs?: number;
  /** Default 3. */
  maxRedirects?: number;
  /** The resolver (tests); default node:dns lookup. */
  lookup?: typeof dnsLookup;
}

// ------------------------------------------------------------------------------------------------
// Addresses

const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], ['::1', 128], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 32], ['2001:db8::', 32],
  ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv6');
}

/** Whether an address (v4 or v6, IPv4-mapped included) is one an agent's URL must never reach. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family !== 6) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return BLOCKED.check(mapped, 'ipv4');
  // ::ffff:7f00:1 (hex form of a mapped address) and other IPv4-embedding forms.
  if (/^::ffff:/i.test(address) || /^::[0-9a-f]{1,4}:[0-9a-f]{1,4}$/i.test(address)) return true;
  return BLOCKED.check(address, 'ipv6');
}

/** A `lookup` for http.request that fails when any resolved address is private. */
function guardedLookup(resolve: typeof dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      // On an error the socket reads no address: an empty one stands in.
      if (error) return callback(error, '');
      if (addresses.length === 0 || addresses.some((entry) => isPrivateAddress(entry.address))) {
        return callback(Object.assign(new Error('the host resolves to a private or reserved address'), { code: 'EPRIVATEADDRESS' }), '');
      }
      if (options.all) return callback(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

// ------------------------------------------------------------------------------------------------
// The download

/** Checks a URL before any request: scheme, credentials, literal addresses. Pure. */
export function checkAgentMediaUrl(raw: string, allowPrivateNetworks = false): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AgentMediaError(MEDIA_STATUS_CODES.refused, 'media_url is not a valid URL');
  }
  const schemeOk = url.protocol === 'https:' || (allowPrivateNetworks && url.protocol === 'http:');
  if (!schemeOk) throw new AgentMediaError(MEDIA_STATUS_CODES.refused, 'media_url must be an https:// URL');
  if (url.username !== '' || url.password !== '') throw new AgentMediaError(MEDIA_STATUS_CODES.refused, 'media_url must not carry credentials');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivateNetworks && isIP(host) !== 0 && isPrivateAddress(host)) {
    throw new AgentMediaError(MEDIA_STATUS_CODES.refused, 'media_url points to a private or reserved address');
  }
  if (!allowPrivateNetworks && /^(localhost|.*\.localhost|.*\.local|.*\.internal)$/i.test(host)) {
    throw new AgentMediaError(MEDIA_STATUS_CODES.refused, 'media_url points to a local host name');
  }
  return url;
}

/** Which format the bytes are, among those the type allows; checks the declared type too. Pure. */
export function identifyMedia(type: OutboundMediaType, declaredContentType: string, head: Buffer): Format {
  const rules = OUTBOUND_MEDIA_RULES[type];
  const declared = declaredContentType.split(';')[0]!.trim().toLowerCase();
  if (!GENERIC_TYPES.has(declared) && !rules.formats.some((format) => format.declared.includes(declared))) {
    throw new AgentMediaError(MEDIA_STATUS_CODES.unsupportedType, `media_url is ${declared}; a WeChat ${type} must be ${rules.describe}`);
  }
  const format = rules.formats.find((candidate) => candidate.matches(head));
  if (!format) {
    throw new AgentMediaError(MEDIA_STATUS_CODES.unsupportedType, `media_url is not a ${rules.describe.split(',')[0]} file (its first bytes say otherwise)`);
  }
  return format;
}

export async function fetchAgentMedia(raw: string, type: OutboundMediaType, options: FetchAgentMediaOptions = {}): Promise<FetchedMedia> {
  const allowPrivate = options.allowPrivateNetworks === true;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const maxRedirects = options.maxRedirects ?? 3;
  const lookup = allowPrivate ? undefined : guardedLookup(options.lookup ?? dnsLookup);
  const limit = OUTBOUND_MEDIA_RULES[type].maxBytes;
  const deadline = AbortSignal.timeout(timeoutMs);

  let url = checkAgentMediaUrl(raw, allowPrivate);
  for (let redirects = 0; ; redirects += 1) {
    const answer = await get(url, { lookup, signal: deadline, limit, timeoutMs });
    if (answer.kind === 'redirect') {
      if (redirects >= maxRedirects) throw new AgentMediaError(MEDIA_STATUS_CODES.downloadFailed, `media_url redirected more than ${maxRedirects} times`);
      let next: string;
      try {
        next = new URL(answer.location, url).toString();
      } catch {
        throw new AgentMediaError(MEDIA_STATUS_CODES.downloadFailed, 'media_url redirected to an invalid URL');
      }
      url = checkAgentMediaUrl(next, allowPrivate);
      continue;
    }
    const format = identifyMedia(type, answer.contentType, answer.bytes.subarray(0, 16));
    return { bytes: answer.bytes, contentType: format.contentType, filename: `${type}.${format.extension}` };
  }
}

type Answer = { kind: 'redirect'; location: string } | { kind: 'file'; contentType: string; bytes: Buffer };

function get(
  url: URL,
  options: { lookup: http.RequestOptions['lookup'] | undefined; signal: AbortSignal; limit: number; timeoutMs: number },
): Promise<Answer> {
  const failed = (why: string) => new AgentMediaError(MEDIA_STATUS_CODES.downloadFailed, `could not download media_url: ${why}`);
  return new Promise<Answer>((resolve, reject) => {
    const module = url.protocol === 'https:' ? https : http;
    const request = module.request(
      url,
      {
        method: 'GET',
        headers: { Accept: 'image/*, audio/*, video/*;q=0.9, */*;q=0.1', 'User-Agent': USER_AGENT },
        signal: options.signal,
        ...(options.lookup ? { lookup: options.lookup } : {}),
        // A fresh connection per request: the address check is per connection.
        agent: false,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        if ([301, 302, 303, 307, 308].includes(status)) {
          response.resume();
          const location = response.headers.location;
          if (!location) return reject(failed(`HTTP ${status} without a Location`));
          return resolve({ kind: 'redirect', location });
        }
        if (status !== 200) {
          response.resume();
          return reject(failed(`HTTP ${status}`));
        }
        const declaredLength = Number(response.headers['content-length']);
        if (Number.isFinite(declaredLength) && declaredLength > options.limit) {
          response.destroy();
          return reject(new AgentMediaError(MEDIA_STATUS_CODES.tooLarge, `media_url is ${declaredLength} bytes; the limit is ${options.limit}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.limit) {
            response.destroy();
            reject(new AgentMediaError(MEDIA_STATUS_CODES.tooLarge, `media_url is larger than the limit of ${options.limit} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => resolve({ kind: 'file', contentType: String(response.headers['content-type'] ?? ''), bytes: Buffer.concat(chunks) }));
        response.on('error', () => reject(options.signal.aborted ? failed(`no complete answer within ${options.timeoutMs} ms`) : failed('the connection broke')));
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPRIVATEADDRESS') {
        reject(new AgentMediaError(MEDIA_STATUS_CODES.refused, 'media_url points to a private or reserved address'));
      } else if (options.signal.aborted) {
        reject(failed(`no complete answer within ${options.timeoutMs} ms`));
      } else {
        reject(failed(error.code ?? 'network error'));
      }
    });
    request.end();
  });
}
