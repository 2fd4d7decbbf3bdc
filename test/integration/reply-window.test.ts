/**
 * The reply window, template messages and subscription notifications end to end: the WeChat
 * emulator pushes users' messages to the real bridge and serves custom/send, template/send and
 * subscribe/bizsend with WeChat's rules; agents' events go in through /rtcEvent; what agents see
 * is read at the fake Vonage.
 */
import { rmSync } from 'node:fs';
import { startFakeVonage, type RecordedEvent } from '../support/fake-vonage';
import { startFakeWeChat } from '../support/fake-wechat';
import { startHarness, TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID, type Harness } from '../support/bridge-harness';
import { testKeyPair } from '../support/keys';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { sleep, waitFor } from '../support/wait';

const SEND_PATH = '/cgi-bin/message/custom/send';
const TEMPLATE_PATH = '/cgi-bin/message/template/send';
const ORDER_TEMPLATE = 'tmpl_order_update_4rTz9';
const REMINDER_TEMPLATE = 'sub_appointment_reminder_Qm31x';

const orderTemplate = (extra: Record<string, unknown> = {}) => ({
  msg_type: 'template',
  template_id: ORDER_TEMPLATE,
  url: 'https://shop.example/orders/42',
  data: { character_string1: { value: 'A-42' }, thing2: 'Shipped', time3: { value: '2026-12-02 15:00' } },
  ...extra,
});

const statusesOf = (harness: Harness, refEventId: unknown): Array<Record<string, unknown>> =>
  harness.vonage.events.filter((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(refEventId)).map((e) => e.body);

const waitForStatuses = (harness: Harness, refEventId: unknown, n: number) =>
  waitFor<Array<Record<string, unknown>>>(`${n} status(es) for ${String(refEventId)}`, () => {
    const found = statusesOf(harness, refEventId);
    return found.length >= n ? found : undefined;
  });

const inboundEvents = (harness: Harness, openid: string): RecordedEvent[] =>
  harness.vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.from === openid);

describe('reply window, templates and fallbacks', () => {
  let harness: Harness;
  let users = 0;
  beforeEach(async () => {
    harness = await startHarness();
    harness.weChat.connect({ url: `${harness.baseUrl}/weChatEvent`, token: TEST_TOKEN });
  });
  afterEach(() => harness.close());

  /** A user who follows (a 1-minute window) and then writes (48 h, 5 replies), seen by the agent. */
  async function userWhoWrote(): Promise<string> {
    users += 1;
    const { openid } = await harness.weChat.addUser({ openid: `oWindowUser${users}` });
    await harness.weChat.sendText(openid, 'hello');
    await waitFor('the inbound text', () => inboundEvents(harness, openid).find((e) => e.body.msg_type === 'text'));
    return openid;
  }

  test('inbound events carry the window; each free-form send uses one reply and its status says so', async () => {
    const before = Math.floor(Date.now() / 1000);
    const openid = await userWhoWrote();
    const [follow, text] = inboundEvents(harness, openid);
    const followWindow = follow!.body.reply_window as { closes_at: number; replies_left: number };
    expect(followWindow.replies_left).toBe(3);
    expect(followWindow.closes_at).toBeGreaterThanOrEqual(before + 60);
    expect(followWindow.closes_at).toBeLessThanOrEqual(before + 62);
    const createTime = Number(text!.body.create_time);
    // Both windows are open: 3 after the follow and 5 after the message; it closes with the later one.
    expect(text!.body.reply_window).toEqual({ closes_at: createTime + 48 * 3600, replies_left: 8 });

    const reply = outboundMessage(openid, { content: 'hi, how can I help?' });
    await postRtcEvent(harness.baseUrl, reply);
    const [status] = await waitForStatuses(harness, reply.id, 1);
    // The reply used the follow's window first (it closes first), as WeChat counts it.
    expect(status).toEqual({ status: 'delivered', ref_event_id: String(reply.id), to: openid, reply_window: { closes_at: createTime + 48 * 3600, replies_left: 7 } });
    expect(harness.weChat.user(openid)?.sendsLeft).toBe(7);
  });

  test('a template message goes out with client_msg_id = the event id; its result becomes a second status', async () => {
    const openid = await userWhoWrote();
    const event = outboundMessage(openid, orderTemplate());
    await postRtcEvent(harness.baseUrl, event);
    const [delivered, result] = await waitForStatuses(harness, event.id, 2);
    const [sent] = harness.weChat.notifications;
    expect(sent!.path).toBe(TEMPLATE_PATH);
    expect(JSON.parse(sent!.rawBody)).toEqual({
      touser: openid,
      template_id: ORDER_TEMPLATE,
      url: 'https://shop.example/orders/42',
      client_msg_id: String(event.id),
      data: { character_string1: { value: 'A-42' }, thing2: { value: 'Shipped' }, time3: { value: '2026-12-02 15:00' } },
    });
    expect(delivered).toEqual({ status: 'delivered', ref_event_id: String(event.id), to: openid, msg_id: sent!.msgId });
    expect(result).toEqual({ status: 'delivered', ref_event_id: String(event.id), to: openid, msg_id: sent!.msgId });
    // A template does not use the customer-service window.
    expect(harness.weChat.user(openid)?.sendsLeft).toBe(8);
  });

  test('a template send whose answer is lost is sent again with the same client_msg_id, not reported uncertain', async () => {
    const openid = await userWhoWrote();
    harness.weChat.inject(TEMPLATE_PATH, [{ reset: true }]);
    const event = outboundMessage(openid, orderTemplate());
    await postRtcEvent(harness.baseUrl, event);
    const [status] = await waitForStatuses(harness, event.id, 1);
    expect(status).toMatchObject({ status: 'delivered', msg_id: harness.weChat.notifications[0]!.msgId });
    expect(harness.weChat.notifications.map((n) => (JSON.parse(n.rawBody) as { client_msg_id: unknown }).client_msg_id)).toEqual([String(event.id)]);
  });

  test('a user who blocks templates: the result status says failed with WeChat\'s reason', async () => {
    const openid = await userWhoWrote();
    harness.weChat.setRefusesTemplates(openid, true);
    const event = outboundMessage(openid, orderTemplate());
    await postRtcEvent(harness.baseUrl, event);
    const [, result] = await waitForStatuses(harness, event.id, 2);
    expect(result).toMatchObject({ status: 'failed', ref_event_id: String(event.id), error_code: 'user_block' });
    expect(String(result!.error_message)).toContain('failed:user block');
  });

  test('WeChat\'s template errors are explained in the status', async () => {
    const openid = await userWhoWrote();
    const unknown = outboundMessage(openid, orderTemplate({ template_id: 'no-such-template' }));
    const badData = outboundMessage(openid, orderTemplate({ data: { character_string1: 'A-42', thing2: 'x'.repeat(21), time3: 'now' } }));
    const notAccepted = outboundMessage(openid, { msg_type: 'subscribe', template_id: REMINDER_TEMPLATE, data: { thing1: 'Haircut', time2: 'Friday 10:00' } });
    for (const event of [unknown, badData, notAccepted]) await postRtcEvent(harness.baseUrl, event);
    const [unknownStatus] = await waitForStatuses(harness, unknown.id, 1);
    const [badDataStatus] = await waitForStatuses(harness, badData.id, 1);
    const [notAcceptedStatus] = await waitForStatuses(harness, notAccepted.id, 1);
    expect(unknownStatus).toMatchObject({ status: 'failed', error_code: '40037', error_message: expect.stringContaining('invalid template_id') });
    expect(badDataStatus).toMatchObject({ status: 'failed', error_code: '47003', error_message: expect.stringContaining('thing2') });
    expect(notAcceptedStatus).toMatchObject({ status: 'failed', error_code: '43101', error_message: expect.stringContaining('not accepted') });
    expect(harness.weChat.notifications).toHaveLength(0);
  });

  test('a subscription notification reaches a user who accepted it, once per acceptance', async () => {
    const openid = await userWhoWrote();
    await harness.weChat.answerSubscription(openid, REMINDER_TEMPLATE, true);
    // The agent learns who accepted which template from WeChat's popup event, nested as WeChat nests it.
    const popup = await waitFor('the popup event', () => inboundEvents(harness, openid).find((e) => e.body.event === 'subscribe_msg_popup_event'));
    // One <List> is one object; several are an array.
    const { list } = popup.body.subscribe_msg_popup_event as { list: unknown };
    expect([list].flat()).toEqual([{ template_id: REMINDER_TEMPLATE, subscribe_status_string: 'accept', popup_scene: '2' }]);
    const notification = { msg_type: 'subscribe', template_id: REMINDER_TEMPLATE, page: 'https://shop.example/booking', data: { thing1: 'Haircut', time2: 'Friday 10:00' } };
    const first = outboundMessage(openid, notification);
    const second = outboundMessage(openid, notification);
    await postRtcEvent(harness.baseUrl, first);
    await postRtcEvent(harness.baseUrl, second);
    const [firstStatus] = await waitForStatuses(harness, first.id, 1);
    const [secondStatus] = await waitForStatuses(harness, second.id, 1);
    expect(firstStatus).toMatchObject({ status: 'delivered', msg_id: harness.weChat.notifications[0]!.msgId });
    expect(JSON.parse(harness.weChat.notifications[0]!.rawBody)).toEqual({
      touser: openid,
      template_id: REMINDER_TEMPLATE,
      page: 'https://shop.example/booking',
      data: { thing1: { value: 'Haircut' }, time2: { value: 'Friday 10:00' } },
    });
    expect(secondStatus).toMatchObject({ status: 'failed', error_code: '43101' });
    // WeChat's own report of the send reaches the agent too.
    const sentEvent = await waitFor('the sent event', () => inboundEvents(harness, openid).find((e) => e.body.event === 'subscribe_msg_sent_event'));
    const { list: sentList } = sentEvent.body.subscribe_msg_sent_event as { list: unknown };
    expect([sentList].flat()).toEqual([
      { template_id: REMINDER_TEMPLATE, msg_id: harness.weChat.notifications[0]!.msgId, error_code: '0', error_status: 'success' },
    ]);
  });

  test('window known to be closed: the fallback goes instead, custom/send is never tried, one status via template', async () => {
    const openid = await userWhoWrote();
    harness.weChat.advanceClock(49 * 3600 * 1000);
    // The bridge's own clock has not moved: tell it the window closed the way WeChat does, with a 45015.
    const probe = outboundMessage(openid, { content: 'still there?' });
    await postRtcEvent(harness.baseUrl, probe);
    expect((await waitForStatuses(harness, probe.id, 1))[0]).toMatchObject({ status: 'failed', error_code: '45015', reply_window: { replies_left: 0 } });
    const customSends = harness.weChat.requests.filter((r) => r.path === SEND_PATH).length;

    const event = outboundMessage(openid, { content: 'your order shipped', fallback: orderTemplate() });
    await postRtcEvent(harness.baseUrl, event);
    const [status] = await waitForStatuses(harness, event.id, 1);
    expect(status).toMatchObject({ status: 'delivered', via: 'template', msg_id: harness.weChat.notifications[0]!.msgId, reply_window: { replies_left: 0 } });
    expect(harness.weChat.requests.filter((r) => r.path === SEND_PATH)).toHaveLength(customSends);
    await waitForStatuses(harness, event.id, 2);
    await sleep(100);
    expect(statusesOf(harness, event.id).filter((s) => s.via !== undefined)).toHaveLength(1);
  });

  test('WeChat answers 45047 although the tracker had replies left: the fallback goes in the same run', async () => {
    const openid = await userWhoWrote();
    harness.weChat.inject(SEND_PATH, [{ errcode: 45047 }]);
    const event = outboundMessage(openid, { content: 'one more thing', fallback: orderTemplate() });
    await postRtcEvent(harness.baseUrl, event);
    const [status] = await waitForStatuses(harness, event.id, 1);
    expect(status).toMatchObject({ status: 'delivered', via: 'template', reply_window: { replies_left: 0 } });
    expect(harness.weChat.notifications).toHaveLength(1);
    expect(harness.weChat.sent.filter((s) => s.path === SEND_PATH)).toHaveLength(0);
  });

  test('a fallback of the wrong shape fails the event before anything is sent', async () => {
    const openid = await userWhoWrote();
    const event = outboundMessage(openid, { content: 'hi', fallback: { msg_type: 'text', content: 'no' } });
    await postRtcEvent(harness.baseUrl, event);
    const [status] = await waitForStatuses(harness, event.id, 1);
    expect(status).toMatchObject({ status: 'failed', error_code: 'invalid_event', error_message: expect.stringContaining('fallback') });
    expect(harness.weChat.requests.filter((r) => r.path === SEND_PATH)).toHaveLength(0);
  });
});

describe('the reply window survives a restart', () => {
  test('replies counted before the restart still count after it', async () => {
    const weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
    const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'events-only' });
    const first = await startHarness({ weChat, vonage, keepDirectory: true });
    const directory = first.dbPath.replace(/\/bridge\.db$/, '');
    try {
      weChat.connect({ url: `${first.baseUrl}/weChatEvent`, token: TEST_TOKEN });
      const { openid } = await weChat.addUser({ openid: 'oRestartUser' });
      await weChat.sendText(openid, 'hello');
      const reply = outboundMessage(openid, { content: 'first reply' });
      await postRtcEvent(first.baseUrl, reply);
      await waitForStatuses(first, reply.id, 1);
      await first.close();

      const second = await startHarness({ weChat, vonage, directory });
      try {
        const again = outboundMessage(openid, { content: 'after the restart' });
        await postRtcEvent(second.baseUrl, again);
        const [status] = await waitForStatuses(second, again.id, 1);
        // 3 (follow) + 5 (message) − 2 replies, one on each side of the restart.
        expect(status).toMatchObject({ status: 'delivered', reply_window: { replies_left: 6 } });
      } finally {
        await second.close();
      }
    } finally {
      await weChat.close();
      await vonage.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
