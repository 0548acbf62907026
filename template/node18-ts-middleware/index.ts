// Template entry: the function in ./function (handler.ts) served by ./server.ts.
import { main } from './server.js';
import { installTypeScriptStacks } from './stack.js';

installTypeScriptStacks(import.meta.url);

// A closed or broken stdout or stderr (a log collector gone, `| head`) is nothing to report, and nowhere to
// report it: without these, the write error became an uncaught exception whose report failed the same way, and
// the process spun instead of stopping.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

// Logged with context and survived: the process exits non-zero only when it cannot serve at all (startup).
let reporting = false;
const report = (msg: string) => (e: unknown) => {
  if (reporting) return;
  reporting = true;
  try {
    const error = e instanceof Error ? { message: e.message, stack: e.stack } : { message: String(e) };
    console.error(JSON.stringify({ level: 'error', time: new Date().toISOString(), msg, error }));
  } catch {
    // stderr is gone: nothing more to do
  } finally {
    reporting = false;
  }
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
