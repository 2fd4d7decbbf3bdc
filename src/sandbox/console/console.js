/*
 * The sandbox console: plain browser JavaScript, no framework, no build step.
 *
 * Left, a WeChat user's phone: it drives the WeChat platform emulator through /sandbox/api (send,
 * follow, unfollow), and shows what the account sent the user. Middle, a Vonage agent: a
 * Conversation API client that lists conversations, reads their events and posts custom events with
 * a Client SDK user token, through /sandbox/vonage (a plain pass-through to the Vonage emulator).
 * Right, the raw traffic of both emulators. Live updates arrive as Server-Sent Events.
 *
 * Conversations are listed from the API. The bridge runs in per-user mode: each WeChat user has a
 * conversation of their own, named `wechat:<openid>`, so a reply there omits `to` (the bridge takes
 * the recipient from the conversation). In any other conversation a reply goes to the `to` picked in
 * the composer (the sender of the last inbound message by default). The agent pane follows the
 * phone: picking a user there, or that user writing, opens their conversation.
 */
(function () {
  'use strict';

  const MESSAGE = 'custom:wechat:message';
  const STATUS = 'custom:wechat:status';
  /** Which WeChat API put an account's message on the phone. */
  const API_OF_MSGTYPE = { template: 'template/send', subscribe: 'subscribe/bizsend' };
  const TYPING = 'custom:wechat:typing';
  const PLACES = [
    { label: 'The Bund, Shanghai', latitude: 31.2400, longitude: 121.4900 },
    { label: 'Canton Tower, Guangzhou', latitude: 23.1066, longitude: 113.3245 },
    { label: 'Forbidden City, Beijing', latitude: 39.9163, longitude: 116.3972 },
  ];

  const state = {
    account: undefined, // the configured id of the Official Account the phone pane shows
    accounts: [], // { id, label, originalId }
    users: new Map(), // openid → user with chat
    selectedOpenid: undefined,
    typing: new Set(), // openids the account is typing to
    clockOffsetMs: 0,
    agent: { name: '', displayName: '', token: undefined, vonageApiBase: '/sandbox/vonage/v1' },
    conversations: new Map(), // id → conversation view
    selectedConversation: undefined,
    events: new Map(), // conversation id → Map(event id → event)
    memberIds: new Map(), // conversation id → the agent's member id
    replyTo: undefined, // openid chosen by clicking a message
    templates: [], // the WeChat account's templates (the emulator's), for "send as template"
    lastTypingSentAt: 0,
    traffic: [],
    trafficCleared: 0,
    instanceId: undefined, // the sandbox run this page belongs to
    pushMode: 'plain',
    accountType: 'verified',
    faults: [],
    faultTimer: undefined,
  };

  const $ = (id) => document.getElementById(id);

  /** Builds an element; strings become text nodes (never HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  const shortId = (openid) => (openid && openid.length > 12 ? `${openid.slice(0, 8)}…` : openid || '');
  const nickname = (openid) => state.users.get(openid)?.nickname;
  const SVG = 'http://www.w3.org/2000/svg';
  /** A small map pin (emoji fonts are not everywhere). */
  function pinIcon() {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', 'pin');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', 'M12 21s-6.5-6.2-6.5-11.2a6.5 6.5 0 0 1 13 0C18.5 14.8 12 21 12 21z');
    const dot = document.createElementNS(SVG, 'circle');
    dot.setAttribute('cx', '12');
    dot.setAttribute('cy', '9.8');
    dot.setAttribute('r', '2.3');
    svg.append(path, dot);
    return svg;
  }
  const mediaUrl = (mediaId) => withAccount(`/sandbox/api/wechat/media/${encodeURIComponent(mediaId)}`, state.account);
  /** A bridge media link (absolute, at PUBLIC_URL) as a path on this page's origin, which serves it too. */
  const sameOrigin = (url) => {
    try {
      const parsed = new URL(url);
      return `${parsed.pathname}${parsed.search}`;
    } catch {
      return undefined;
    }
  };
  /** The WeChat user a per-user conversation belongs to (its name is `wechat:<openid>`), if any. */
  const ownerOf = (conversationId) => {
    const conversation = state.conversations.get(conversationId);
    const match = conversation && /^wechat:(.+)$/.exec(conversation.name || '');
    return match ? match[1] : undefined;
  };
  const conversationOfUser = (openid) => [...state.conversations.values()].find((c) => c.name === `wechat:${openid}`);
  const conversationLabel = (c) => {
    const owner = ownerOf(c.id);
    const name = owner && nickname(owner);
    return name ? `${name} · WeChat` : c.display_name || c.name;
  };

  /**
   * Re-renders a scrolling list and keeps following the newest row when the reader was at the
   * bottom. Images grow when they load, after this ran: scroll again then, or the rows under them
   * (a `✓ delivered`, a failure) end up out of sight and the list stops following.
   */
  function stickToBottom(container, render) {
    const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    render();
    if (!atBottom) return;
    container.scrollTop = container.scrollHeight;
    for (const img of container.querySelectorAll('img')) {
      if (img.complete) continue;
      const follow = () => {
        container.scrollTop = container.scrollHeight;
      };
      img.addEventListener('load', follow, { once: true });
      img.addEventListener('error', follow, { once: true });
    }
  }

  /** One line at the top saying what failed (the server down, a refusal); it clears itself. */
  let noticeTimer;
  function showNotice(message) {
    const notice = $('notice');
    notice.textContent = message;
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice.hidden = true;
    }, 8_000);
  }

  /** Runs a user action; a failure is shown instead of becoming an uncaught rejection. */
  async function attempt(what, action) {
    try {
      return await action();
    } catch (error) {
      showNotice(`${what} failed: ${error.message}`);
      return undefined;
    }
  }

  /**
   * The phone pane's calls act on the picked account (`?account=`); the others are account-free. The
   * first account is the server's default and needs no parameter, so its URLs stay as they were.
   */
  function withAccount(path, account) {
    if (!account || /[?&]account=/.test(path) || (state.accounts[0] && account === state.accounts[0].id)) return path;
    if (!(path === '/sandbox/api/state' || path.startsWith('/sandbox/api/wechat/'))) return path;
    return `${path}${path.includes('?') ? '&' : '?'}account=${encodeURIComponent(account)}`;
  }

  /** `account`: the account a phone-pane call acts on; default the picked one. */
  async function api(method, path, body, account = state.account) {
    let response;
    try {
      response = await fetch(withAccount(path, account), {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new Error('the sandbox does not answer (is it still running?)', { cause: error });
    }
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(json.error || `HTTP ${response.status}`);
    return json;
  }

  function readFileAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // =========================================================================================
  // WeChat phone
  // =========================================================================================

  function renderUserSelect() {
    const select = $('user-select');
    const users = [...state.users.values()];
    select.replaceChildren(
      ...users.map((u) => el('option', { value: u.openid, selected: u.openid === state.selectedOpenid }, `${u.nickname} · ${shortId(u.openid)}${u.following ? '' : ' (not following)'}`)),
    );
    if (users.length === 0) select.append(el('option', { value: '' }, 'No users yet'));
  }

  function renderWindowInfo(user) {
    const info = $('window-info');
    info.classList.remove('closed');
    if (!user) {
      info.textContent = '';
      return;
    }
    if (!user.following) {
      info.textContent = 'Not following: the account cannot message this user (45015).';
      info.classList.add('closed');
      return;
    }
    if (!user.windowClosesAt) {
      info.textContent = 'Customer-service window closed: the account can reply only after the user writes (else 45015).';
      info.classList.add('closed');
      return;
    }
    const platformNow = Date.now() + state.clockOffsetMs;
    const leftMs = Math.max(0, user.windowClosesAt - platformNow);
    const hours = Math.floor(leftMs / 3_600_000);
    const minutes = Math.floor((leftMs % 3_600_000) / 60_000);
    info.textContent = `Customer-service window open for ${hours} h ${minutes} min · ${user.sendsLeft} message${user.sendsLeft === 1 ? '' : 's'} left (then 45047)`;
  }

  function deliveryMeta(delivery) {
    if (!delivery) return undefined;
    switch (delivery.state) {
      case 'sending':
        return el('div', { class: 'meta' }, 'sending…');
      case 'delivered':
        return el('div', { class: 'meta ok' }, delivery.attempts > 1 ? `✓ delivered (after ${delivery.attempts} pushes)` : '✓ delivered');
      case 'retrying':
        return el('div', { class: 'meta warn' }, `retrying (${delivery.attempts}/3): ${delivery.detail || ''}`);
      case 'failed':
        return el('div', { class: 'meta bad' }, `✗ ${delivery.detail || 'not delivered'}`);
      default:
        return undefined;
    }
  }

  function chatRow(item) {
    if (item.kind === 'event') {
      return el('div', { class: 'row system', dataset: { chatId: item.id } },
        el('div', { class: 'bubble' }, `You ${item.text}`),
        item.delivery && item.delivery.state !== 'delivered' ? deliveryMeta(item.delivery) : undefined);
    }
    const content =
      item.kind === 'image' && item.mediaId
        ? el('img', { src: mediaUrl(item.mediaId), alt: 'image' })
        : item.kind === 'location'
          ? [pinIcon(), item.text]
          : item.text;
    const mine = item.from === 'user';
    return el('div', { class: `row ${mine ? 'mine' : 'theirs'}`, dataset: { chatId: item.id } },
      el('div', { class: 'bubble' }, content),
      mine ? deliveryMeta(item.delivery) : el('div', { class: 'meta' }, `${time(item.at)} · via ${API_OF_MSGTYPE[item.msgType] || 'custom/send'}`));
  }

  function renderPhone() {
    const user = state.users.get(state.selectedOpenid);
    const chat = $('phone-chat');
    stickToBottom(chat, () => {
      if (!user) chat.replaceChildren(el('div', { class: 'empty' }, 'Add a user to start.'));
      else if (user.chat.length === 0) chat.replaceChildren(el('div', { class: 'empty' }, 'No messages yet.'));
      else chat.replaceChildren(...user.chat.map(chatRow));
    });
    const following = Boolean(user && user.following);
    const toggle = $('follow-toggle');
    toggle.disabled = !user;
    toggle.textContent = following ? 'Following ✓' : 'Follow';
    toggle.title = following ? 'Unfollow the account (an unsubscribe event)' : 'Follow the account (a subscribe event)';
    toggle.classList.toggle('following', following);
    for (const id of ['phone-input', 'phone-send', 'phone-image', 'phone-location']) $(id).disabled = !following;
    $('phone-input').placeholder = following ? 'Message' : 'Follow the account to chat';
    $('phone-typing').hidden = !(user && state.typing.has(user.openid));
    renderWindowInfo(user);
  }

  function upsertChatItem(openid, item) {
    const user = state.users.get(openid);
    if (!user) return;
    const index = user.chat.findIndex((c) => c.id === item.id);
    if (index >= 0) user.chat[index] = item;
    else user.chat.push(item);
    if (openid === state.selectedOpenid) renderPhone();
  }

  function onWeChatChange(change) {
    // Another account's phone: shown when that account is picked (its state is loaded then).
    if (change.account && state.account && change.account !== state.account) return;
    switch (change.type) {
      case 'user': {
        const existing = state.users.get(change.user.openid);
        state.users.set(change.user.openid, { ...change.user, chat: existing ? existing.chat : [] });
        if (!state.selectedOpenid || !state.users.has(state.selectedOpenid)) state.selectedOpenid = change.user.openid;
        renderUserSelect();
        renderPhone();
        renderToOptions();
        renderConversationList(); // conversation names show nicknames
        break;
      }
      case 'chat':
        upsertChatItem(change.openid, change.item);
        break;
      case 'typing':
        if (change.typing) state.typing.add(change.openid);
        else state.typing.delete(change.openid);
        renderPhone();
        break;
      case 'clock':
        state.clockOffsetMs = change.offsetMs;
        renderClock();
        break;
    }
  }

  function renderClock() {
    const clock = $('clock');
    clock.hidden = state.clockOffsetMs === 0;
    clock.textContent = `WeChat clock +${Math.round(state.clockOffsetMs / 3_600_000)} h`;
  }

  async function phoneSend(body) {
    const openid = state.selectedOpenid;
    if (!openid) return;
    await attempt('Sending', () => api('POST', `/sandbox/api/wechat/users/${encodeURIComponent(openid)}/messages`, body));
  }

  function wirePhone() {
    $('user-select').addEventListener('change', (event) => {
      state.selectedOpenid = event.target.value;
      renderPhone();
      followPhone();
    });
    $('add-user').addEventListener('click', () => {
      const form = $('add-user-form');
      form.hidden = !form.hidden;
      if (!form.hidden) $('add-user-name').focus();
    });
    $('add-user-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const name = $('add-user-name').value.trim();
      $('add-user-form').hidden = true;
      $('add-user-name').value = '';
      const before = new Set(state.users.keys());
      if (!(await attempt('Adding a user', () => api('POST', '/sandbox/api/wechat/users', name ? { nickname: name } : {})))) return;
      // Select the newcomer once the platform announces them.
      const pick = () => {
        const added = [...state.users.keys()].find((id) => !before.has(id));
        if (added) {
          state.selectedOpenid = added;
          renderUserSelect();
          renderPhone();
          followPhone();
        } else setTimeout(pick, 50);
      };
      pick();
    });
    $('follow-toggle').addEventListener('click', async () => {
      const user = state.users.get(state.selectedOpenid);
      if (!user) return;
      await attempt(user.following ? 'Unfollowing' : 'Following', () =>
        api('POST', `/sandbox/api/wechat/users/${encodeURIComponent(user.openid)}/${user.following ? 'unfollow' : 'follow'}`));
    });
    $('phone-subscribe').addEventListener('click', async () => {
      const user = state.users.get(state.selectedOpenid);
      const template = state.templates.find((t) => t.kind === 'subscribe');
      if (!user || !template) return;
      await attempt('Allowing notifications', () =>
        api('POST', `/sandbox/api/wechat/users/${encodeURIComponent(user.openid)}/subscriptions`, { templateId: template.templateId, accepted: true }));
    });
    $('phone-composer').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('phone-input');
      const content = input.value;
      if (content.trim() === '') return;
      input.value = '';
      phoneSend({ kind: 'text', content });
    });
    $('phone-location').addEventListener('click', () => {
      const place = PLACES[Math.floor(Math.random() * PLACES.length)];
      phoneSend({ kind: 'location', ...place });
    });
    $('phone-image').addEventListener('click', () => $('phone-image-file').click());
    $('phone-image-file').addEventListener('change', async (event) => {
      const file = event.target.files[0];
      event.target.value = '';
      if (file) await attempt('Sending the image', async () => phoneSend({ kind: 'image', dataUrl: await readFileAsDataUrl(file) }));
    });
    // Keep the window countdown honest.
    setInterval(() => renderWindowInfo(state.users.get(state.selectedOpenid)), 30_000);
    setInterval(() => stickToBottom($('agent-messages'), renderAgentWindow), 30_000);
  }

  // =========================================================================================
  // Vonage agent: a Conversation API client
  // =========================================================================================

  async function agentToken(refresh) {
    if (!state.agent.token || refresh) state.agent.token = (await api('POST', '/sandbox/api/agent/token')).token;
    return state.agent.token;
  }

  /** A Conversation API call with the agent's user token (refetched once on 401). */
  async function vonage(method, path, body) {
    const call = async (token) =>
      fetch(path.startsWith('/sandbox/') ? path : `${state.agent.vonageApiBase}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    let response;
    try {
      response = await call(await agentToken(false));
      if (response.status === 401) response = await call(await agentToken(true));
    } catch (error) {
      throw new Error(error.message === 'Failed to fetch' ? 'the sandbox does not answer (is it still running?)' : error.message, { cause: error });
    }
    const json = await response.json().catch(() => ({}));
    if (!response.ok) {
      // Vonage names what was wrong in invalid_parameters; "Input validation failure." alone says nothing.
      const reasons = Array.isArray(json.invalid_parameters) ? json.invalid_parameters.map((p) => `${p.name}: ${p.reason}`) : [];
      const detail = [json.detail || json.title || 'request failed', ...reasons].join(' ');
      const error = new Error(`${json.code || `HTTP ${response.status}`}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return json;
  }

  /** Follows `_links.next` until the last page. */
  async function listAll(path, pick) {
    const items = [];
    let next = path;
    while (next) {
      const page = await vonage('GET', next);
      items.push(...pick(page));
      const href = page._links && page._links.next && page._links.next.href;
      next = href ? `/sandbox/vonage${new URL(href).pathname}${new URL(href).search}` : undefined;
    }
    return items;
  }

  function eventsOf(conversationId) {
    if (!state.events.has(conversationId)) state.events.set(conversationId, new Map());
    return state.events.get(conversationId);
  }

  function statusesOf(conversationId) {
    const statuses = new Map();
    for (const event of eventsOf(conversationId).values()) {
      if (event.type === STATUS && event.body && event.body.ref_event_id !== undefined) statuses.set(String(event.body.ref_event_id), event.body);
    }
    return statuses;
  }

  function renderConversationList() {
    const list = $('conversation-list');
    list.replaceChildren(
      ...[...state.conversations.values()].map((c) => {
        const messages = [...eventsOf(c.id).values()].filter((e) => e.type === MESSAGE);
        const last = messages[messages.length - 1];
        return el('li', {},
          el('button', {
            type: 'button',
            class: c.id === state.selectedConversation ? 'selected' : '',
            title: c.id,
            onclick: () => selectConversation(c.id),
          },
          el('span', { class: 'name' }, conversationLabel(c)),
          el('span', { class: 'sub' }, last ? String(last.body.content || '') : c.id)));
      }),
    );
  }

  function senderLabel(openid) {
    const name = nickname(openid);
    return name ? [el('b', {}, name), ` · ${shortId(openid)}`] : [el('b', {}, shortId(openid))];
  }

  function statusMeta(status) {
    if (!status) return el('div', { class: 'meta' }, 'sending…');
    if (status.status === 'delivered' && status.via) return el('div', { class: 'meta ok' }, `✓ delivered as ${status.via === 'template' ? 'a template message' : 'a notification'}`);
    if (status.status === 'delivered') return el('div', { class: 'meta ok' }, '✓ delivered');
    return el('div', { class: 'meta bad', title: status.error_message || '' }, `✗ failed · ${status.error_code || ''}${status.error_message ? ` · ${status.error_message}` : ''}`);
  }

  function messageContent(body) {
    // An inbound image links to the bridge's signed media route (media_url); an agent's image is a media_id.
    const link = typeof body.media_url === 'string' ? sameOrigin(body.media_url) : undefined;
    if (body.msg_type === 'image' && link) return el('img', { src: link, alt: 'image' });
    if ((body.msg_type === 'image') && typeof body.media_id === 'string') return el('img', { src: mediaUrl(body.media_id), alt: 'image' });
    if (body.msg_type === 'location') return [pinIcon(), String(body.content || '').replace(/^\[location\]\s*/, '')];
    if (body.msg_type === 'template' || body.msg_type === 'subscribe') {
      const template = state.templates.find((t) => t.templateId === body.template_id);
      return `[${body.msg_type}] ${template ? template.title : body.template_id}`;
    }
    const part = body.parts > 1 ? ` (part ${body.part}/${body.parts})` : '';
    return `${body.content === undefined ? `[${body.msg_type || 'message'}]` : body.content}${part}`;
  }

  function agentRow(event, statuses) {
    const body = event.body || {};
    if (event.type === MESSAGE && body.direction === 'inbound') {
      return el('div', {
        class: 'row theirs',
        dataset: { eventId: event.id },
        title: 'Click to reply to this user',
        onclick: () => {
          state.replyTo = body.from;
          renderToOptions();
          renderAgentMessages();
          $('agent-input').focus();
        },
      },
      el('div', { class: 'sender' }, ...senderLabel(body.from)),
      el('div', { class: 'bubble' }, messageContent(body)),
      el('div', { class: 'meta' }, `${time(Date.parse(event.timestamp))} · event ${event.id}`));
    }
    if (event.type === MESSAGE && body.direction === 'outbound') {
      const who = event._embedded && event._embedded.from_user ? event._embedded.from_user.display_name || event._embedded.from_user.name : 'application';
      return el('div', { class: 'row mine', dataset: { eventId: event.id } },
        el('div', { class: 'sender' }, `${who} → `, ...senderLabel(body.to)),
        el('div', { class: 'bubble' }, messageContent(body)),
        statusMeta(statuses.get(String(event.id))));
    }
    if (event.type === STATUS || event.type === TYPING) return undefined;
    if (event.type.startsWith('member:')) {
      // The bridge's user for a WeChat user is named `wechat-<openid>`: show the nickname.
      const wechatUser = body.user && /^wechat-(.+)$/.exec(body.user.name || '');
      const user = (wechatUser && nickname(wechatUser[1])) || (body.user && (body.user.display_name || body.user.name)) || 'someone';
      return el('div', { class: 'row system' }, el('div', { class: 'bubble' }, `${user} ${event.type.slice(7)} the conversation`));
    }
    return el('div', { class: 'row system' }, el('div', { class: 'bubble' }, `${event.type} event`));
  }

  /**
   * The user's reply window as the bridge last reported it in this conversation: every inbound event
   * and every status of a free-form reply carries `reply_window`.
   */
  function latestReplyWindow(openid) {
    const id = state.selectedConversation;
    if (!id || !openid) return undefined;
    let latest;
    for (const event of [...eventsOf(id).values()].sort((a, b) => a.id - b.id)) {
      const body = event.body || {};
      if (!body.reply_window) continue;
      const about = event.type === MESSAGE ? body.from : body.to;
      if (about === openid || ownerOf(id) === openid) latest = body.reply_window;
    }
    return latest;
  }

  function describeWindow(window) {
    const now = Math.floor(Date.now() / 1000);
    if (!window || window.closes_at <= now || window.replies_left <= 0) return undefined;
    const seconds = window.closes_at - now;
    const span = seconds >= 3600 ? `${Math.floor(seconds / 3600)} h` : seconds >= 60 ? `${Math.floor(seconds / 60)} min` : `${seconds} s`;
    return `Reply window: closes in ${span} · ${window.replies_left} ${window.replies_left === 1 ? 'reply' : 'replies'} left`;
  }

  function renderAgentWindow() {
    const line = $('agent-window');
    const to = currentTo();
    const window = latestReplyWindow(to);
    const open = describeWindow(window);
    line.classList.toggle('closed', Boolean(to) && !open);
    $('agent-window-text').textContent = !to ? '' : open || 'Reply window closed: only template messages reach this user';
    const templates = state.templates;
    $('agent-template-controls').hidden = !to || Boolean(open) || templates.length === 0;
    const select = $('agent-template');
    if (select.options.length !== templates.length) {
      select.replaceChildren(...templates.map((t) => el('option', { value: t.templateId }, t.kind === 'subscribe' ? `${t.title} (notification)` : t.title)));
    }
  }

  /** The template's keywords filled in: the composer's text where text goes, the time and a reference elsewhere. */
  function templateData(template, text) {
    const data = {};
    const stamp = new Date().toISOString().slice(0, 16).replace('T', ' ');
    for (const { key } of template.keywords) {
      if (key.startsWith('thing')) data[key] = { value: [...(text || 'See you soon')].slice(0, 20).join('') };
      else if (key.startsWith('time') || key.startsWith('date')) data[key] = { value: stamp };
      else data[key] = { value: `SANDBOX-${Date.now() % 100000}` };
    }
    return data;
  }

  function renderAgentMessages() {
    const container = $('agent-messages');
    const id = state.selectedConversation;
    const head = $('conversation-head');
    if (!id) {
      head.replaceChildren('No conversation');
      container.replaceChildren(el('div', { class: 'empty' }, 'No conversations yet.'));
      return;
    }
    const conversation = state.conversations.get(id);
    head.replaceChildren(el('strong', {}, conversation ? conversationLabel(conversation) : id), ` · ${id}`);
    const events = [...eventsOf(id).values()].sort((a, b) => a.id - b.id);
    const statuses = statusesOf(id);
    const rows = events.map((e) => agentRow(e, statuses)).filter(Boolean);
    stickToBottom(container, () => {
      // Inside: the window line's height changes the list's, which must still end at its newest row.
      renderAgentWindow();
      container.replaceChildren(...(rows.length ? rows : [el('div', { class: 'empty' }, 'No messages yet. Send one from the WeChat phone.')]));
    });
  }

  /** WeChat users who wrote in the selected conversation, newest last. */
  function inboundSenders() {
    const senders = [];
    for (const event of [...eventsOf(state.selectedConversation).values()].sort((a, b) => a.id - b.id)) {
      const body = event.body || {};
      if (event.type === MESSAGE && body.direction === 'inbound' && typeof body.from === 'string') {
        const at = senders.indexOf(body.from);
        if (at >= 0) senders.splice(at, 1);
        senders.push(body.from);
      }
    }
    return senders;
  }

  function currentTo() {
    const owner = ownerOf(state.selectedConversation);
    if (owner) return owner;
    const senders = inboundSenders();
    if (state.replyTo && senders.includes(state.replyTo)) return state.replyTo;
    return senders[senders.length - 1];
  }

  function renderToOptions() {
    const select = $('agent-to');
    const owner = ownerOf(state.selectedConversation);
    if (owner) {
      // The conversation is the user's own: the bridge takes the recipient from it.
      select.replaceChildren(el('option', { value: owner, selected: true }, `${nickname(owner) || 'WeChat user'} · ${shortId(owner)} (this conversation)`));
      for (const id of ['agent-input', 'agent-send', 'agent-image']) $(id).disabled = false;
      return;
    }
    const senders = inboundSenders().reverse();
    const to = currentTo();
    select.replaceChildren(
      ...senders.map((openid) => el('option', { value: openid, selected: openid === to }, `${nickname(openid) || 'WeChat user'} · ${shortId(openid)}`)),
    );
    if (senders.length === 0) select.append(el('option', { value: '' }, 'nobody has written yet'));
    for (const id of ['agent-input', 'agent-send', 'agent-image']) $(id).disabled = senders.length === 0;
  }

  /** Opens the conversation of the user on the phone, once it exists. */
  function followPhone() {
    const conversation = state.selectedOpenid && conversationOfUser(state.selectedOpenid);
    if (conversation && conversation.id !== state.selectedConversation) selectConversation(conversation.id);
  }

  function addVonageEvent(conversationId, event) {
    eventsOf(conversationId).set(event.id, event);
    const body = event.body || {};
    if (event.type === MESSAGE && body.direction === 'inbound' && body.from === state.selectedOpenid && conversationId !== state.selectedConversation) {
      // The phone's user just wrote: show it where the agent looks.
      followPhone();
    }
    if (conversationId === state.selectedConversation) {
      renderAgentMessages();
      renderToOptions();
    }
    renderConversationList();
  }

  async function ensureMember(conversationId) {
    if (state.memberIds.has(conversationId)) return state.memberIds.get(conversationId);
    const members = await listAll(`/conversations/${encodeURIComponent(conversationId)}/members?page_size=100`, (page) => page._embedded.members);
    let mine = members.find((m) => m._embedded && m._embedded.user && m._embedded.user.name === state.agent.name);
    if (!mine) {
      mine = await vonage('POST', `/conversations/${encodeURIComponent(conversationId)}/members`, {
        state: 'joined',
        user: { name: state.agent.name },
        channel: { type: 'app' },
      });
    }
    state.memberIds.set(conversationId, mine.id);
    return mine.id;
  }

  async function selectConversation(id) {
    state.selectedConversation = id;
    state.replyTo = undefined;
    renderConversationList();
    renderAgentMessages();
    try {
      await ensureMember(id);
      const events = await listAll(`/conversations/${encodeURIComponent(id)}/events?page_size=100`, (page) => (Array.isArray(page._embedded) ? page._embedded : page._embedded.events));
      for (const event of events) eventsOf(id).set(event.id, event);
    } catch (error) {
      showAgentError(error.message);
    }
    renderConversationList();
    renderAgentMessages();
    renderToOptions();
  }

  function showAgentError(message) {
    $('agent-error').textContent = message || '';
  }

  async function postAgentEvent(type, body) {
    const id = state.selectedConversation;
    const from = await ensureMember(id);
    // In a user's own conversation `to` is implied: leave it out, as an agent desk would.
    const { to, ...rest } = body;
    const sent = ownerOf(id) ? rest : body;
    return vonage('POST', `/conversations/${encodeURIComponent(id)}/events`, { type, from, body: sent });
  }

  /** Vonage refuses an event body over 4096 bytes (serialised): longer replies go as several events. */
  const MAX_EVENT_BODY_BYTES = 4096;
  const utf8Bytes = (text) => new TextEncoder().encode(text).length;

  /** Cuts `content` on code points so that each `{ ...fields, content: piece }` fits Vonage's limit. */
  function splitForVonage(fields, content) {
    const budget = MAX_EVENT_BODY_BYTES - utf8Bytes(JSON.stringify({ ...fields, content: '' }));
    const pieces = [];
    let piece = '';
    let pieceBytes = 0;
    for (const char of content) {
      const bytes = utf8Bytes(JSON.stringify(char)) - 2;
      if (pieceBytes + bytes > budget && piece) {
        pieces.push(piece);
        piece = '';
        pieceBytes = 0;
      }
      piece += char;
      pieceBytes += bytes;
    }
    if (piece) pieces.push(piece);
    return pieces;
  }

  async function sendAgentText(to, content) {
    const fields = ownerOf(state.selectedConversation) ? { direction: 'outbound' } : { direction: 'outbound', to };
    for (const piece of splitForVonage(fields, content)) await postAgentEvent(MESSAGE, { direction: 'outbound', to, content: piece });
  }

  function wireAgent() {
    $('agent-to').addEventListener('change', (event) => {
      state.replyTo = event.target.value;
      renderAgentMessages();
    });
    $('agent-composer').addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = $('agent-input');
      const content = input.value;
      const to = $('agent-to').value;
      if (content.trim() === '' || !to) return;
      input.value = '';
      showAgentError('');
      try {
        await sendAgentText(to, content);
      } catch (error) {
        input.value = content;
        showAgentError(error.message);
      }
    });
    $('agent-input').addEventListener('input', () => {
      const to = $('agent-to').value;
      // A typing indicator for the WeChat user, at most every 15 s (it lasts 15 s there).
      if (!to || Date.now() - state.lastTypingSentAt < 15_000) return;
      state.lastTypingSentAt = Date.now();
      postAgentEvent(TYPING, { to, command: 'Typing' }).catch(() => undefined);
    });
    $('agent-send-template').addEventListener('click', async () => {
      const to = $('agent-to').value;
      const template = state.templates.find((t) => t.templateId === $('agent-template').value);
      if (!to || !template) return;
      const input = $('agent-input');
      showAgentError('');
      try {
        await postAgentEvent(MESSAGE, { direction: 'outbound', to, msg_type: template.kind, template_id: template.templateId, data: templateData(template, input.value) });
        input.value = '';
      } catch (error) {
        showAgentError(error.message);
      }
    });
    $('agent-image').addEventListener('click', () => $('agent-image-file').click());
    $('agent-image-file').addEventListener('change', async (event) => {
      const file = event.target.files[0];
      event.target.value = '';
      const to = $('agent-to').value;
      if (!file || !to) return;
      showAgentError('');
      try {
        // The account's backend uploads the image to WeChat (media/upload); the event carries its media_id.
        const { media_id } = await api('POST', `/sandbox/api/agent/media?account=${encodeURIComponent(accountOfConversation(state.selectedConversation))}`, { dataUrl: await readFileAsDataUrl(file) });
        await postAgentEvent(MESSAGE, { direction: 'outbound', to, msg_type: 'image', media_id });
      } catch (error) {
        showAgentError(error.message);
      }
    });
  }

  async function startAgent() {
    try {
      state.templates = await api('GET', '/sandbox/api/wechat/templates');
      const conversations = await listAll('/conversations?page_size=100', (page) => page._embedded.conversations);
      for (const c of conversations) state.conversations.set(c.id, c);
      renderConversationList();
      const first = (state.selectedOpenid && conversationOfUser(state.selectedOpenid)) || conversations[0];
      if (state.selectedConversation) renderAgentMessages();
      else if (first) await selectConversation(first.id);
      else renderAgentMessages();
    } catch (error) {
      showAgentError(error.message);
    }
  }

  function onVonageChange(change) {
    if (change.type === 'conversation') {
      state.conversations.set(change.conversation.id, change.conversation);
      renderConversationList();
      if (!state.selectedConversation || change.conversation.name === `wechat:${state.selectedOpenid}`) selectConversation(change.conversation.id);
    } else if (change.type === 'event') {
      addVonageEvent(change.conversationId, change.event);
    }
  }

  // =========================================================================================
  // Traffic
  // =========================================================================================

  const CHANNEL_LABEL = {
    'wechat-push': () => 'WeChat → bridge',
    'wechat-api': (entry) => `${entry.caller} → WeChat`,
    'vonage-api': (entry) => `${entry.caller} → Vonage`,
    'vonage-webhook': () => 'Vonage → bridge',
  };

  function trafficVisible(entry) {
    const box = document.querySelector(`#traffic-filters input[data-channel="${entry.channel}"]`);
    if (box && !box.checked) return false;
    if (entry.method === 'GET' && entry.channel === 'vonage-api' && !$('show-reads').checked) return false;
    return entry.seq > state.trafficCleared;
  }

  function pretty(text) {
    if (text === undefined) return '';
    const trimmed = text.trim();
    if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
      try {
        return JSON.stringify(JSON.parse(trimmed), null, 2);
      } catch {
        return text;
      }
    }
    return text;
  }

  function preview(entry) {
    const body = entry.requestBody || '';
    if (entry.channel === 'wechat-push') {
      const type = /<MsgType><!\[CDATA\[(\w+)/.exec(body);
      const content = /<(?:Content|Label)><!\[CDATA\[([\s\S]*?)\]\]>/.exec(body);
      const eventName = /<Event><!\[CDATA\[(\w+)/.exec(body);
      if (/<Encrypt>/.test(body) && !type) return 'encrypted: <Encrypt>…</Encrypt>';
      return [type && type[1], eventName && eventName[1], content && `“${content[1]}”`].filter(Boolean).join(' · ');
    }
    return body.replace(/\s+/g, ' ').slice(0, 140);
  }

  function trafficItem(entry) {
    const ok = entry.status !== undefined && entry.status >= 200 && entry.status < 300 && !/"errcode":\s*[1-9-]/.test(entry.responseBody || '');
    const statusText = entry.status !== undefined ? String(entry.status) : 'no answer';
    const errcode = /"errcode":\s*(-?\d+)/.exec(entry.responseBody || '');
    const path = entry.path.length > 90 ? `${entry.path.slice(0, 90)}…` : entry.path;
    const item = el('li', { class: entry.channel, dataset: { seq: entry.seq, at: entry.at } },
      el('div', { class: 'summary' },
        el('span', { class: 'time' }, time(entry.at)),
        el('span', { class: 'who' }, CHANNEL_LABEL[entry.channel](entry)),
        el('span', { class: 'request', title: entry.path }, `${entry.method} ${path}`),
        el('span', { class: `status ${ok ? 'ok' : 'bad'}` }, errcode && errcode[1] !== '0' ? `${statusText} · ${errcode[1]}` : statusText)),
      el('div', { class: 'preview' }, preview(entry)),
      entry.note ? el('div', { class: 'note' }, entry.note.split('\n')[0]) : undefined,
      el('div', { class: 'details', onclick: (e) => e.stopPropagation() },
        el('h4', {}, 'Request'),
        el('pre', {}, `${entry.method} ${entry.path}${entry.requestBody ? `\n\n${pretty(entry.requestBody)}` : ''}`),
        el('h4', {}, `Response${entry.durationMs !== undefined ? ` · ${entry.durationMs} ms` : ''}`),
        el('pre', {}, entry.error ? `(${entry.error})` : `${statusText}${entry.responseBody ? `\n\n${pretty(entry.responseBody)}` : ''}`),
        entry.note && entry.note.includes('\n') ? [el('h4', {}, 'Note'), el('pre', {}, entry.note)] : undefined));
    item.addEventListener('click', () => item.classList.toggle('open'));
    return item;
  }

  /** Entries are recorded when an answer came back; they are shown in the order the requests started. */
  const byStart = (a, b) => a.at - b.at || a.seq - b.seq;

  function addTraffic(entry) {
    state.traffic.push(entry);
    state.traffic.sort(byStart);
    if (state.traffic.length > 1000) state.traffic.splice(0, state.traffic.length - 1000);
    if (!trafficVisible(entry)) return;
    const list = $('traffic');
    const later = [...list.children].find((li) => byStart({ at: Number(li.dataset.at), seq: Number(li.dataset.seq) }, entry) > 0);
    stickToBottom(list, () => list.insertBefore(trafficItem(entry), later || null));
  }

  function renderTraffic() {
    const list = $('traffic');
    list.replaceChildren(...state.traffic.filter(trafficVisible).map(trafficItem));
    list.scrollTop = list.scrollHeight;
  }

  function wireTraffic() {
    for (const box of document.querySelectorAll('#traffic-filters input')) box.addEventListener('change', renderTraffic);
    $('clear-traffic').addEventListener('click', () => {
      state.trafficCleared = state.traffic.length ? state.traffic[state.traffic.length - 1].seq : 0;
      renderTraffic();
    });
  }

  // =========================================================================================
  // Top bar, stream, start
  // =========================================================================================

  function wireTopBar() {
    const pushMode = $('push-mode');
    pushMode.addEventListener('change', async () => {
      const wanted = pushMode.value;
      const result = await attempt('Changing the push mode', () => api('POST', '/sandbox/api/wechat/push-mode', { mode: wanted }));
      // The menu shows what the server uses, never a mode it did not take.
      pushMode.value = result ? result.pushMode : state.pushMode;
      state.pushMode = pushMode.value;
    });
    const accountType = $('account-type');
    accountType.addEventListener('change', async () => {
      const wanted = accountType.value;
      const result = await attempt('Changing the account type', () => api('POST', '/sandbox/api/wechat/account-type', { type: wanted }));
      accountType.value = result ? result.accountType : state.accountType;
      state.accountType = accountType.value;
    });
    const demoBot = $('demo-bot');
    demoBot.addEventListener('change', async () => {
      const wanted = demoBot.checked;
      const result = await attempt('Switching the demo bot', () => api('POST', '/sandbox/api/demo-bot', { enabled: wanted }));
      demoBot.checked = result ? result.demoBot : !wanted;
    });
    $('skip-time').addEventListener('click', async () => {
      const result = await attempt('Skipping time', () => api('POST', '/sandbox/api/wechat/clock', { hours: 49 }));
      if (!result) return;
      state.clockOffsetMs = result.clockOffsetMs;
      renderClock();
    });
    $('expire-tokens').addEventListener('click', () => attempt('Expiring the token', () => api('POST', '/sandbox/api/wechat/expire-tokens')));
    const fault = $('fault');
    fault.addEventListener('change', async () => {
      const wanted = fault.value;
      const result = await attempt('Setting the fault', () => api('POST', '/sandbox/api/faults', { fault: wanted }));
      renderFaults(result ? result.faults : state.faults);
    });
  }

  /** The active fault, its end time, and the menu showing it (or "none"). */
  function renderFaults(faults) {
    state.faults = faults;
    const active = faults[0];
    $('fault').value = active ? active.fault : 'none';
    const info = $('fault-info');
    info.hidden = !active;
    info.textContent = active ? `${active.label} until ${time(active.until)}` : '';
    clearTimeout(state.faultTimer);
    if (active) state.faultTimer = setTimeout(() => renderFaults(state.faults.filter((f) => f.until > Date.now())), Math.max(0, active.until - Date.now()) + 200);
  }

  function setLive(status, text) {
    const live = $('live');
    live.dataset.state = status;
    live.querySelector('.live-text').textContent = text;
  }

  /** The sandbox was restarted (a new instance answers): this page's state is stale, start over. */
  function checkInstance(instanceId) {
    if (state.instanceId && instanceId && instanceId !== state.instanceId) {
      setLive('down', 'sandbox restarted, reloading…');
      window.location.reload();
      return false;
    }
    state.instanceId = state.instanceId || instanceId;
    return true;
  }

  function connectStream() {
    const source = new EventSource('/sandbox/api/stream');
    source.addEventListener('open', () => setLive('live', 'live'));
    source.addEventListener('hello', (e) => checkInstance(JSON.parse(e.data).instanceId));
    source.addEventListener('faults', (e) => renderFaults(JSON.parse(e.data)));
    source.addEventListener('error', () => {
      setLive('down', 'sandbox not answering, reconnecting…');
      // The browser retries by itself after a network error, but not after an HTTP error (a proxy's
      // 502, a server on its way down): then open a new stream.
      if (source.readyState === EventSource.CLOSED) setTimeout(connectStream, 2000);
    });
    source.addEventListener('traffic', (e) => addTraffic(JSON.parse(e.data)));
    source.addEventListener('wechat', (e) => onWeChatChange(JSON.parse(e.data)));
    source.addEventListener('vonage', (e) => onVonageChange(JSON.parse(e.data)));
  }

  /** The phone pane's part of the state: the account's users, chats, push mode and clock. */
  function applyAccountState(snapshot) {
    state.accounts = snapshot.accounts || [];
    state.account = snapshot.account && snapshot.account.configuredId;
    state.pushMode = snapshot.pushMode || 'plain';
    state.users = new Map();
    for (const user of snapshot.users) state.users.set(user.openid, user);
    state.selectedOpenid = snapshot.users[0] && snapshot.users[0].openid;
    state.clockOffsetMs = snapshot.clockOffsetMs;
    renderAccountSelect();
  }

  /**
   * The account of a conversation, from its name: `wechat:<openid>` is the default account's,
   * `wechat:<id>:<openid>` another's (the bridge's names). Shared conversations: the picked account.
   */
  function accountOfConversation(conversationId) {
    const conversation = state.conversations.get(conversationId);
    const name = conversation && conversation.name ? conversation.name : '';
    const match = /^wechat:([a-z0-9][a-z0-9_-]*):/.exec(name);
    if (match && state.accounts.some((a) => a.id === match[1])) return match[1];
    return name.startsWith('wechat:') ? 'default' : state.account || 'default';
  }

  function renderAccountSelect() {
    const picked = state.accounts.find((a) => a.id === state.account);
    const title = document.querySelector('.phone-title');
    if (title && picked) title.textContent = picked.label;
    const select = $('account-select');
    select.replaceChildren(...state.accounts.map((a) => el('option', { value: a.id, selected: a.id === state.account }, `${a.label} (${a.originalId})`)));
    select.hidden = state.accounts.length < 2;
  }

  function wireAccountPicker() {
    $('account-select').addEventListener('change', async (e) => {
      const wanted = e.target.value;
      const snapshot = await attempt('Switching the account', () => api('GET', '/sandbox/api/state', undefined, wanted));
      if (!snapshot) {
        renderAccountSelect();
        return;
      }
      applyAccountState(snapshot);
      $('push-mode').value = state.pushMode;
      renderClock();
      renderUserSelect();
      renderPhone();
    });
  }

  async function start() {
    wireAccountPicker();
    wirePhone();
    wireAgent();
    wireTraffic();
    wireTopBar();
    connectStream();
    const initial = await api('GET', '/sandbox/api/state');
    if (!checkInstance(initial.instanceId)) return;
    renderFaults(initial.faults || []);
    applyAccountState(initial);
    state.agent.name = initial.agent.name;
    state.agent.displayName = initial.agent.displayName;
    state.agent.vonageApiBase = initial.vonageApiBase;
    $('agent-name').textContent = `· ${initial.agent.displayName} (user ${initial.agent.name})`;
    $('push-mode').value = initial.pushMode || 'plain';
    state.accountType = initial.accountType || 'verified';
    $('account-type').value = state.accountType;
    $('demo-bot').checked = initial.demoBot === true;
    // Entries that also came through the stream before this answer are not shown twice.
    const seen = new Set(state.traffic.map((t) => t.seq));
    state.traffic = [...initial.traffic.filter((t) => !seen.has(t.seq)), ...state.traffic].sort(byStart);
    renderTraffic();
    renderClock();
    renderUserSelect();
    renderPhone();
    await startAgent();
    document.body.dataset.ready = 'true';
  }

  // Anything that still escapes is shown, not only logged to the developer console.
  window.addEventListener('unhandledrejection', (event) => {
    showNotice(`Something failed: ${event.reason && event.reason.message ? event.reason.message : String(event.reason)}`);
    event.preventDefault();
  });

  start().catch((error) => {
    setLive('down', `failed to start: ${error.message}`);
  });
})();
