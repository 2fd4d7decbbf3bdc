/**
 * `POST /rtcEvent`: the Vonage application's RTC `event_url`, as a chain of tiny middlewares:
 *
 *   admit (budget) → raw body (256 KiB) → signature (when a secret is set; jti replay) → JSON → RTC event
 *   → plan (act or ignore) → store durably → `200`
 *
 * Vonage sends every event of the application here. Events the bridge ignores are answered `200`
 * at once (a 4xx would only make Vonage log errors or retry). An event it acts on is answered `200`
 * once its job is stored, with a dedup key per (conversation id, event id), so a redelivered event
 * is acted on once. A store failure is answered `503` so that Vonage tries again.
 */
import express, { type RequestHandler, type Response, type Router } from 'express';
import { InvalidInputError } from '../errors';
import type { NewJob } from '../store/store';
import { parseRtcEvent, signatureSecretKey, verifyVonageWebhookSignature, type RtcEvent } from '../vonage/webhook';
import { storeThenAcknowledge, type DurableAckDeps } from './durable-ack';

/** Vonage's custom event bodies are at most 4096 bytes; whole RTC payloads stay far below this. */
export const RTC_BODY_LIMIT = '256kb';

/** A signed request is good for this long either side of its `iat` (and its `jti` is kept as long). */
const SIGNATURE_MAX_AGE_SECONDS = 300;

export interface RtcWebhookDeps extends DurableAckDeps {
  /** VONAGE_SIGNATURE_SECRET; when undefined the route accepts unsigned requests (main.ts warns). */
  signatureSecret: string | undefined;
  /** What the bridge does with an event: a job, or undefined to ignore it. */
  jobFor: (event: RtcEvent) => NewJob | undefined;
  now: () => number;
}

/** The raw bytes of the body (the signature covers them exactly), or an empty buffer. */
const rawBodyOf = (body: unknown): Buffer => (Buffer.isBuffer(body) ? body : Buffer.alloc(0));

/**
 * With a secret: an HS256 JWT over the body, fresh, never seen before. The `jti` is remembered for
 * as long as the token could pass the freshness check, so a captured request cannot be replayed.
 */
export function requireVonageSignature(deps: Pick<RtcWebhookDeps, 'signatureSecret' | 'store' | 'now' | 'logger'>): RequestHandler {
  if (deps.signatureSecret === undefined) return (_req, _res, next) => next();
  const secret = signatureSecretKey(deps.signatureSecret);
  return async (req, res, next) => {
    const { jti, iat } = verifyVonageWebhookSignature({
      authorization: req.headers.authorization,
      rawBody: rawBodyOf(req.body),
      secret,
      nowMs: deps.now(),
      maxAgeSeconds: SIGNATURE_MAX_AGE_SECONDS,
    });
    let firstUse: boolean;
    try {
      firstUse = await deps.store.markSeen(`vonage-jti:${jti}`, (iat + SIGNATURE_MAX_AGE_SECONDS + 60) * 1000);
    } catch (error) {
      // Not the caller's fault: a 503 makes Vonage try again.
      deps.logger.error({ err: error }, 'could not check the webhook jti, answered 503');
      res.status(503).type('text/plain').send('try again');
      return;
    }
    if (!firstUse) return next(new InvalidInputError(401, 'Vonage webhook signature: token already used (jti replay)'));
    return next();
  };
}

/** Parses the body into `res.locals.rtcEvent`: malformed JSON or a non-event is a 400. */
export const readRtcEvent: RequestHandler = (req, res, next) => {
  const text = rawBodyOf(req.body).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return next(new InvalidInputError(400, 'body is not valid JSON'));
  }
  res.locals.rtcEvent = parseRtcEvent(json);
  return next();
};

export function storeAndAcknowledge(deps: RtcWebhookDeps): RequestHandler {
  return async (_req, res: Response) => {
    const event = res.locals.rtcEvent as RtcEvent;
    const context = { type: event.type, conversationId: event.conversationId, eventId: event.id };
    const job = deps.jobFor(event);
    if (job === undefined) {
      deps.logger.debug(context, 'rtc event ignored');
      res.status(200).type('text/plain').send('ok');
      return;
    }

    await storeThenAcknowledge(deps, res, {
      jobs: [job],
      direction: 'outbound',
      successText: 'ok',
      context: { ...context, kind: job.kind },
    });
  };
}

export function rtcWebhookRouter(deps: RtcWebhookDeps): Router {
  const router = express.Router();
  router.post(
    '/rtcEvent',
    deps.admit,
    express.raw({ type: () => true, limit: RTC_BODY_LIMIT }),
    requireVonageSignature(deps),
    readRtcEvent,
    storeAndAcknowledge(deps),
  );
  return router;
}
