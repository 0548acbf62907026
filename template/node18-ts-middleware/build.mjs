// Bundles the template entry and the function into one ESM file with a source map (what the image runs).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const [entry = 'index.ts', outfile = 'dist/index.mjs', handler] = process.argv.slice(2);

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
