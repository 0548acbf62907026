// falco-pod-delete explain [policy-file] [--json] [--now] < alerts
// Reads one alert, or a file of alerts one per line, and prints what the function would decide under the
// policy (the file given, else POLICY / POLICY_FILE, else the default) and the guards from the environment.
// Exit status: 0 when no alert would be acted on, 1 when any would, 2 on bad input or a bad policy.
// falco-pod-delete release NAMESPACE/POD [--delete] | release node/NAME | list   [--dry-run] [--kubeconfig PATH]
// The way back from isolate and cordon, for people, with their own kubeconfig (src/release.ts).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { loadConfig } from './src/config.js';
import { decisionPartsFromEnv } from './src/decision.js';
import { type Explanation, explain } from './src/explain.js';
import { Release, UsageError, describeFailure, operatorKubeConfig } from './src/release.js';

const USAGE = `usage: falco-pod-delete explain [policy-file] [--json] [--now] < alert.json | alerts.ndjson
  Reads Falco alerts on standard input (one JSON alert, a JSON array, or one alert per line) and prints what the
  function would decide for each under the policy (the file given, else POLICY / POLICY_FILE, else the default)
  and the guards from the environment. It makes no Kubernetes call: what it would then check against the live
  pod is listed, not checked.
  --json: one JSON object per alert
  --now: treat every alert as just sent (fixtures have historical times)
  exit status: 0 when no alert would be acted on, 1 when any would, 2 on bad input or a bad policy
  e.g. npm run -s explain -- --now < samples/terminal-shell.json

usage: falco-pod-delete release NAMESPACE/POD [--delete] [--dry-run] [--kubeconfig PATH]
       falco-pod-delete release node/NAME [--dry-run] [--kubeconfig PATH]
       falco-pod-delete list [--kubeconfig PATH]
  The way back from isolate and cordon, run with your own kubeconfig (--kubeconfig, else KUBECONFIG, else
  ~/.kube/config), never the function's. release NAMESPACE/POD puts an isolated pod's labels back and removes
  the quarantine label; a pod that left its controller stays as it is (its replacement runs), and --delete
  deletes it when the inspection is done. release node/NAME uncordons a node the function cordoned, and only
  that. list prints every pod isolated and node cordoned now, since when, and for which rule. Each prints one
  JSON line and writes a FalcoResponseReleased Event (list writes nothing); --dry-run sends every write as a
  server-side dry run.
  exit status: 0 done, 1 refused (nothing changed; the line says why), 2 bad input (no such pod, not isolated,
  the wrong kubeconfig)
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

/** release and list: one JSON line on stdout; a usage error or a failure, one line on stderr and exit 2. */
async function release(command: 'release' | 'list', rest: string[]): Promise<number> {
  const args = [...rest];
  let kubeconfig: string | undefined;
  const at = args.indexOf('--kubeconfig');
  if (at >= 0) {
    kubeconfig = args[at + 1];
    if (!kubeconfig || kubeconfig.startsWith('--')) throw new UsageError('--kubeconfig needs a path');
    args.splice(at, 2);
  }
  const flags = args.filter((a) => a.startsWith('-'));
  const allowed = command === 'list' ? ['--dry-run'] : ['--dry-run', '--delete'];
  const unknown = flags.find((f) => !allowed.includes(f));
  if (unknown) throw new UsageError(`unknown option ${unknown} for ${command} (--help for usage)`);
  const targets = args.filter((a) => !a.startsWith('-'));
  const config = loadConfig(process.env);
  const settings = { quarantineLabel: config.quarantineLabel, nodeLabel: config.nodeLabel, dryRun: flags.includes('--dry-run'), delete: flags.includes('--delete') };
  let run: (r: Release) => Promise<{ exit: number; line: object }>;
  if (command === 'list') {
    if (targets.length > 0) throw new UsageError('list takes no target');
    run = (r) => r.list();
  } else {
    if (targets.length !== 1) throw new UsageError('release takes one target: NAMESPACE/POD or node/NAME');
    const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(targets[0]);
    if (!m || m[3].length > 253 || m[1].length > 63) throw new UsageError(`release: ${JSON.stringify(targets[0])} is not NAMESPACE/POD nor node/NAME (Kubernetes names)`);
    if (m[1] === 'node' && settings.delete) throw new UsageError('--delete is for a pod; a node is only uncordoned');
    run = m[1] === 'node' ? (r) => r.releaseNode(m[3]) : (r) => r.releasePod(m[1], m[3]);
  }
  const r = new Release(operatorKubeConfig(kubeconfig, process.env, homedir()), settings);
  await r.whoami();
  try {
    const { exit, line } = await run(r);
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return exit;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(describeFailure(e));
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || rest.includes('--help') || rest.includes('-h')) usage(0);
  if (command === 'release' || command === 'list') return release(command, rest);
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
    process.stderr.write(`falco-pod-delete: ${(e as Error).message.split('\n')[0]}\n`);
    process.exit(2);
  },
);
