import { captureLogs } from '../support/bridge-harness';
import { chooseLogFormat, createLogger, scrubSecrets } from '../../src/logger';
import { waitFor } from '../support/wait';

describe('logs never carry secrets', () => {
  test('access tokens in URLs, bearer tokens and PEM keys are scrubbed from text', () => {
    expect(scrubSecrets('POST https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=ABC.def-123&x=1')).toBe(
      'POST https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=[REDACTED]&x=1',
    );
    expect(scrubSecrets('Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig')).toBe('Authorization: Bearer [REDACTED]');
    expect(scrubSecrets('key -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- end')).toBe('key [REDACTED PRIVATE KEY] end');
  });

  test('secret keys, URL tokens inside objects and error messages are redacted in the output', () => {
    const { lines, destination } = captureLogs();
    const logger = createLogger({ level: 'info', destination });
    logger.info({ appSecret: 's3cr3t', nested: { access_token: 'tok123', url: 'https://x/?access_token=tok456' } }, 'calling https://x/?access_token=tok789');
    logger.error({ err: new Error('failed: https://x/?access_token=tok000') }, 'boom');
    const out = lines.join('');
    for (const secret of ['s3cr3t', 'tok123', 'tok456', 'tok789', 'tok000']) expect(out).not.toContain(secret);
    expect(out).toContain('[REDACTED]');
  });

  test('a token a remote names in words, a JWT, and the literal secret values are scrubbed too', () => {
    const token = '90_' + 'AbC9-x_'.repeat(20);
    const jwtText = 'eyJhbGciOiJSUzI1NiJ9.eyJhcHBsaWNhdGlvbl9pZCI6IngifQ.c2lnbmF0dXJl';
    const text = `invalid credential, access_token is ${token}; access_token: ${token}; detail ${jwtText}; secret s3cr3t-value-1234`;
    const out = scrubSecrets(text, ['s3cr3t-value-1234', 'abc', undefined]);
    expect(out).not.toContain(token);
    expect(out).not.toContain('eyJhcHBsaWNhdGlvbl9pZCI6IngifQ');
    expect(out).not.toContain('s3cr3t-value-1234');
    expect(out).toContain('invalid credential');
    // Too short to be a secret: ordinary words stay.
    expect(scrubSecrets('abc def', ['abc'])).toBe('abc def');
  });

  test('secret keys are redacted however deep (up to four levels), and in a child logger\'s bindings', () => {
    const { lines, destination } = captureLogs();
    const logger = createLogger({ level: 'info', destination });
    logger.info(
      { req: { headers: { authorization: 'Bearer-less-credential-1', cookie: 'session=cookie-value-2' } }, config: { headers: { Authorization: 'credential-3' } }, items: [{ privateKey: 'pem-4' }] },
      'request',
    );
    logger.child({ component: 'wechat-api', secret: 'bound-secret-5' }).warn({ kind: 'deliver-to-vonage', attempts: 2 }, 'retrying');
    logger.child({ account: 'shop' }).child({ component: 'media', token: 'grand-child-6' }).info('fetched');
    const out = lines.join('');
    for (const secret of ['Bearer-less-credential-1', 'cookie-value-2', 'credential-3', 'pem-4', 'bound-secret-5', 'grand-child-6']) expect(out).not.toContain(secret);
    const [first, second, third] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(third).toMatchObject({ account: 'shop', component: 'media', token: '[REDACTED]', msg: 'fetched' });
    expect(first).toMatchObject({ req: { headers: { authorization: '[REDACTED]', cookie: '[REDACTED]' } }, items: [{ privateKey: '[REDACTED]' }] });
    // What is not a secret is written as it was.
    expect(second).toMatchObject({ component: 'wechat-api', secret: '[REDACTED]', kind: 'deliver-to-vonage', attempts: 2, msg: 'retrying' });
  });

  test('a logger given the secret values scrubs them from every line', () => {
    const { lines, destination } = captureLogs();
    const logger = createLogger({ level: 'info', destination, secrets: ['the-app-secret-value'] });
    logger.warn({ reason: 'WeChat said: the-app-secret-value is wrong' }, 'echo the-app-secret-value');
    expect(lines.join('')).not.toContain('the-app-secret-value');
  });
});

describe('log format', () => {
  test('LOG_FORMAT wins; otherwise pretty only on a terminal outside production', () => {
    expect(chooseLogFormat('json', true, 'development')).toBe('json');
    expect(chooseLogFormat('pretty', false, 'production')).toBe('pretty');
    expect(chooseLogFormat(undefined, true, undefined)).toBe('pretty');
    expect(chooseLogFormat(undefined, true, 'development')).toBe('pretty');
    expect(chooseLogFormat(undefined, true, 'production')).toBe('json');
    expect(chooseLogFormat(undefined, false, undefined)).toBe('json');
  });

  test('pretty lines are readable text, still without secrets', async () => {
    const { lines, destination } = captureLogs();
    const logger = createLogger({ level: 'info', destination, format: 'pretty' });
    logger.info({ appSecret: 's3cr3t', openid: 'o-user-1' }, 'calling https://x/?access_token=tok789');
    logger.flush();
    await waitFor('the pretty line', () => lines.join('').includes('calling'));
    const out = lines.join('');
    expect(() => JSON.parse(out) as unknown).toThrow();
    expect(out).toMatch(/INFO.*calling https:\/\/x\/\?access_token=\[REDACTED\]/);
    expect(out).toContain('openid: "o-user-1"');
    expect(out).not.toContain('s3cr3t');
    expect(out).not.toContain('tok789');
  });

  test('json stays one JSON object a line', () => {
    const { lines, destination } = captureLogs();
    createLogger({ level: 'info', destination, format: 'json' }).info({ openid: 'o-user-1' }, 'hello');
    expect(JSON.parse(lines.join(''))).toMatchObject({ msg: 'hello', openid: 'o-user-1', level: 30 });
  });
});
