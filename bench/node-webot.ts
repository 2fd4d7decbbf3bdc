/**
 * The baseline the bridge must keep up with: node-webot/wechat 2.1.0, the usual Express middleware
 * for WeChat pushes. It checks the signature and parses the XML with xml2js, then answers
 * `success`: no storage, no delivery. Run as its own process, like the bridge.
 */
import express, { type RequestHandler } from 'express';

type WeChatHandler = (req: unknown, res: { writeHead(status: number): void; end(text: string): void }) => void;
// node-webot/wechat ships no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped CommonJS package, typed at this one use
const wechat = require('wechat') as (token: string, handler: WeChatHandler) => RequestHandler;

const app = express();
app.use(
  '/weChatEvent',
  wechat(process.env.WECHAT_TOKEN ?? '', (_req, res) => {
    res.writeHead(200);
    res.end('success');
  }),
);
app.get('/', (_req, res) => {
  res.type('text/plain').send('ok');
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
