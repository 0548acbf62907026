// falco-pod-delete explain [policy-file] [--json] [--now] < alerts
// Reads one alert, or a file of alerts one per line, and prints what the function would decide under the
// policy (the file given, else POLICY / POLICY_FILE, else the default) and the guards from the environment.
// Exit status: 0 when no alert would be acted on, 1 when any would, 2 on bad input or a bad policy.
import { readFileSync } from 'node:fs';
import { decisionPartsFromEnv } from './src/decision.js';
import { type Explanation, explain } from './src/explain.js';

const USAGE = `usage: falco-pod-delete explain [policy-file] [--json] [--now] < alert.json | alerts.ndjson
  Reads Falco alerts on standard input (one JSON alert, a JSON array, or one alert per line) and prints what the
  function would decide for each under the policy (the file given, else POLICY / POLICY_FILE, else the default)
  and the guards from the environment. It makes no Kubernetes call: what it would then check against the live
  pod is listed, not checked.
  --json: one JSON object per alert
  --now: treat every alert as just sent (fixtures have historical times)
  exit status: 0 when no alert would be acted on, 1 when any would, 2 on bad input or a bad policy
  e.g. npm run -s explain -- --now < samples/terminal-shell.json
`;

function usage(code: 0 | 2): never {
  (code === 0 ? process.stdout : process.stderr).write(USAGE);
  process.exit(code);
}

function documents(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  try {
    const one: unknown = JSON.parse(trimmed);
    return Array.isArray(one) ? one : [one];
  } catch {
    return trimmed.split('\n').filter((l) => l.trim() !== '').map((line, i) => {
      try {
        return JSON.parse(line) as unknown;
      } catch (e) {
        throw new Error(`line ${i + 1} is not JSON: ${(e as Error).message}`);
      }
    });
  }
}

function render(i: number, e: Explanation): string {
  const what = e.verdict === 'act' ? e.decision.toUpperCase() : e.verdict === 'reject' ? 'REJECT' : e.decision === 'log' ? 'LOG' : 'DECLINE';
  const head = `#${i + 1} ${e.rule ?? '(no rule)'}${e.priority ? ` [${e.priority}]` : ''}${e.pod ? ` ${e.pod}` : ''}: ${what} (${e.code})`;
  const lines = [head, `   why: ${e.reason}`];
  if (e.checks && e.checks.length > 0) lines.push(`   would then check against the live pod (explain makes no API call): ${e.checks.join('; ')}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || rest.includes('--help') || rest.includes('-h')) usage(0);
  if (command !== 'explain') usage(2);
  const unknown = rest.filter((a) => a.startsWith('-') && a !== '--json' && a !== '--now');
  if (unknown.length > 0) {
    process.stderr.write(`falco-pod-delete: unknown option ${unknown[0]}\n`);
    usage(2);
  }
  const json = rest.includes('--json');
  const now = rest.includes('--now');
  const files = rest.filter((a) => !a.startsWith('--'));
  if (files.length > 1) usage(2);
  if (process.stdin.isTTY) {
    process.stderr.write('falco-pod-delete explain: reading Falco alerts from standard input (a terminal): paste one JSON alert, or one per line, then Ctrl-D; or pipe a file: npm run -s explain -- --now < samples/terminal-shell.json (--help for more)\n');
  }
  const { policy, guards } = decisionPartsFromEnv(process.env, { policyFile: files[0] });
  const bodies = documents(readFileSync(0, 'utf8'));
  let acted = 0;
  for (const [i, body] of bodies.entries()) {
    const input = now && typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body, time: new Date().toISOString() } : body;
    const e = await explain(input, policy, guards);
    if (e.verdict === 'act') acted++;
    process.stdout.write(json ? `${JSON.stringify(e)}\n` : `${render(i, e)}\n`);
  }
  if (!json) process.stdout.write(`${bodies.length} alert(s), ${acted} would be acted on\n`);
  return acted > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`falco-pod-delete: ${(e as Error).message}\n`);
    process.exit(2);
  },
);
