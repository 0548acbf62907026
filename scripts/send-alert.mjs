// Posts a Falco alert to the function the way Falcosidekick's OpenFaaS output does, with its time set to now
// (alerts older than MAX_ALERT_AGE_SECONDS are declined as stale) and a fresh uuid.
//   node scripts/send-alert.mjs [alert.json] [url]
// The function's answer (JSON) goes to stdout, so that `npm run -s send-alert | jq` works; the HTTP status to
// stderr. Exit status: 0 for a 2xx answer, 1 for any other answer, 2 when nothing could be sent.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [file = 'samples/terminal-shell.json', url = `http://127.0.0.1:${process.env.http_port ?? process.env.PORT ?? 3000}/`] = process.argv.slice(2);
const fail = (msg) => {
  process.stderr.write(`send-alert: ${msg}\n`);
  process.exit(2);
};

let alert;
try {
  alert = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  fail(e.code ? `cannot read ${file} (${e.code}): give a Falco alert file, e.g. one in samples/` : `${file} is not JSON: ${e.message}`);
}
if (typeof alert !== 'object' || alert === null || Array.isArray(alert)) fail(`${file} is not a Falco alert (a JSON object)`);
alert.time = new Date().toISOString();
alert.uuid = randomUUID();
let r;
try {
  r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' }, body: JSON.stringify(alert) });
} catch (e) {
  fail(`cannot reach the function at ${url} (${e.cause?.code ?? e.message}): is it running (npm start)?`);
}
const text = await r.text();
process.stderr.write(`HTTP ${r.status}\n`);
let body;
try {
  body = JSON.stringify(JSON.parse(text), null, 2);
} catch {
  body = text;
}
process.stdout.write(`${body}\n`);
process.exit(r.ok ? 0 : 1);
