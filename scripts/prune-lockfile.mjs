// The npm registry reachable here serves only some platforms' optional binaries (@swc/core-*, unrs-resolver
// bindings): `npm install` leaves the others out of package-lock.json, and `npm ci` then refuses the lock as
// out of sync. This drops optionalDependencies entries that have no package in the lock, so `npm ci` works.
// Run after changing dependencies: node scripts/prune-lockfile.mjs [dir ...]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dirs = process.argv.slice(2);
for (const dir of dirs.length ? dirs : ['.', 'falco-pod-delete', 'template/node18-ts-middleware', 'template/node18-ts-middleware/function']) {
  const file = join(dir, 'package-lock.json');
  const lock = JSON.parse(readFileSync(file, 'utf8'));
  const present = new Set(Object.keys(lock.packages).map((k) => k.replace(/^.*node_modules\//, '')));
  let dropped = 0;
  for (const pkg of Object.values(lock.packages)) {
    if (!pkg.optionalDependencies) continue;
    for (const name of Object.keys(pkg.optionalDependencies)) {
      if (!present.has(name)) {
        delete pkg.optionalDependencies[name];
        dropped++;
      }
    }
  }
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`${file}: dropped ${dropped} optional dependencies the registry does not serve`);
}
