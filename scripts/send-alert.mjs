// Posts a Falco alert to the function the way Falcosidekick's OpenFaaS output does, with its time set to now
// (alerts older than MAX_ALERT_AGE_SECONDS are declined as stale) and a fresh uuid.
//   node scripts/send-alert.mjs [alert.json] [url]
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [file = 'samples/terminal-shell.json', url = `http://127.0.0.1:${process.env.http_port ?? process.env.PORT ?? 3000}/`] = process.argv.slice(2);
const alert = JSON.parse(readFileSync(file, 'utf8'));
alert.time = new Date().toISOString();
alert.uuid = randomUUID();
const r = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' },
  body: JSON.stringify(alert),
});
console.log(`HTTP ${r.status}`);
console.log(JSON.stringify(await r.json(), null, 2));
