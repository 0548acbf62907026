// Bundles the template entry and the function into one ESM file with a source map (app.mjs beside the outfile),
// and writes the outfile as its launcher: V8's compile cache on where Node has one (22.1+), then the bundle, so
// that a start after the first (a restarted container, the image's warmed cache) skips compiling it.
import { writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const [entry = 'index.ts', launcher = 'dist/index.mjs', handler] = process.argv.slice(2);
const outfile = join(dirname(launcher), 'app.mjs');

/** Optionally serve another handler folder in place of ./function (the repo's own tests and `npm start`). */
const handlerAlias = {
  name: 'handler-alias',
  setup(b) {
    if (!handler) return;
    b.onResolve({ filter: /^\.\/function\/handler\.js$/ }, () => ({ path: resolve(handler) }));
  },
};

await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node18',
  sourcemap: true,
  // Mappings only: stack traces name TypeScript lines without carrying every source file in memory.
  sourcesContent: false,
  minify: true,
  keepNames: true,
  legalComments: 'external',
  plugins: [handlerAlias],
  // Smaller, faster-starting bundle: see shims/ for what each stand-in keeps.
  alias: { 'iconv-lite': join(here, 'shims/iconv-lite.cjs'), 'whatwg-url': join(here, 'shims/whatwg-url.cjs') },
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  resolveExtensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
  logLevel: 'warning',
});

// module.enableCompileCache: its directory is NODE_COMPILE_CACHE, else the system's temporary one; a directory it
// cannot write leaves the start as it was. Node 18 and 20 have no compile cache: the bundle loads as before.
writeFileSync(launcher, `// The function's start (template/node18-ts-middleware/build.mjs): the compile cache, then the bundle.
import module from 'node:module';
let cache = false;
try {
  cache = module.enableCompileCache?.()?.status !== undefined;
} catch {}
await import('./${basename(outfile)}');
// Written now (it would be at exit, which a killed container never reaches), and once more after the first
// alerts have compiled what they run.
if (cache && module.flushCompileCache) {
  module.flushCompileCache();
  setTimeout(() => module.flushCompileCache(), 10_000).unref();
}
`);
