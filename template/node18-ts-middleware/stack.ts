// TypeScript positions in stack traces without --enable-source-maps: Node 18 re-reads the whole source map
// for every stack it formats with that flag (about 300 ms for this bundle, and body-parser formats one for
// every unparseable body). Here the map is parsed once, on the first stack that is formatted, and reused.
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';

type Frame = NodeJS.CallSite;

/** Maps frames of `bundleUrl` through `bundleUrl.map`, when there is one; other frames are left as V8 wrote them. */
export function installTypeScriptStacks(bundleUrl: string): void {
  const mapFile = `${fileURLToPath(bundleUrl)}.map`;
  if (!existsSync(mapFile)) return;
  let map: SourceMap | null | undefined;
  const lookup = (): SourceMap | null => {
    if (map === undefined) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')));
      } catch {
        map = null;
      }
    }
    return map;
  };
  const frameText = (f: Frame): string => {
    const text = String(f);
    const line = f.getLineNumber();
    const column = f.getColumnNumber();
    if (f.getFileName() !== bundleUrl || line === null || column === null) return text;
    const entry = lookup()?.findEntry(line - 1, column - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number } | undefined;
    if (!entry?.originalSource || entry.originalLine === undefined || entry.originalColumn === undefined) return text;
    return text.replace(`${bundleUrl}:${line}:${column}`, `${entry.originalSource}:${entry.originalLine + 1}:${entry.originalColumn + 1}`);
  };
  Error.prepareStackTrace = (error: Error, frames: Frame[]) => {
    let head: string;
    try {
      head = String(error);
    } catch {
      head = 'Error';
    }
    return [head, ...frames.map((f) => `    at ${frameText(f)}`)].join('\n');
  };
}
