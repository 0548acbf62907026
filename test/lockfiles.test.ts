// Every lockfile carries the native bindings a clone needs on a Mac, on arm64 and x64 Linux (glibc and musl,
// the latter for node:alpine images) and on Windows, so that `npm ci && npm test` works there too.
import { readFileSync } from 'node:fs';

const LOCKFILES = ['package-lock.json', 'falco-pod-delete/package-lock.json', 'template/node18-ts-middleware/package-lock.json', 'template/node18-ts-middleware/function/package-lock.json'];
const PLATFORMS = [
  { os: 'darwin', cpu: 'arm64' },
  { os: 'darwin', cpu: 'x64' },
  { os: 'linux', cpu: 'x64', libc: 'glibc' },
  { os: 'linux', cpu: 'x64', libc: 'musl' },
  { os: 'linux', cpu: 'arm64', libc: 'glibc' },
  { os: 'linux', cpu: 'arm64', libc: 'musl' },
  { os: 'win32', cpu: 'x64' },
];
interface Entry { version?: string; os?: string[]; cpu?: string[]; libc?: string[]; optionalDependencies?: Record<string, string> }

/** Packages whose optional dependencies are platform binaries (esbuild, @swc/core, unrs-resolver, ...). */
function nativeFamilies(lock: { packages: Record<string, Entry> }) {
  const byName = new Map(Object.entries(lock.packages).map(([k, v]) => [k.replace(/^.*node_modules\//, ''), v]));
  const families: Array<{ name: string; bindings: Entry[] }> = [];
  for (const [name, entry] of byName) {
    const bindings = Object.keys(entry.optionalDependencies ?? {}).map((n) => byName.get(n)).filter((b): b is Entry => b !== undefined && (b.os !== undefined || b.cpu !== undefined));
    if (bindings.length > 0) families.push({ name, bindings });
  }
  return families;
}

describe.each(LOCKFILES)('%s', (file) => {
  const lock = JSON.parse(readFileSync(file, 'utf8')) as { packages: Record<string, Entry> };
  const families = nativeFamilies(lock).filter((f) => ['esbuild', '@swc/core', 'unrs-resolver'].includes(f.name));

  it.each(PLATFORMS.map((p) => [`${p.os}-${p.cpu}${p.libc ? `-${p.libc}` : ''}`, p] as const))('has a binding for %s in every native package it locks', (_label, p) => {
    for (const f of families) {
      const fits = f.bindings.some((b) => (b.os ?? [p.os]).includes(p.os) && (b.cpu ?? [p.cpu]).includes(p.cpu) && (!p.libc || !b.libc || b.libc.includes(p.libc)));
      expect([f.name, fits]).toEqual([f.name, true]);
    }
  });

  it('records what a plain npm install writes: every optional dependency it names is locked', () => {
    const names = new Set(Object.keys(lock.packages).map((k) => k.replace(/^.*node_modules\//, '')));
    const missing = Object.values(lock.packages).flatMap((e) => Object.keys(e.optionalDependencies ?? {}).filter((n) => !names.has(n)));
    expect(missing).toEqual([]);
  });
});

it('the root and the function lock jest\'s native packages at all (the check above has something to check)', () => {
  for (const file of LOCKFILES.slice(0, 2)) {
    const lock = JSON.parse(readFileSync(file, 'utf8')) as { packages: Record<string, Entry> };
    expect(nativeFamilies(lock).map((f) => f.name)).toEqual(expect.arrayContaining(['@swc/core', 'unrs-resolver']));
  }
});
