/**
 * Downloading an agent's media_url: SSRF rules (pure checks, and the guarded DNS lookup on a real
 * request), WeChat's size and type limits enforced while streaming, redirects, timeouts.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AgentMediaError,
  checkAgentMediaUrl,
  fetchAgentMedia,
  identifyMedia,
  isPrivateAddress,
  OUTBOUND_MEDIA_RULES,
} from '../../../../src/bridge/media/fetch-agent-media';

const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(64, 7)]);
const JPEG = Buffer.concat([Buffer.from('ffd8ffe000104a464946', 'hex'), Buffer.alloc(32, 1)]);
const MP4 = Buffer.concat([Buffer.from('0000001c667479706d703432', 'hex'), Buffer.alloc(32, 2)]);
const AMR = Buffer.from('#!AMR\n\x3c\x48\xf5', 'latin1');

const codeOf = (error: unknown) => (error instanceof AgentMediaError ? error.code : `not an AgentMediaError: ${String(error)}`);

describe('isPrivateAddress', () => {
  test.each([
    '127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
    '224.0.0.1', '255.255.255.255', '198.18.0.1', '::1', '::', 'fe80::1', 'fd00::1', 'fc00::2', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1', '2002:a00:1::1', 'not-an-ip',
  ])('%s is refused', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  test.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:93.184.216.34'])('%s is public', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });
});

describe('checkAgentMediaUrl', () => {
  test.each([
    ['http://cdn.example.com/a.png', 'must be an https'],
    ['ftp://cdn.example.com/a.png', 'must be an https'],
    ['file:///etc/passwd', 'must be an https'],
    ['https://user:pass@cdn.example.com/a.png', 'credentials'],
    ['https://127.0.0.1/a.png', 'private'],
    ['https://[::1]/a.png', 'private'],
    ['https://169.254.169.254/latest/meta-data', 'private'],
    ['https://localhost/a.png', 'local host name'],
    ['https://metadata.google.internal/x', 'local host name'],
    ['not a url', 'not a valid URL'],
  ])('%s is refused (%s)', (url, why) => {
    expect(() => checkAgentMediaUrl(url)).toThrow(why);
    try {
      checkAgentMediaUrl(url);
    } catch (error) {
      expect(codeOf(error)).toBe('media_url_refused');
    }
  });

  test('public https URLs pass; tests may allow http on loopback', () => {
    expect(checkAgentMediaUrl('https://cdn.example.com/a.png').hostname).toBe('cdn.example.com');
    expect(checkAgentMediaUrl('http://127.0.0.1:8080/a.png', true).port).toBe('8080');
  });
});

describe('identifyMedia', () => {
  test('the bytes decide the format among those the type allows', () => {
    expect(identifyMedia('image', 'image/png', PNG).contentType).toBe('image/png');
    expect(identifyMedia('image', 'application/octet-stream', JPEG).contentType).toBe('image/jpeg');
    expect(identifyMedia('image', 'image/png; charset=binary', JPEG).contentType).toBe('image/jpeg'); // claimed PNG, is JPEG: JPEG is uploaded
    expect(identifyMedia('video', 'video/mp4', MP4).extension).toBe('mp4');
    expect(identifyMedia('voice', '', AMR).contentType).toBe('audio/amr');
    expect(identifyMedia('voice', 'audio/mpeg', Buffer.from('ID3\x04\x00', 'latin1')).contentType).toBe('audio/mpeg');
  });

  test.each([
    ['image', 'text/html', PNG],
    ['image', 'image/png', Buffer.from('<html>')],
    ['image', 'image/webp', PNG],
    ['voice', 'audio/ogg', AMR],
    ['video', 'video/mp4', PNG],
    ['thumb', 'image/png', PNG],
  ] as const)('%s declared %s is refused', (type, declared, bytes) => {
    expect(() => identifyMedia(type, declared, bytes)).toThrow(AgentMediaError);
    try {
      identifyMedia(type, declared, bytes);
    } catch (error) {
      expect(codeOf(error)).toBe('unsupported_media_type');
    }
  });
});

describe('fetchAgentMedia over HTTP', () => {
  let server: http.Server;
  let base: string;
  let served: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const handler = served[req.url ?? ''];
      if (handler) handler(req, res);
      else res.writeHead(404).end('no');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    served = {};
  });

  const allow = { allowPrivateNetworks: true };

  test('downloads a picture and names it by its real format', async () => {
    served['/a.png'] = (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
    await expect(fetchAgentMedia(`${base}/a.png`, 'image', allow)).resolves.toEqual({ bytes: PNG, contentType: 'image/png', filename: 'image.png' });
  });

  test('follows a few redirects, not more', async () => {
    served['/r1'] = (_req, res) => res.writeHead(302, { location: '/r2' }).end();
    served['/r2'] = (_req, res) => res.writeHead(301, { location: `${base}/a.jpg` }).end();
    served['/a.jpg'] = (_req, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPEG);
    await expect(fetchAgentMedia(`${base}/r1`, 'image', allow)).resolves.toMatchObject({ contentType: 'image/jpeg' });
    served['/loop'] = (_req, res) => res.writeHead(302, { location: '/loop' }).end();
    expect(codeOf(await fetchAgentMedia(`${base}/loop`, 'image', allow).catch((e: unknown) => e))).toBe('media_download_failed');
  });

  test('a declared size over the limit is refused before reading; an undeclared one at the first byte over', async () => {
    const limit = OUTBOUND_MEDIA_RULES.voice.maxBytes;
    let sent = 0;
    served['/big-declared.amr'] = (_req, res) => res.writeHead(200, { 'content-type': 'audio/amr', 'content-length': String(limit + 1) }).end();
    served['/big-streamed.amr'] = (_req, res) => {
      res.writeHead(200, { 'content-type': 'audio/amr' });
      const chunk = Buffer.alloc(256 * 1024, 1);
      const pump = () => {
        while (sent < limit * 4) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    };
    const declared = await fetchAgentMedia(`${base}/big-declared.amr`, 'voice', allow).catch((e: unknown) => e);
    expect(codeOf(declared)).toBe('media_too_large');
    const streamed = await fetchAgentMedia(`${base}/big-streamed.amr`, 'voice', allow).catch((e: unknown) => e);
    expect(codeOf(streamed)).toBe('media_too_large');
    expect((streamed as Error).message).toContain(String(limit));
    expect(sent).toBeLessThan(limit * 4); // the download stopped early
  });

  test('errors, wrong types and silence fail with a reason', async () => {
    served['/gone'] = (_req, res) => res.writeHead(410).end();
    served['/page'] = (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
    served['/slow'] = () => undefined; // never answers
    expect(codeOf(await fetchAgentMedia(`${base}/gone`, 'image', allow).catch((e: unknown) => e))).toBe('media_download_failed');
    expect(codeOf(await fetchAgentMedia(`${base}/page`, 'image', allow).catch((e: unknown) => e))).toBe('unsupported_media_type');
    const slow = await fetchAgentMedia(`${base}/slow`, 'image', { ...allow, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(codeOf(slow)).toBe('media_download_failed');
    expect((slow as Error).message).toContain('200 ms');
  });

  test('without the test allowance, a name resolving to a private address is refused before connecting', async () => {
    let connected = false;
    served['/a.png'] = (_req, res) => {
      connected = true;
      res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
    };
    const port = (server.address() as AddressInfo).port;
    const lookup = ((_host: string, _options: unknown, callback: (e: null, a: Array<{ address: string; family: number }>) => void) =>
      callback(null, [{ address: '127.0.0.1', family: 4 }])) as never;
    const error = await fetchAgentMedia(`https://cdn.example.com:${port}/a.png`, 'image', { lookup }).catch((e: unknown) => e);
    expect(codeOf(error)).toBe('media_url_refused');
    expect(connected).toBe(false);
    // And plain http is refused without the allowance.
    expect(codeOf(await fetchAgentMedia(`${base}/a.png`, 'image').catch((e: unknown) => e))).toBe('media_url_refused');
    expect(connected).toBe(false);
  });
});
