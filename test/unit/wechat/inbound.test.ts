/**
 * openPush, the whole push pipeline as one pure function, with Tencent's public vectors (safe and
 * compatible mode), the documented plain-mode signature and the official sample messages: every
 * refusal with its status and reason, key rotation, and the credential the replay guard keeps.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeEncodingAesKey, decryptWeChatMessage, encryptWeChatMessage } from '../../../src/wechat/crypto';
import {
  acceptedMessageModes,
  checkPushQuery,
  openPush,
  type OpenedPush,
  type PushAccount,
  type PushQuery,
  type PushRefusal,
} from '../../../src/wechat/inbound';
import { readWeChatMessage, weChatContentDigest } from '../../../src/wechat/message';
import { weChatSignature } from '../../../src/wechat/signature';

const FIXTURES = path.join(__dirname, '../../fixtures');
const official = (file: string) => readFileSync(path.join(FIXTURES, 'messages/official', file), 'utf8');

interface Vector {
  id: string;
  kind: string;
  input: Record<string, string>;
  expected: Record<string, unknown>;
}
const vectors = (JSON.parse(readFileSync(path.join(FIXTURES, 'crypto-vectors.json'), 'utf8')) as { vectors: Vector[] }).vectors;
const vector = (id: string): Vector => vectors.find((v) => v.id === id)!;
const decryptVectors = vectors.filter((v) => v.kind === 'decrypt_message');

/** A vector's push as WeChat sends it: the plain signature over timestamp and nonce, msg_signature over Encrypt too. */
function encryptedPush(v: Vector): { query: PushQuery; body: string; account: PushAccount; receivedAtMs: number } {
  const { token, timestamp, nonce } = v.input as { token: string; timestamp: string; nonce: string };
  return {
    query: { timestamp, nonce, signature: weChatSignature([token, timestamp, nonce]), msg_signature: v.input['msg_signature'], encrypt_type: 'aes' },
    body: v.input['post_body']!,
    account: { token, appId: v.input['receive_id']!, aesKeys: [decodeEncodingAesKey(v.input['encoding_aes_key']!)] },
    receivedAtMs: Number(timestamp) * 1000,
  };
}

const PLAIN = vector('doc-encryption-plainmode-post');
/** The documented plain-mode POST, with the official text message as its body. */
function plainPush(body = official('text.xml')) {
  const { token, timestamp, nonce } = PLAIN.input as { token: string; timestamp: string; nonce: string };
  return {
    query: { timestamp, nonce, signature: PLAIN.expected['signature'] as string },
    body,
    account: { token, appId: 'wx0000000000000000', aesKeys: [] } as PushAccount,
    receivedAtMs: Number(timestamp) * 1000,
  };
}

function opened(result: OpenedPush | PushRefusal): OpenedPush {
  if (result.kind !== 'opened') throw new Error(`refused: ${result.status} ${result.reason}`);
  return result;
}
/** Why decrypting an envelope's Encrypt with `key` fails (it must fail). */
function decryptFailure(body: string, key: Buffer, appId: string): string {
  const encrypt = /<Encrypt><!\[CDATA\[([^\]]+)\]\]><\/Encrypt>/.exec(body)![1]!;
  try {
    decryptWeChatMessage(encrypt, key, appId);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('decrypted with the wrong key');
}
const refusal = (result: OpenedPush | PushRefusal) => (result.kind === 'refused' ? { status: result.status, reason: result.reason } : result);

describe('openPush with the public vectors', () => {
  test.each(decryptVectors.map((v) => [v.id, v] as const))('%s: decrypted and read', (_id, v) => {
    const push = opened(openPush(encryptedPush(v)));
    expect(push.message).toEqual(readWeChatMessage(v.expected['plaintext'] as string));
    expect(push.mode).toBe(v.input['post_body']!.includes('<MsgType>') ? 'compatible' : 'safe');
  });

  test('the documented plain signature of the debug_demo push opens it', () => {
    const v = vector('doc-3rdparty-debug_demo-decrypt');
    const documented = vector('doc-3rdparty-safemode-plain-signature');
    expect(documented.input).toMatchObject({ token: v.input['token'], timestamp: v.input['timestamp'], nonce: v.input['nonce'] });
    const push = encryptedPush(v);
    const message = opened(openPush({ ...push, query: { ...push.query, signature: documented.expected['signature'] as string } })).message;
    expect(message).toMatchObject({ msgType: 'event', event: 'debug_demo', fromUserName: 'o9AgO5Kd5ggOC-bXrbNODIiE3bGY' });
    expect({ ...message.fields }).toEqual({ debug_str: 'hello world' });
  });

  test('the documented plain-mode POST opens the official text message', () => {
    const push = opened(openPush(plainPush()));
    expect(push.mode).toBe('plain');
    expect(push.message).toEqual(readWeChatMessage(official('text.xml')));
  });

  test.each(['event-subscribe.xml', 'event-CLICK.xml', 'image.xml', 'location.xml', 'voice-recognition.xml'])('plain %s reads as the model', (file) => {
    expect(opened(openPush(plainPush(official(file)))).message).toEqual(readWeChatMessage(official(file)));
  });

  test('compatible mode trusts only the ciphertext, not the plaintext copy beside it', () => {
    const push = encryptedPush(vector('tencent-mp-python-sample-decrypt'));
    const forged = push.body.replace('<Content><![CDATA[abcdteT]]></Content>', '<Content><![CDATA[forged]]></Content>');
    expect(forged).not.toBe(push.body);
    expect(opened(openPush({ ...push, body: forged })).message.fields['content']).toBe('abcdteT');
  });
});

describe('openPush refusals', () => {
  const safe = () => encryptedPush(vector('tencent-mp-cpp-sample-decrypt'));

  test('the query: signature, then timestamp, judged at arrival', () => {
    const push = plainPush();
    expect(refusal(openPush({ ...push, query: { ...push.query, signature: 'f'.repeat(40) } }))).toEqual({ status: 401, reason: 'invalid signature' });
    expect(refusal(openPush({ ...push, query: { ...push.query, timestamp: undefined } }))).toEqual({ status: 401, reason: 'invalid signature' });
    expect(refusal(openPush({ ...push, receivedAtMs: push.receivedAtMs + 301_000 }))).toEqual({ status: 401, reason: 'stale timestamp' });
    expect(refusal(openPush({ ...push, receivedAtMs: push.receivedAtMs - 301_000 }))).toEqual({ status: 401, reason: 'stale timestamp' });
    expect(openPush({ ...push, receivedAtMs: push.receivedAtMs + 300_000 }).kind).toBe('opened');
    // A bad signature wins over a bad body: nothing of the body is looked at.
    expect(refusal(openPush({ ...push, body: '', query: { ...push.query, signature: undefined } }))).toEqual({ status: 401, reason: 'invalid signature' });
  });

  test('checkPushQuery is the same check, without a body', () => {
    const push = plainPush();
    expect(checkPushQuery(push.query, push.account.token, push.receivedAtMs)).toBeUndefined();
    expect(checkPushQuery(push.query, 'other-token', push.receivedAtMs)).toEqual({ kind: 'refused', status: 401, reason: 'invalid signature' });
    expect(checkPushQuery(push.query, push.account.token, push.receivedAtMs + 400_000)).toEqual({ kind: 'refused', status: 401, reason: 'stale timestamp' });
  });

  test('the body: empty, not XML, not a WeChat message', () => {
    expect(refusal(openPush(plainPush('  \n')))).toEqual({ status: 400, reason: 'empty body' });
    expect(refusal(openPush(plainPush('<xml><a>')))).toEqual({ status: 400, reason: 'XML is not well-formed' });
    expect(refusal(openPush(plainPush('<!DOCTYPE x><xml/>')))).toEqual({ status: 400, reason: 'XML DTDs and entity declarations are not allowed' });
    expect(refusal(openPush(plainPush('<xml><a>1</a></xml>')))).toEqual({ status: 400, reason: 'not a WeChat message' });
  });

  test('the modes: WECHAT_MESSAGE_MODES, or what the keys allow', () => {
    const plain = plainPush();
    expect(refusal(openPush({ ...plain, account: { ...plain.account, messageModes: ['safe'] } }))).toEqual({
      status: 401,
      reason: 'plain mode push refused (WECHAT_MESSAGE_MODES)',
    });
    const push = safe();
    expect(refusal(openPush({ ...push, account: { ...push.account, aesKeys: [] } }))).toEqual({ status: 401, reason: 'safe mode push refused (WECHAT_MESSAGE_MODES)' });
    const compatible = encryptedPush(vector('tencent-mp-python-sample-decrypt'));
    expect(refusal(openPush({ ...compatible, account: { ...compatible.account, messageModes: ['plain', 'safe'] } }))).toEqual({
      status: 401,
      reason: 'compatible mode push refused (WECHAT_MESSAGE_MODES)',
    });
    expect(refusal(openPush({ ...push, account: { ...push.account, aesKeys: [], messageModes: ['safe'] } }))).toEqual({
      status: 400,
      reason: 'encrypted message but WECHAT_ENCODING_AES_KEY is not set',
    });
    expect(refusal(openPush({ ...plain, query: { ...plain.query, encrypt_type: 'rsa' } }))).toEqual({ status: 400, reason: 'unknown encrypt_type' });
    expect(openPush({ ...plain, query: { ...plain.query, encrypt_type: 'raw' } }).kind).toBe('opened');
  });

  test('the ciphertext: missing, signed by someone else, for another AppID, under another key', () => {
    const push = safe();
    expect(refusal(openPush({ ...push, body: '<xml><ToUserName>t</ToUserName></xml>' }))).toEqual({ status: 400, reason: 'missing Encrypt' });
    expect(refusal(openPush({ ...push, query: { ...push.query, msg_signature: 'a'.repeat(40) } }))).toEqual({ status: 401, reason: 'invalid msg_signature' });
    expect(refusal(openPush({ ...push, account: { ...push.account, appId: 'wx0000000000000000' } }))).toEqual({
      status: 400,
      reason: 'message is not addressed to this AppID',
    });
    const otherKey = decodeEncodingAesKey('A'.repeat(43));
    expect(refusal(openPush({ ...push, account: { ...push.account, aesKeys: [otherKey] } }))).toEqual({
      status: 400,
      reason: decryptFailure(push.body, otherKey, push.account.appId),
    });
  });
});

describe('openPush and key rotation', () => {
  const push = encryptedPush(vector('tencent-mp-cpp-sample-decrypt'));
  const right = push.account.aesKeys[0]!;
  const other = decodeEncodingAesKey('B'.repeat(43));

  test('the current key first, then the previous one', () => {
    expect(opened(openPush({ ...push, account: { ...push.account, aesKeys: [right, other] } })).message.msgId).toBe('6057404712141979648');
    expect(opened(openPush({ ...push, account: { ...push.account, aesKeys: [other, right] } })).message.msgId).toBe('6057404712141979648');
  });

  test('neither key: the current key\'s error', () => {
    // A key of the wrong size fails otherwise than a wrong key, so the two reasons tell the order.
    const short = Buffer.alloc(16, 1);
    expect(decryptFailure(push.body, short, push.account.appId)).toBe('AES key must be 32 bytes');
    expect(decryptFailure(push.body, other, push.account.appId)).toBe('invalid padding');
    expect(refusal(openPush({ ...push, account: { ...push.account, aesKeys: [other, short] } }))).toEqual({ status: 400, reason: 'invalid padding' });
    expect(refusal(openPush({ ...push, account: { ...push.account, aesKeys: [short, other] } }))).toEqual({ status: 400, reason: 'AES key must be 32 bytes' });
  });

  test('a message sealed with the new key opens while the old one is still listed second', () => {
    const xml = official('text.xml');
    const encrypt = encryptWeChatMessage(xml, other, push.account.appId);
    const { timestamp, nonce } = push.query as { timestamp: string; nonce: string };
    const token = push.account.token;
    const sealed = openPush({
      query: { ...push.query, msg_signature: weChatSignature([token, timestamp, nonce, encrypt]) },
      body: `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`,
      account: { ...push.account, aesKeys: [other, right] },
      receivedAtMs: push.receivedAtMs,
    });
    expect(opened(sealed).message).toEqual(readWeChatMessage(xml));
  });
});

describe('openPush replay credential', () => {
  test('one per signed query, with the content digest, good as long as the timestamp', () => {
    const push = plainPush();
    const first = opened(openPush(push));
    expect(first.replay.credential).toMatch(/^wechat-push:[0-9a-f]{64}$/);
    expect(first.replay.requestDigest).toBe(weChatContentDigest(first.message));
    expect(first.replay.expiresAt).toBe((Number(push.query.timestamp) + 360) * 1000);
    // The signature's hex case does not make another credential.
    const upper = opened(openPush({ ...push, query: { ...push.query, signature: push.query.signature.toUpperCase() } }));
    expect(upper.replay.credential).toBe(first.replay.credential);
    // The same query with other content: the same credential, another digest (the guard's forgery case).
    const other = opened(openPush({ ...push, body: official('image.xml') }));
    expect(other.replay.credential).toBe(first.replay.credential);
    expect(other.replay.requestDigest).not.toBe(first.replay.requestDigest);
  });

  test('another nonce is another credential', () => {
    const a = encryptedPush(vector('tencent-mp-python-sample-decrypt'));
    const b = encryptedPush(vector('tencent-mp-cpp-sample-decrypt'));
    expect(opened(openPush(a)).replay.credential).not.toBe(opened(openPush(b)).replay.credential);
  });
});

describe('acceptedMessageModes', () => {
  const key = decodeEncodingAesKey('A'.repeat(43));
  test('the configured modes, else plain and, with a key, the encrypted two', () => {
    expect([...acceptedMessageModes({ aesKeys: [] })]).toEqual(['plain']);
    expect([...acceptedMessageModes({ aesKeys: [key] })]).toEqual(['plain', 'compatible', 'safe']);
    expect([...acceptedMessageModes({ aesKeys: [key], messageModes: ['safe'] })]).toEqual(['safe']);
  });
});
