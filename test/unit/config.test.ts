import { generateKeyPairSync } from 'node:crypto';
import { loadConfig } from '../../src/config';
import { testKeyPair } from '../support/keys';

const valid = () => ({
  WECHAT_TOKEN: 'token123',
  WECHAT_APP_ID: 'wx2c2769f8efd9abc2',
  WECHAT_APP_SECRET: 'appsecret',
  VONAGE_APPLICATION_ID: '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a',
  VONAGE_PRIVATE_KEY: testKeyPair().privateKeyPem,
  VONAGE_CONVERSATION_ID: 'CON-1',
});

describe('loadConfig', () => {
  test('a minimal valid environment gets the contract defaults', () => {
    const result = loadConfig(valid());
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(result.config).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: 'sqlite:./data/bridge.db',
      logLevel: 'info',
      weChat: { apiBaseUrl: 'https://api.weixin.qq.com', aesKeys: [] },
      vonage: { apiBaseUrl: 'https://api.nexmo.com/v1', signatureSecret: undefined },
    });
  });

  test('the private key may be given with \\n escapes', () => {
    const escaped = testKeyPair().privateKeyPem.replace(/\n/g, '\\n');
    expect(loadConfig({ ...valid(), VONAGE_PRIVATE_KEY: escaped }).ok).toBe(true);
  });

  test('empty values count as unset and get their defaults (example.env leaves most of them blank)', () => {
    const blank = { WECHAT_ENCODING_AES_KEY: '', PORT: '', HOST: ' ', VONAGE_SIGNATURE_SECRET: '', WECHAT_API_BASE_URL: '', VONAGE_API_BASE_URL: '', DATABASE_URL: '', LOG_LEVEL: '', PUBLIC_URL: '' };
    const result = loadConfig({ ...valid(), ...blank });
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(result.config).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      publicUrl: undefined,
      databaseUrl: 'sqlite:./data/bridge.db',
      logLevel: 'info',
      weChat: { apiBaseUrl: 'https://api.weixin.qq.com', aesKeys: [] },
      vonage: { apiBaseUrl: 'https://api.nexmo.com/v1', signatureSecret: undefined },
    });
  });

  test('VONAGE_PREVIOUS_SIGNATURE_SECRET is read beside the current secret; blank is unset', () => {
    const rotating = loadConfig({ ...valid(), VONAGE_SIGNATURE_SECRET: 'new-secret', VONAGE_PREVIOUS_SIGNATURE_SECRET: 'old-secret' });
    if (!rotating.ok) throw new Error(rotating.errors.join('; '));
    expect(rotating.config.vonage).toMatchObject({ signatureSecret: 'new-secret', previousSignatureSecret: 'old-secret' });
    const blank = loadConfig({ ...valid(), VONAGE_SIGNATURE_SECRET: 'new-secret', VONAGE_PREVIOUS_SIGNATURE_SECRET: ' ' });
    if (!blank.ok) throw new Error(blank.errors.join('; '));
    expect(blank.config.vonage.previousSignatureSecret).toBeUndefined();
  });

  test('a blank required value is reported as required', () => {
    const result = loadConfig({ ...valid(), WECHAT_TOKEN: '  ' });
    expect(result.ok ? [] : result.errors).toEqual([expect.stringMatching(/^WECHAT_TOKEN is required/)]);
  });

  test('both AES keys are decoded, current first', () => {
    const result = loadConfig({
      ...valid(),
      WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
      WECHAT_PREVIOUS_ENCODING_AES_KEY: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    });
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(result.config.weChat.aesKeys.map((k) => k.length)).toEqual([32, 32]);
    expect(result.config.weChat.aesKeys[1]!.equals(Buffer.alloc(32))).toBe(true);
  });

  test('every bad variable is named with its reason, all at once', () => {
    const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const result = loadConfig({
      WECHAT_APP_ID: 'wx1',
      WECHAT_ENCODING_AES_KEY: 'short',
      VONAGE_PRIVATE_KEY: ecKey,
      VONAGE_API_BASE_URL: 'not a url',
      PORT: '70000',
      LOG_LEVEL: 'chatty',
      DATABASE_URL: 'mysql://x',
    });
    expect(result.ok).toBe(false);
    const errors = result.ok ? [] : result.errors;
    const text = errors.join('\n');
    for (const name of ['WECHAT_TOKEN', 'WECHAT_APP_SECRET', 'WECHAT_ENCODING_AES_KEY', 'VONAGE_APPLICATION_ID', 'VONAGE_PRIVATE_KEY', 'VONAGE_API_BASE_URL', 'PORT', 'LOG_LEVEL', 'DATABASE_URL']) {
      expect(text).toContain(name);
    }
    // Optional since per-user conversations: unset means a conversation per WeChat user.
    expect(text).not.toContain('VONAGE_CONVERSATION_ID');
    expect(text).toMatch(/WECHAT_ENCODING_AES_KEY must be exactly 43/);
    expect(text).toMatch(/VONAGE_PRIVATE_KEY .*RSA/);
    expect(text).not.toContain('BEGIN');
  });

  test('without VONAGE_CONVERSATION_ID the bridge runs in per-user mode; media settings have defaults', () => {
    const { VONAGE_CONVERSATION_ID: _fixed, ...perUser } = valid();
    const result = loadConfig(perUser);
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(result.config.vonage.conversationId).toBeUndefined();
    expect(result.config.media).toEqual({ cacheDir: './data/media', linkSecret: undefined });
    const fixed = loadConfig({ ...valid(), MEDIA_CACHE_DIR: '/var/cache/bridge', MEDIA_LINK_SECRET: 'a-long-random-secret-value' });
    if (!fixed.ok) throw new Error(fixed.errors.join('; '));
    expect(fixed.config.vonage.conversationId).toBe('CON-1');
    expect(fixed.config.media).toEqual({ cacheDir: '/var/cache/bridge', linkSecret: 'a-long-random-secret-value' });
  });

  test('the reply window defaults to WeChat\'s 5 replies in 48 hours; other counts and hours are read, bad ones refused', () => {
    const defaults = loadConfig(valid());
    if (!defaults.ok) throw new Error(defaults.errors.join('; '));
    expect(defaults.config.replyWindow).toEqual({ messageReplies: 5, messageWindowMs: 48 * 3_600_000 });
    const custom = loadConfig({ ...valid(), WECHAT_REPLIES_PER_MESSAGE: '20', WECHAT_REPLY_WINDOW_HOURS: '24' });
    if (!custom.ok) throw new Error(custom.errors.join('; '));
    expect(custom.config.replyWindow).toEqual({ messageReplies: 20, messageWindowMs: 24 * 3_600_000 });
    const bad = loadConfig({ ...valid(), WECHAT_REPLIES_PER_MESSAGE: '0', WECHAT_REPLY_WINDOW_HOURS: '49' });
    expect(bad.ok).toBe(false);
    const errors = bad.ok ? [] : bad.errors;
    expect(errors).toEqual([expect.stringMatching(/^WECHAT_REPLIES_PER_MESSAGE /), expect.stringMatching(/^WECHAT_REPLY_WINDOW_HOURS /)]);
  });

  test('a short MEDIA_LINK_SECRET is refused without echoing it', () => {
    const result = loadConfig({ ...valid(), MEDIA_LINK_SECRET: 'short-secret' });
    const errors = result.ok ? [] : result.errors;
    expect(errors).toEqual([expect.stringMatching(/^MEDIA_LINK_SECRET must be at least 16/)]);
    expect(errors.join('')).not.toContain('short-secret');
  });

  test('a previous AES key without a current one is refused', () => {
    const result = loadConfig({ ...valid(), WECHAT_PREVIOUS_ENCODING_AES_KEY: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    expect(result.ok ? [] : result.errors).toEqual([expect.stringContaining('WECHAT_PREVIOUS_ENCODING_AES_KEY')]);
  });

  describe('WECHAT_MESSAGE_MODES', () => {
    const KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
    const modes = (env: Record<string, string>) => {
      const result = loadConfig({ ...valid(), ...env });
      if (!result.ok) throw new Error(result.errors.join('; '));
      return result.config.weChat.messageModes;
    };

    test('unset (or blank): no explicit list, the keys decide', () => {
      expect(modes({})).toBeUndefined();
      expect(modes({ WECHAT_MESSAGE_MODES: '  ', WECHAT_ENCODING_AES_KEY: KEY })).toBeUndefined();
    });

    test('a comma list, case and spaces forgiven, repeats dropped', () => {
      expect(modes({ WECHAT_MESSAGE_MODES: 'safe', WECHAT_ENCODING_AES_KEY: KEY })).toEqual(['safe']);
      expect(modes({ WECHAT_MESSAGE_MODES: ' Compatible , safe,safe ', WECHAT_ENCODING_AES_KEY: KEY })).toEqual(['compatible', 'safe']);
      expect(modes({ WECHAT_MESSAGE_MODES: 'plain' })).toEqual(['plain']);
    });

    test('an unknown mode or an empty list is refused', () => {
      const bad = loadConfig({ ...valid(), WECHAT_MESSAGE_MODES: 'safe,aes', WECHAT_ENCODING_AES_KEY: KEY });
      expect(bad.ok ? [] : bad.errors).toEqual([expect.stringMatching(/^WECHAT_MESSAGE_MODES.* must list plain, compatible and\/or safe/)]);
      const empty = loadConfig({ ...valid(), WECHAT_MESSAGE_MODES: ',' });
      expect(empty.ok ? [] : empty.errors).toEqual([expect.stringContaining('WECHAT_MESSAGE_MODES must list at least one')]);
    });

    test('compatible or safe without an EncodingAESKey is refused', () => {
      const result = loadConfig({ ...valid(), WECHAT_MESSAGE_MODES: 'plain,safe' });
      expect(result.ok ? [] : result.errors).toEqual([expect.stringMatching(/^WECHAT_MESSAGE_MODES lists safe but WECHAT_ENCODING_AES_KEY is not set/)]);
    });
  });
});

describe('LOG_FORMAT', () => {
  test('json or pretty; unset leaves the choice to the terminal; anything else is refused', () => {
    const unset = loadConfig(valid());
    if (!unset.ok) throw new Error(unset.errors.join('; '));
    expect(unset.config.logFormat).toBeUndefined();
    const pretty = loadConfig({ ...valid(), LOG_FORMAT: 'pretty' });
    if (!pretty.ok) throw new Error(pretty.errors.join('; '));
    expect(pretty.config.logFormat).toBe('pretty');
    const bad = loadConfig({ ...valid(), LOG_FORMAT: 'xml' });
    expect(bad.ok).toBe(false);
    expect(bad.ok ? '' : bad.errors.join('\n')).toMatch(/LOG_FORMAT/);
  });
});
