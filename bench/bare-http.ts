/**
 * The lowest baseline: a bare node:http server that reads the body and answers `success`, with
 * no framework and none of the bridge's work. Run as its own process, like the bridge.
 */
import * as http from 'node:http';

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 7 }).end('success');
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
