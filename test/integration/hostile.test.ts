/**
 * Hostile and broken requests: each gets its short 4xx and a log line, and the bridge keeps serving.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { aesKeyOf, platformEncrypt, platformSignature } from '../../src/sandbox/wechat/crypto';
import { startHarness, TEST_AES_KEY, TEST_APP_ID, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { pushToBridge, signedPush } from '../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
const now = () => Math.floor(Date.now() / 1000);

interface HostileCase {
  name: string;
  method?: 'GET' | 'POST';
  /** Path with query, and body. */
  request: () => { path: string; body?: string };
  status: number;
}

function signedQuery(extra: Record<string, string> = {}, timestamp = now()): URLSearchParams {
  const nonce = '12345';
  return new URLSearchParams({ signature: platformSignature([TEST_TOKEN, String(timestamp), nonce]), timestamp: String(timestamp), nonce, ...extra });
}

function safeModeRequest(encrypt: string, options: { badMsgSignature?: boolean } = {}) {
  const timestamp = String(now());
  const query = signedQuery({
    encrypt_type: 'aes',
    msg_signature: options.badMsgSignature ? '0'.repeat(40) : platformSignature([TEST_TOKEN, timestamp, '12345', encrypt]),
  });
  return { path: `/weChatEvent?${query}`, body: `<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>` };
}

const BILLION_LAUGHS = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>`;
const EXTERNAL_ENTITY = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>`;

const CASES: HostileCase[] = [
  { name: 'GET without signature', method: 'GET', request: () => ({ path: '/weChatEvent?echostr=abc' }), status: 401 },
  { name: 'GET with a wrong signature', method: 'GET', request: () => ({ path: `/weChatEvent?signature=${'a'.repeat(40)}&timestamp=1&nonce=2&echostr=abc` }), status: 401 },
  { name: 'POST without signature', request: () => ({ path: '/weChatEvent', body: TEXT }), status: 401 },
  { name: 'POST with a wrong signature', request: () => ({ path: `/weChatEvent?signature=${'0'.repeat(40)}&timestamp=${now()}&nonce=1`, body: TEXT }), status: 401 },
  { name: 'POST with repeated signature parameters', request: () => ({ path: `/weChatEvent?${signedQuery()}&signature=x`, body: TEXT }), status: 401 },
  { name: 'stale timestamp (6 minutes old)', request: () => ({ path: `/weChatEvent?${signedQuery({}, now() - 360)}`, body: TEXT }), status: 401 },
  { name: 'timestamp from the future (6 minutes ahead)', request: () => ({ path: `/weChatEvent?${signedQuery({}, now() + 360)}`, body: TEXT }), status: 401 },
  { name: 'empty body', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: '' }), status: 400 },
  { name: 'malformed XML', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: '<xml><ToUserName>a</ToUser' }), status: 400 },
  { name: 'not XML at all', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: '{"json":true}' }), status: 400 },
  { name: 'XML that is not a WeChat message', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: '<xml><Hello>world</Hello></xml>' }), status: 400 },
  { name: 'a root other than <xml>', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: TEXT.replace(/xml>/g, 'note>') }), status: 400 },
  { name: 'entity expansion (billion laughs)', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: BILLION_LAUGHS }), status: 400 },
  { name: 'external entity (XXE)', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: EXTERNAL_ENTITY }), status: 400 },
  { name: 'deep nesting', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: `<xml>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</xml>` }), status: 400 },
  { name: 'a 1 MiB body', request: () => ({ path: `/weChatEvent?${signedQuery()}`, body: TEXT.replace('this is a test', 'x'.repeat(1024 * 1024)) }), status: 413 },
  { name: 'unknown encrypt_type', request: () => ({ path: `/weChatEvent?${signedQuery({ encrypt_type: 'rot13' })}`, body: TEXT }), status: 400 },
  { name: 'safe mode without Encrypt', request: () => ({ path: `/weChatEvent?${signedQuery({ encrypt_type: 'aes', msg_signature: 'x' })}`, body: TEXT }), status: 400 },
  { name: 'safe mode with a wrong msg_signature', request: () => safeModeRequest(platformEncrypt(TEXT, TEST_AES_KEY, TEST_APP_ID), { badMsgSignature: true }), status: 401 },
  {
    name: 'safe mode encrypted with a wrong AES key',
    request: () => safeModeRequest(platformEncrypt(TEXT, aesKeyOf('Z'.repeat(43)), TEST_APP_ID)),
    status: 400,
  },
  { name: 'safe mode for another AppID', request: () => safeModeRequest(platformEncrypt(TEXT, TEST_AES_KEY, 'wx0000000000000000')), status: 400 },
  { name: 'truncated ciphertext', request: () => safeModeRequest(platformEncrypt(TEXT, TEST_AES_KEY, TEST_APP_ID).slice(0, 50)), status: 400 },
  { name: 'ciphertext that is not base64', request: () => safeModeRequest('!!!not-base64!!!'), status: 400 },
];

describe('hostile requests to /weChatEvent', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  test.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const logLinesBefore = harness.logs.length;
    const { path: requestPath, body } = c.request();
    const response = await fetch(`${harness.baseUrl}${requestPath}`, {
      method: c.method ?? 'POST',
      headers: c.method === 'GET' ? {} : { 'content-type': 'text/xml' },
      body: c.method === 'GET' ? undefined : body,
    });
    const text = await response.text();
    expect(response.status).toBe(c.status);
    expect(text.length).toBeLessThan(100); // short answers only, no stack traces
    expect(text).not.toContain('abc'); // never the echostr
    expect(harness.logs.length).toBeGreaterThan(logLinesBefore); // a log line for every rejection
    expect(harness.logs.slice(logLinesBefore).join('')).toContain(String(c.status));
  });

  test('__proto__ and constructor tags are harmless: stored as a normal message, nothing polluted', async () => {
    const xml = TEXT.replace('<MsgId>', '<__proto__><polluted>yes</polluted></__proto__><constructor>x</constructor><prototype>y</prototype><MsgId>').replace('1234567890123456', '777');
    const answer = await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN });
    expect(answer).toEqual({ status: 200, text: 'success' });
    const events = await harness.vonage.waitForEvents(1);
    const event = events.find((e) => e.body.msg_id === '777')!;
    expect(event.body.content).toBe('this is a test');
    expect(Object.keys(event.body)).not.toEqual(expect.arrayContaining(['polluted']));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('control characters in the text are tolerated and kept', async () => {
    const xml = TEXT.replace('this is a test', 'a\u0002b\u0010c\u001dd').replace('1234567890123456', '778');
    expect(await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
    await harness.vonage.waitForEvents(2);
    expect(harness.vonage.events.find((e) => e.body.msg_id === '778')?.body.content).toBe('a\u0002b\u0010c\u001dd');
  });

  test('after all of that the bridge still serves', async () => {
    expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${harness.baseUrl}/readyz`)).status).toBe(200);
    const push = signedPush(TEXT.replace('1234567890123456', '779'), { token: TEST_TOKEN });
    const response = await fetch(`${harness.baseUrl}${push.path}`, { method: 'POST', body: push.body });
    expect(response.status).toBe(200);
  });
});

describe('GET /weChatEvent URL verification', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  test('a valid signature gets the echostr back verbatim as text/plain', async () => {
    const query = signedQuery({ echostr: '4375120948345356249' });
    const response = await fetch(`${harness.baseUrl}/weChatEvent?${query}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await response.text()).toBe('4375120948345356249');
  });
});
