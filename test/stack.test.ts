// Stack traces in the bundle name TypeScript lines, without --enable-source-maps (which, under Node 18,
// costs about 250 ms of CPU for every stack formatted: one per unparseable body).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';

describe('stack traces of the bundled function', () => {
  it('name the TypeScript file and line through the source map', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'fpd-stack-')), 'throws.mjs');
    execFileSync(process.execPath, ['template/node18-ts-middleware/build.mjs', 'test/data/stack/throws.ts', out]);
    const stack = execFileSync(process.execPath, [out]).toString();
    expect(stack).toMatch(/^SyntaxError: /);
    expect(stack).toMatch(/at parseSomething \(.*test\/data\/stack\/throws\.ts:7:\d+\)/);
    // No frame of the bundle (app.mjs) unmapped; the launcher's import is the one .mjs frame.
    expect(stack).not.toContain('app.mjs:');
  });

  it('the image and template run node without --enable-source-maps', () => {
    const dockerfile = readFileSync('template/node18-ts-middleware/Dockerfile', 'utf8');
    const template = YAML.parse(readFileSync('template/node18-ts-middleware/template.yml', 'utf8')) as { fprocess: string };
    expect(dockerfile).toContain('ENV fprocess="node dist/index.mjs"');
    expect(template.fprocess).toBe('node dist/index.mjs');
  });
});
