// Bundles the template entry and the function into one ESM file with a source map (what the image runs).
import { resolve } from 'node:path';
import { build } from 'esbuild';

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
  minify: true,
  keepNames: true,
  legalComments: 'external',
  plugins: [handlerAlias],
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  resolveExtensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
  logLevel: 'warning',
});
