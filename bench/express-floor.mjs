// The Express floor: Express 5 as the template sets it up (express.json with the same limit, no ETag), and a
// handler that answers a fixed 200 at once. No Express handler can decline an alert faster than this here.
import express from 'express';

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.use(express.json({ limit: '512kb', strict: false }));
app.use((req, res) => {
  const body = JSON.stringify({ decision: 'skip', outcome: 'skipped', fields: Object.keys(req.body ?? {}).length });
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
app.listen(Number(process.env.PORT), '127.0.0.1');
