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
import * as crypto from 'node:crypto';
import express, { type RequestHandler, type Response, type Router } from 'express';
import { mayActOn } from '../bridge/to-wechat/plan-outbound';
import { InvalidInputError } from '../errors';
import { unstorableReason } from '../store/storable-text';
import type { NewJob } from '../store/store';
import { parseRtcEvent, signatureSecretKey, verifyVonageWebhookSignature, type RtcEvent } from '../vonage/webhook';
import { storeThenAcknowledge, type DurableAckDeps } from './durable-ack';
import { isReplayedCredential, replayKeysOf, seenKeysOf, type ReplayKeys } from './replay-guard';

/** Vonage's custom event bodies are at most 4096 bytes; whole RTC payloads stay far below this. */
export const RTC_BODY_LIMIT = '256kb';

/** A signed request is good for this long either side of its `iat` (and its `jti` is kept as long). */
const SIGNATURE_MAX_AGE_SECONDS = 300;

export interface RtcWebhookDeps extends DurableAckDeps {
  /** VONAGE_SIGNATURE_SECRET; when undefined the route accepts unsigned requests (main.ts warns). */
  signatureSecret: string | undefined;
  /** VONAGE_PREVIOUS_SIGNATURE_SECRET: also accepted, after the current one, while a rotation settles. */
  previousSignatureSecret?: string | undefined;
  /** What the bridge does with an event: a job, or undefined to ignore it. */
  jobFor: (event: RtcEvent) => NewJob | undefined;
  now: () => number;
}

/** The raw bytes of the body (the signature covers them exactly), or an empty buffer. */
const rawBodyOf = (body: unknown): Buffer => (Buffer.isBuffer(body) ? body : Buffer.alloc(0));


/**
 * With a secret: an HS256 JWT over the body, fresh, its `jti` not used for another request.
 *
 * - No `Authorization` at all: Vonage documents that "in the rare case of an internal error" the
 *   callback service sends an unsigned callback and that "by returning an HTTP 5xx response, a retry
 *   will be triggered". So it is answered `503`, nothing is acted on, and the retry comes signed.
 * - A bad, tampered, stale or reused token is a `401`.
 * - The `jti` is recorded in the same transaction as the request's job, so a store failure (a `503`)
 *   does not turn Vonage's retry with the same token into a "replay". A redelivery of the
 *   very same request (same `jti`, same body) goes on to the store, whose dedup key answers `200`
 *   without acting twice; the same `jti` over another body is refused.
 * - A genuine token without `payload_hash` is accepted (its body is not covered), logged and counted.
 */
export function requireVonageSignature(
  deps: Pick<RtcWebhookDeps, 'signatureSecret' | 'previousSignatureSecret' | 'store' | 'now' | 'logger' | 'metrics'>,
): RequestHandler {
  if (deps.signatureSecret === undefined) return (_req, _res, next) => next();
  const secrets = [deps.signatureSecret, deps.previousSignatureSecret]
    .filter((secret): secret is string => secret !== undefined && secret !== '')
    .map(signatureSecretKey);
  return async (req, res, next) => {
    if (!req.headers.authorization?.trim()) {
      deps.logger.warn({ path: req.path }, 'unsigned RTC callback, answered 503 so that Vonage retries it signed');
      res.status(503).type('text/plain').send('unsigned callback: retry signed');
      return;
    }
    const rawBody = rawBodyOf(req.body);
    const { jti, iat, payloadHashed } = verifyVonageWebhookSignature({
      authorization: req.headers.authorization,
      rawBody,
      secret: secrets,
      nowMs: deps.now(),
      maxAgeSeconds: SIGNATURE_MAX_AGE_SECONDS,
    });
    if (!payloadHashed) {
      deps.metrics.unhashedCallback();
      deps.logger.warn({ jti }, 'signed RTC callback without payload_hash accepted: its body is not covered by the signature');
    }
    const keys = replayKeysOf(
      `vonage-jti:${jti}`,
      crypto.createHash('sha256').update(rawBody).digest('hex'),
      (iat + SIGNATURE_MAX_AGE_SECONDS + 60) * 1000,
    );
    let replayed: boolean;
    try {
      replayed = await isReplayedCredential(deps.store, keys);
    } catch (error) {
      // Not the caller's fault: a 503 makes Vonage try again.
      deps.logger.error({ err: error }, 'could not check the webhook jti, answered 503');
      res.status(503).type('text/plain').send('try again');
      return;
    }
    if (replayed) return next(new InvalidInputError(401, 'Vonage webhook signature: token already used (jti replay)'));
    res.locals.replayKeys = keys;
    return next();
  };
}

/** Records the replay keys of a request that stored nothing; a failure here costs only the replay guard. */
async function recordSignature(deps: Pick<RtcWebhookDeps, 'store' | 'logger'>, res: Response): Promise<void> {
  const keys = res.locals.replayKeys as ReplayKeys | undefined;
  if (keys === undefined || res.statusCode !== 200) return;
  try {
    for (const { key, expiresAt } of seenKeysOf(keys)) await deps.store.markSeen(key, expiresAt);
  } catch (error) {
    deps.logger.warn({ err: error }, 'could not record the jti of a webhook that needed nothing stored');
  }
}

/**
 * Parses the body into `res.locals.rtcEvent`. Malformed JSON is a 400. An event the bridge cannot
 * read is a 400 only when it is of a kind the bridge acts on; any other (`conversation:created` and
 * `app:knocking` have no `id` or `conversation_id`, unknown kinds may lack anything) is answered 200
 * and ignored, since a 4xx would only make Vonage report or retry an event nobody needs.
 */
export function readRtcEvent(deps: Pick<RtcWebhookDeps, 'logger' | 'store'>): RequestHandler {
  return async (req, res, next) => {
    const text = rawBodyOf(req.body).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return next(new InvalidInputError(400, 'body is not valid JSON'));
    }
    // Text no store can hold, or absurd depth, is the sender's fault: 400, never a 503 resent forever.
    const unstorable = unstorableReason(json);
    if (unstorable !== undefined) return next(new InvalidInputError(400, `event not accepted: ${unstorable}`));
    try {
      res.locals.rtcEvent = parseRtcEvent(json);
    } catch (error) {
      if (!(error instanceof InvalidInputError) || mayActOn(json)) return next(error);
      const type = typeof json === 'object' && json !== null && typeof (json as { type?: unknown }).type === 'string' ? (json as { type: string }).type : undefined;
      deps.logger.debug({ type, reason: error.message }, 'rtc event ignored');
      res.status(200).type('text/plain').send('ok');
      await recordSignature(deps, res);
      return;
    }
    return next();
  };
}

export function storeAndAcknowledge(deps: RtcWebhookDeps): RequestHandler {
  return async (_req, res: Response) => {
    const event = res.locals.rtcEvent as RtcEvent;
    const context = { type: event.type, conversationId: event.conversationId, eventId: event.id };
    const job = deps.jobFor(event);
    if (job === undefined) {
      deps.logger.debug(context, 'rtc event ignored');
      res.status(200).type('text/plain').send('ok');
      await recordSignature(deps, res);
      return;
    }

    const keys = res.locals.replayKeys as ReplayKeys | undefined;
    await storeThenAcknowledge(deps, res, {
      jobs: [job],
      direction: 'outbound',
      successText: 'ok',
      context: { ...context, kind: job.kind },
      ...(keys ? { seenKeys: seenKeysOf(keys) } : {}),
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
    readRtcEvent(deps),
    storeAndAcknowledge(deps),
  );
  return router;
}
