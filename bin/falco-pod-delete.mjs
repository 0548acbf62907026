#!/usr/bin/env node
// The falco-pod-delete command (explain, release, list). Runs dist/cli.mjs, bundling it from falco-pod-delete/cli.ts first
// when it is missing or older than the sources (esbuild, a dev dependency of this repository).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'cli.mjs');
const newest = (dir) => Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? (e.name === 'node_modules' ? 0 : newest(join(dir, e.name))) : statSync(join(dir, e.name)).mtimeMs)));
if (!existsSync(out) || statSync(out).mtimeMs < newest(join(root, 'falco-pod-delete'))) {
  const { build } = await import('esbuild');
  await build({ entryPoints: [join(root, 'falco-pod-delete', 'cli.ts')], outfile: out, bundle: true, platform: 'node', format: 'esm', target: 'node18', logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
}
// A command's errors are one line: Node's deprecation warnings about what its libraries load (punycode,
// url.parse under Node 22+) are not the user's to act on.
process.noDeprecation = true;
await import(pathToFileURL(out).href);
