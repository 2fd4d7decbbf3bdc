/**
 * The inbound path end to end: signed WeChat pushes → the real bridge → a fake Vonage that verifies
 * the application JWT with the public key and records events.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startFakeVonage, type FakeVonage } from '../support/fake-vonage';
import { startHarness, TEST_AES_KEY, TEST_APP_ID, TEST_CONVERSATION_ID, TEST_TOKEN, TEST_VONAGE_APP_ID, type Harness } from '../support/bridge-harness';
import { testKeyPair } from '../support/keys';
import { pushToBridge } from '../support/wechat-push';
import { sleep } from '../support/wait';

const officialDir = path.join(__dirname, '../fixtures/messages/official');
const sample = (name: string) => readFileSync(path.join(officialDir, name), 'utf8');
/** Samples written from WeChat's documentation (their pages are named in the directory's index.json). */
const documented = (name: string) => readFileSync(path.join(__dirname, '../fixtures/messages/documented', name), 'utf8');

/** What each official sample must become: the contract's body fields. */
const EXPECTED: Record<string, Record<string, unknown>> = {
  'text.xml': { msg_type: 'text', content: 'this is a test', msg_id: '1234567890123456', from: 'fromUser', to: 'toUser', create_time: 1348831860 },
  'image.xml': { msg_type: 'image', pic_url: 'this is a url', media_id: 'media_id', msg_id: '1234567890123456' },
  'voice.xml': { msg_type: 'voice', media_id: 'media_id', format: 'Format' },
  'voice-recognition.xml': { msg_type: 'voice', recognition: '腾讯微信团队', content: '[voice] 腾讯微信团队' },
  'video.xml': { msg_type: 'video', media_id: 'media_id', thumb_media_id: 'thumb_media_id' },
  'shortvideo.xml': { msg_type: 'shortvideo', media_id: 'media_id', thumb_media_id: 'thumb_media_id' },
  'location.xml': { msg_type: 'location', location_x: '23.134521', location_y: '113.358803', scale: '20', label: '位置信息' },
  'link.xml': { msg_type: 'link', title: '公众平台官网链接', description: '公众平台官网链接', url: 'url' },
  'event-subscribe.xml': { msg_type: 'event', event: 'subscribe' },
  'event-unsubscribe.xml': { msg_type: 'event', event: 'unsubscribe' },
  'event-subscribe-qrscene.xml': { msg_type: 'event', event: 'subscribe', event_key: 'qrscene_123123', ticket: 'TICKET' },
  'event-SCAN.xml': { msg_type: 'event', event: 'SCAN', event_key: 'SCENE_VALUE', ticket: 'TICKET' },
  'event-LOCATION.xml': { msg_type: 'event', event: 'LOCATION', latitude: '23.137466', longitude: '113.352425', precision: '119.385040' },
  'event-CLICK.xml': { msg_type: 'event', event: 'CLICK', event_key: 'EVENTKEY' },
  'event-VIEW.xml': { msg_type: 'event', event: 'VIEW', event_key: 'www.qq.com' },
  'event-TEMPLATESENDJOBFINISH.xml': { msg_type: 'event', event: 'TEMPLATESENDJOBFINISH', msg_id: '200163836', status: 'success' },
  'msgmenu-click-text.xml': { msg_type: 'text', content: '取消支付', msg_id: '25373744922163388', biz_msg_menu_id: '0' },
};

describe('every official sample becomes exactly one custom:wechat:message event', () => {
  let vonage: FakeVonage;
  beforeAll(async () => {
    vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
  });
  afterAll(() => vonage.close());

  test('the table covers every sample message file', () => {
    const files = readdirXml().filter((f) => !f.includes('mode-body'));
    expect(Object.keys(EXPECTED).sort()).toEqual(files.sort());
  });

  for (const mode of ['plain', 'safe', 'compatible'] as const) {
    test.each(Object.entries(EXPECTED))(`${mode} mode: %s`, async (file, expected) => {
      // A fresh bridge per sample: several official samples share MsgId 1234567890123456 and
      // would (rightly) be deduplicated against each other.
      const harness = await startHarness({ vonage });
      try {
        const before = vonage.events.length;
        const answer = await pushToBridge(harness.baseUrl, sample(file), { token: TEST_TOKEN, mode, aesKey: TEST_AES_KEY, appId: TEST_APP_ID });
        expect(answer).toEqual({ status: 200, text: 'success' });
        const events = await vonage.waitForEvents(before + 1);
        const event = events[before]!;
        expect(event.conversationId).toBe(TEST_CONVERSATION_ID);
        expect(event.type).toBe('custom:wechat:message');
        expect(event.body).toMatchObject({ direction: 'inbound', ...expected });
        for (const key of ['from', 'to', 'content', 'msg_type', 'msg_id']) expect(typeof event.body[key]).toBe('string');
        expect(typeof event.body.create_time).toBe('number');
        expect(event.jwtClaims).toMatchObject({ application_id: TEST_VONAGE_APP_ID });
        await sleep(50);
        expect(vonage.events.length).toBe(before + 1);
      } finally {
        await harness.close();
      }
    });
  }
});

function readdirXml(): string[] {
  return readdirSync(officialDir).filter((f) => f.endsWith('.xml'));
}

describe('delivery guarantees', () => {
  let harness: Harness;
  beforeEach(async () => {
    harness = await startHarness();
  });
  afterEach(() => harness.close());

  test('the same message pushed three times (WeChat retries) gives one event', async () => {
    const xml = sample('text.xml');
    for (let i = 0; i < 3; i++) {
      expect(await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
    }
    await harness.vonage.waitForEvents(1);
    await sleep(300);
    expect(harness.vonage.events).toHaveLength(1);
  });

  test('two different events of one user in the same second give two events; their retries none more', async () => {
    const sent = documented('event-subscribe_msg_sent_event.xml');
    const other = sent.replace('1700827132819554304', '1700827132819554305');
    const popup = documented('event-subscribe_msg_popup_event.xml');
    const otherPopup = popup.replace('VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc', 'otherTemplate');
    const switchTo = (kf: string) =>
      '<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1700000000</CreateTime>' +
      `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_switch_session]]></Event><FromKfAccount><![CDATA[a@test]]></FromKfAccount><ToKfAccount><![CDATA[${kf}]]></ToKfAccount></xml>`;
    const pushes = [sent, other, popup, otherPopup, switchTo('b@test'), switchTo('c@test')];
    for (const xml of [...pushes, ...pushes]) {
      expect(await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
    }
    await harness.vonage.waitForEvents(6);
    await sleep(300);
    expect(harness.vonage.events).toHaveLength(6);
    const sentIds = harness.vonage.events
      .map((e) => (e.body['subscribe_msg_sent_event'] as { list?: { msg_id?: string } } | undefined)?.list?.msg_id)
      .filter((id) => id !== undefined);
    expect(sentIds.sort()).toEqual(['1700827132819554304', '1700827132819554305']);
    expect(harness.vonage.events.filter((e) => e.body.event === 'kf_switch_session').map((e) => e.body['to_kf_account'])).toEqual(['b@test', 'c@test']);
  });

  test('nested elements reach Vonage as nested JSON (mass-send results, beacons)', async () => {
    await pushToBridge(harness.baseUrl, documented('event-MASSSENDJOBFINISH.xml'), { token: TEST_TOKEN });
    await pushToBridge(harness.baseUrl, documented('event-ShakearoundUserShake.xml'), { token: TEST_TOKEN });
    const [mass, shake] = await harness.vonage.waitForEvents(2);
    expect(mass!.body['article_url_result']).toEqual({ count: '1', result_list: { item: { article_idx: '1', article_url: 'Url' } } });
    expect((mass!.body['copyright_check_result'] as { result_list: { item: unknown[] } }).result_list.item).toHaveLength(2);
    expect(shake!.body['chosen_beacon']).toEqual({ uuid: 'uuid', major: 'major', minor: 'minor', distance: '0.057' });
    expect((shake!.body['around_beacons'] as { around_beacon: unknown[] }).around_beacon).toHaveLength(2);
  });

  test('a 64-bit MsgId reaches Vonage digit for digit', async () => {
    const xml = sample('text.xml').replace('1234567890123456', '6054768590064713728');
    await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN });
    const [event] = await harness.vonage.waitForEvents(1);
    expect(event!.body.msg_id).toBe('6054768590064713728');
  });

  test('Vonage answering 503, then 429 with Retry-After, then 201 gives exactly one delivered event', async () => {
    harness.vonage.script([{ status: 503 }, { status: 429, retryAfter: '1' }]);
    const answer = await pushToBridge(harness.baseUrl, sample('text.xml'), { token: TEST_TOKEN });
    expect(answer.status).toBe(200);
    const events = await harness.vonage.waitForEvents(1, 15_000);
    expect(events).toHaveLength(1);
    // Both failures were seen and retried (a retry first reads the conversation to avoid a duplicate,
    // so the 429 may answer that read rather than the post).
    const logs = harness.logs.join('');
    expect(logs).toMatch(/HTTP 503/);
    expect(logs).toMatch(/HTTP 429/);
    await sleep(300);
    expect(harness.vonage.events).toHaveLength(1);
  });

  test('a long text is split into ordered parts that each fit in 4096 bytes, nothing dropped', async () => {
    const text = Array.from({ length: 3000 }, (_, i) => `段${i}`).join('');
    const xml = sample('text.xml').replace('this is a test', text);
    expect(Buffer.byteLength(xml)).toBeLessThan(64 * 1024);
    await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN });
    await harness.vonage.waitForEvents(1);
    // Wait until every part is there (the first part says how many).
    const parts = Number(harness.vonage.events[0]!.body.parts);
    expect(parts).toBeGreaterThan(1);
    const events = await harness.vonage.waitForEvents(parts);
    expect(events.map((e) => e.body.part)).toEqual(Array.from({ length: parts }, (_, i) => i + 1));
    for (const e of events) expect(Buffer.byteLength(JSON.stringify(e.body))).toBeLessThanOrEqual(4096);
    expect(events.map((e) => e.body.content).join('')).toBe(text);
  });

  test('messages of one user arrive in the order they were acknowledged', async () => {
    const xmls = Array.from({ length: 20 }, (_, i) => sample('text.xml').replace('this is a test', `m${i}`).replace('1234567890123456', String(9000 + i)));
    for (const xml of xmls) await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN });
    const events = await harness.vonage.waitForEvents(20);
    expect(events.map((e) => e.body.content)).toEqual(xmls.map((_, i) => `m${i}`));
  });

  test('secrets never reach the logs', async () => {
    await pushToBridge(harness.baseUrl, sample('text.xml'), { token: TEST_TOKEN });
    await harness.vonage.waitForEvents(1);
    const logs = harness.logs.join('');
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain('BEGIN');
    expect(logs).not.toContain('test-app-secret');
    expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/); // no JWT
  });
});
