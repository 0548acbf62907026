// Template entry: the function in ./function (handler.ts) served by ./server.ts.
import { main } from './server.js';

process.on('unhandledRejection', (reason) => {
  console.error(JSON.stringify({ level: 'error', time: new Date().toISOString(), msg: 'unhandled rejection', error: String(reason) }));
});

// Imported dynamically so that a function that refuses to start (bad configuration) is reported in one clear line.
import('./function/handler.js')
  .then((fn) => main(fn))
  .catch((e: unknown) => {
    console.error(JSON.stringify({ level: 'fatal', time: new Date().toISOString(), msg: 'cannot start', error: e instanceof Error ? e.message : String(e) }));
    process.exit(1);
  });
