// The README's local examples, run as a user runs them, compared with what the README shows: send-alert and
// the curl example against the function in dry-run (no cluster), and explain.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { docSection as section } from './support/docs.js';
import { type RunningFunction, startFunction } from './support/harness.js';
/** The fenced code blocks of a markdown text whose info string is `lang` ('' for none). */
function blocks(text: string, lang = ''): string[] {
  const found: string[] = [];
  let open: { lang: string; indent: number; lines: string[] } | undefined;
  for (const line of text.split('\n')) {
    const fence = /^(\s*)```(\S*)\s*$/.exec(line);
    if (fence && !open) open = { lang: fence[2], indent: fence[1].length, lines: [] };
    else if (fence && open) {
      const indent = open.indent;
      if (open.lang === lang) found.push(`${open.lines.map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n')}\n`);
      open = undefined;
    } else open?.lines.push(line);
  }
  return found;
}

let fn: RunningFunction;
let port: string;
beforeEach(async () => {
  fn = await startFunction({ COORDINATION: 'single' });
  port = new URL(fn.url).port;
});
afterEach(async () => {
  await fn.stop();
});

// Asynchronously: the function answers from this process.
const run = (command: string) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
  execFile('bash', ['-o', 'pipefail', '-c', command], { encoding: 'utf8', env: { ...process.env, http_port: port } }, (e, stdout, stderr) =>
    resolve({ status: e ? ((e as { code?: number }).code ?? null) : 0, stdout, stderr })));

describe('Run it locally', () => {
  const local = section('Run it locally');

  it('npm run -s send-alert prints only the answer\'s JSON on stdout, as shown, and the status on stderr', async () => {
    const shown = JSON.parse(blocks(local, 'json')[0]) as Record<string, unknown>;
    const r = await run('npm run -s send-alert');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('HTTP 200\n');
    const answer = JSON.parse(r.stdout) as Record<string, unknown>;
    expect({ ...answer, uuid: '…' }).toEqual(shown);
    expect((await run('npm run -s send-alert | jq -r .decision')).stdout).toBe('delete\n');
  });

  it("the curl example answers what the README shows, right after send-alert", async () => {
    await run('npm run -s send-alert');
    const command = blocks(local, 'sh').find((b) => b.includes('curl -s')) as string;
    const shown = /which answers `(\{.*\})`/.exec(local)?.[1] as string;
    const r = await run(command.replace(/\\\n\s*/g, ' ').replace('127.0.0.1:3000', `127.0.0.1:${port}`));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(shown));
  });

  it('send-alert says in one line what is wrong with a missing or unreadable file', async () => {
    for (const [file, why] of [['no-such-alert.json', /cannot read no-such-alert\.json \(ENOENT\)/], ['README.md', /README\.md is not JSON/]] as const) {
      const r = await run(`npm run -s send-alert -- ${file}`);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(why)]);
    }
  });

  it('every sample is an alert the function answers as samples/README.md says', async () => {
    const table = readFileSync('samples/README.md', 'utf8').split('\n').filter((l) => /^\| `[a-z0-9.-]+\.json` \|/.test(l));
    expect(table.length).toBeGreaterThanOrEqual(5);
    for (const row of table) {
      const file = /^\| `([^`]+)`/.exec(row)?.[1] as string;
      const answer = JSON.parse((await run(`npm run -s send-alert -- samples/${file}`)).stdout) as { decision: string; outcome: string; code: string };
      const said = row.split('|').at(-2) as string;
      expect([file, said.includes(answer.outcome === 'skipped' ? answer.code : answer.outcome)]).toEqual([file, true]);
    }
  });
});

describe('explain, as docs/policy.md shows it', () => {
  it('prints what the docs show for the sample', async () => {
    const explainSection = section('Explain: test a policy before shipping it');
    const command = blocks(explainSection, 'sh').find((b) => b.includes('--now < samples/')) as string;
    const shown = blocks(explainSection)[0];
    const r = await run(command.trim());
    expect(r.status).toBe(1); // 1: an alert would be acted on
    expect(r.stdout).toBe(shown);
  });

  it('--help prints its usage and exits 0, counting no alerts', () => {
    const out = execFileSync(process.execPath, ['bin/falco-pod-delete.mjs', 'explain', '--help'], { encoding: 'utf8' });
    expect(out).toMatch(/^usage: falco-pod-delete explain/);
    expect(out).not.toMatch(/alert\(s\)/);
  });
});
