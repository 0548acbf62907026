// Load generator child: autocannon at a fixed rate (or as fast as it goes), one alert per request.
// argv[2] = JSON { url, kind: 'delete'|'declined'|'storm', rate, duration?, amount?, connections }
import autocannon from 'autocannon';
import { alertFor } from './alerts.mjs';

const opts = JSON.parse(process.argv[2]);
let n = 0;
const prefix = `p${process.pid}-`;
const alert = () => alertFor(opts.kind === 'storm' ? 'delete' : opts.kind, opts.kind === 'storm' ? 'storm-target' : `${prefix}${n++}`);

const result = await autocannon({
  url: opts.url,
  connections: opts.connections ?? 50,
  pipelining: 1,
  ...(opts.rate ? { overallRate: opts.rate } : {}),
  ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration }),
  timeout: 10,
  requests: [{ method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' }, setupRequest: (req) => ({ ...req, body: alert() }) }],
});
process.stdout.write(JSON.stringify({
  requests: result.requests.total,
  rps: result.requests.average,
  p50: result.latency.p50,
  p99: result.latency.p99,
  max: result.latency.max,
  non2xx: result.non2xx,
  errors: result.errors + result.timeouts,
  durationS: result.duration,
}));
