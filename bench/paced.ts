/**
 * An open-loop, paced HTTP load: request i is due at start + i / rate whatever happened to the
 * ones before it (as WeChat's servers push: they do not wait for our previous answer), on at most
 * `connections` keep-alive connections. A due request that finds every connection busy waits for
 * one, and its latency counts from when it was due, not from when it could be written, so a server
 * that falls behind shows it in the latency instead of quietly being offered less (no "coordinated
 * omission", unlike a closed-loop tool such as autocannon).
 *
 * When the schedule ends, what is still in flight gets `graceMs` to finish; requests that never
 * found a connection by then are counted as `unsent`, those still unanswered as `timeouts`.
 */
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface PacedRequest {
  path: string;
  body: string;
  headers: Record<string, string>;
}

export interface PacedOptions {
  port: number;
  /** Offered requests per second. */
  rate: number;
  durationS: number;
  connections: number;
  /** Builds request `seq` (0, 1, …) when it is written. */
  request: (seq: number) => PacedRequest;
  /** Called for every answer: `sentAtMs` is the epoch ms it was written; `latencyMs` as in `latenciesMs`. */
  onAnswer?: (seq: number, status: number, latencyMs: number, sentAtMs: number) => void;
  /** How long in-flight requests may take after the schedule ends. Default 2000 ms. */
  graceMs?: number;
}

export interface PacedResult {
  offeredRate: number;
  /** Requests due during the run. */
  due: number;
  /** 2xx answers per second over the run (schedule plus whatever of the grace period was used). */
  achievedRate: number;
  ok: number;
  non2xx: number;
  /** Connection errors. */
  errors: number;
  /** Written but unanswered at the end of the grace period. */
  timeouts: number;
  /** Due but never written: no connection became free in time (the server was saturated). */
  unsent: number;
  /** Latency of each 2xx answer, ms: from when it was written, or from when it was due if it had to wait for a connection. */
  latenciesMs: number[];
  elapsedS: number;
}

export function runPaced(options: PacedOptions): Promise<PacedResult> {
  const { port, rate, durationS, connections, request, onAnswer } = options;
  const graceMs = options.graceMs ?? 2000;
  const total = Math.max(1, Math.round(rate * durationS));
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const latenciesMs: number[] = [];
  const pending: number[] = [];
  const inFlight = new Set<http.ClientRequest>();
  let next = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let lastAnswerAt = 0;
  let finished = false;

  const start = performance.now() + 5;
  const dueAt = (seq: number) => start + (seq * 1000) / rate;

  return new Promise<PacedResult>((resolve) => {
    // `queued`: it waited for a connection, so its latency counts from when it was due. Otherwise
    // from when it was written: the pacer's own timer wakes up to a millisecond late, which is not
    // the server's doing.
    const send = (seq: number, queued: boolean) => {
      const spec = request(seq);
      const writtenAt = performance.now();
      const sentAtMs = performance.timeOrigin + writtenAt;
      const latencyFrom = queued ? dueAt(seq) : writtenAt;
      const req = http.request({
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: spec.path,
        headers: { ...spec.headers, 'content-length': String(Buffer.byteLength(spec.body)) },
      });
      inFlight.add(req);
      const done = () => {
        inFlight.delete(req);
        if (pending.length > 0 && !finished) send(pending.shift()!, true);
        else maybeFinish();
      };
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          const now = performance.now();
          const latency = now - latencyFrom;
          lastAnswerAt = now;
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            ok += 1;
            latenciesMs.push(latency);
          } else {
            non2xx += 1;
          }
          onAnswer?.(seq, status, latency, sentAtMs);
          done();
        });
      });
      req.on('error', () => {
        if (finished) return;
        errors += 1;
        done();
      });
      req.end(spec.body);
    };

    const tick = () => {
      const now = performance.now();
      while (next < total && dueAt(next) <= now) {
        if (inFlight.size < connections) send(next, false);
        else pending.push(next);
        next += 1;
      }
      if (next >= total) {
        clearInterval(ticker);
        maybeFinish();
      }
    };

    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(ticker);
      clearTimeout(deadline);
      const timeouts = inFlight.size;
      for (const req of inFlight) req.destroy();
      agent.destroy();
      const end = Math.max(lastAnswerAt, dueAt(total - 1));
      const elapsedS = Math.max(0.001, (end - start) / 1000);
      resolve({
        offeredRate: rate,
        due: total,
        achievedRate: ok / elapsedS,
        ok,
        non2xx,
        errors,
        timeouts,
        unsent: pending.length + (total - next),
        latenciesMs,
        elapsedS,
      });
    };

    const maybeFinish = () => {
      if (next >= total && inFlight.size === 0 && pending.length === 0) finish();
    };

    const ticker = setInterval(tick, 1);
    const deadline = setTimeout(finish, durationS * 1000 + graceMs + 5);
  });
}
