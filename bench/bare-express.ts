/**
 * The baseline: a bare Express 5 route that reads the body and answers `success`, with none of
 * the bridge's work (no signature, no parsing, no storage). Run as its own process, like the bridge.
 */
import express from 'express';

const app = express();
app.post('/weChatEvent', express.text({ type: () => true, limit: '64kb' }), (_req, res) => {
  res.type('text/plain').send('success');
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
