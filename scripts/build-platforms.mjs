// Bundles the non-OpenFaaS entries: dist/kubeless/ (handler.js + the CommonJS bundle it requires, for a zip deploy)
// and dist/gcf/ (an ESM source folder for `gcloud functions deploy --source dist/gcf`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const shims = { 'iconv-lite': 'template/node18-ts-middleware/shims/iconv-lite.cjs', 'whatwg-url': 'template/node18-ts-middleware/shims/whatwg-url.cjs' };
const common = { alias: Object.fromEntries(Object.entries(shims).map(([k, v]) => [k, `${process.cwd()}/${v}`])), bundle: true, platform: 'node', target: 'node18', sourcemap: true, sourcesContent: false, minify: true, keepNames: true, legalComments: 'external', logLevel: 'error' };

// The Kubeless runtime runs handler.js in a fresh vm context per request, where Node's web globals are missing:
// handler.js only requires the bundle, which then loads once, in the main context, and stays cached.
await build({ ...common, entryPoints: ['falco-pod-delete/kubeless.ts'], outfile: 'dist/kubeless/falco-pod-delete.cjs', format: 'cjs',
  define: { 'import.meta.url': '__import_meta_url' },
  banner: { js: "var __import_meta_url = require('node:url').pathToFileURL(__filename).href;" } });

writeFileSync('dist/kubeless/handler.js', "module.exports = require('./falco-pod-delete.cjs');\n");
// Kubeless loads handler.js as CommonJS; this marker keeps Node from reading it as ESM under the repo's package.json.
writeFileSync('dist/kubeless/package.json', '{ "type": "commonjs" }\n');

await build({ ...common, entryPoints: ['falco-pod-delete/gcf.ts'], outfile: 'dist/gcf/index.mjs', format: 'esm',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
mkdirSync('dist/gcf', { recursive: true });
writeFileSync('dist/gcf/package.json', `${JSON.stringify({
  name: 'falco-pod-delete-gcf',
  private: true,
  type: 'module',
  main: 'index.mjs',
  engines: { node: '>=18' },
  dependencies: { '@google-cloud/functions-framework': '4.0.0' },
}, null, 2)}\n`);
console.log('built dist/kubeless/handler.js and dist/gcf/');
