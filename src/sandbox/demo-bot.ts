/**
 * The sandbox's demo bot: an agent that answers every WeChat user's message within a second, the
 * way an LLM bot would, so that the console shows a reply end to end without typing one. It watches
 * the Vonage emulator like a Client SDK app (every event as it is created) and posts its answer with
 * the Conversation API, as any application would; it knows nothing of the bridge.
 *
 * With the WeChat account switched to "unverified subscription account" (custom/send answers 48001),
 * the bridge's auto reply mode turns these answers into passive replies: the console then shows the
 * push held, and answered with the bot's message.
 */
import type { Logger } from '../logger';
import type { VonageEmulator } from './vonage/emulator';

export interface DemoBotDeps {
  vonage: Pick<VonageEmulator, 'onChange'>;
  /** Posts an event to a conversation through the Conversation API (with an application JWT). */
  postEvent: (conversationId: string, event: { type: string; body: Record<string, unknown> }) => Promise<void>;
  logger: Logger;
  /** How long the bot "thinks"; default 600 ms. */
  delayMs?: number;
  enabled?: boolean;
}

export interface DemoBot {
  readonly enabled: boolean;
  setEnabled(enabled: boolean): void;
  stop(): void;
}

/** What the bot says to a message. */
export function demoBotAnswer(body: Record<string, unknown>): string | undefined {
  if (body['msg_type'] === 'event') return body['event'] === 'subscribe' ? '🤖 Demo bot: welcome! Write me anything.' : undefined;
  if (body['msg_type'] === 'text' && typeof body['content'] === 'string') return `🤖 Demo bot: you said “${body['content']}”`;
  const msgType = body['msg_type'];
  return `🤖 Demo bot: thanks for the ${typeof msgType === 'string' ? msgType : 'message'}`;
}

export function startDemoBot(deps: DemoBotDeps): DemoBot {
  let enabled = deps.enabled ?? false;
  const timers = new Set<NodeJS.Timeout>();
  const unsubscribe = deps.vonage.onChange((change) => {
    if (!enabled || change.type !== 'event') return;
    const { event, conversationId } = change;
    if (event.type !== 'custom:wechat:message' || event.body['direction'] !== 'inbound') return;
    // One answer per message: a long text reaches Vonage in parts, answered once (its first).
    if (typeof event.body['part'] === 'number' && event.body['part'] !== 1) return;
    const answer = demoBotAnswer(event.body);
    if (answer === undefined) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      deps
        .postEvent(conversationId, {
          type: 'custom:wechat:message',
          body: { direction: 'outbound', to: event.body['from'], msg_type: 'text', content: answer },
        })
        .catch((error: unknown) => deps.logger.warn({ err: error, conversationId }, 'the demo bot could not post its answer'));
    }, deps.delayMs ?? 600);
    timers.add(timer);
  });
  return {
    get enabled() {
      return enabled;
    },
    setEnabled(on) {
      enabled = on;
    },
    stop() {
      unsubscribe();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
