// Template entry: the function in ./function (handler.ts) served by ./server.ts.
import { main } from './server.js';
import { installTypeScriptStacks } from './stack.js';

installTypeScriptStacks(import.meta.url);

// Logged with context and survived: the process exits non-zero only when it cannot serve at all (startup).
const report = (msg: string) => (e: unknown) => {
  const error = e instanceof Error ? { message: e.message, stack: e.stack } : { message: String(e) };
  console.error(JSON.stringify({ level: 'error', time: new Date().toISOString(), msg, error }));
};
process.on('unhandledRejection', report('unhandled rejection'));
process.on('uncaughtException', report('uncaught exception'));

// Imported dynamically so that a function that refuses to start (bad configuration) is reported in one clear line.
import('./function/handler.js')
  .then((fn) => main(fn))
  .catch((e: unknown) => {
    console.error(JSON.stringify({ level: 'fatal', time: new Date().toISOString(), msg: 'cannot start', error: e instanceof Error ? e.message : String(e) }));
    process.exit(1);
  });
