// A bundle that fails on purpose: its stack must name this file and line, not the bundle's.
import { installTypeScriptStacks } from '../../../template/node18-ts-middleware/stack.js';

installTypeScriptStacks(import.meta.url);

function parseSomething(text: string): unknown {
  return JSON.parse(text);
}

try {
  parseSomething('{not json');
} catch (e) {
  process.stdout.write(String((e as Error).stack));
}
