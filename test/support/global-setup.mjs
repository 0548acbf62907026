// One real control plane per test run, when KUBEBUILDER_ASSETS is set; its connection facts go to the test
// workers through FPD_CLUSTER (a JSON file). FPD_REQUIRE_CLUSTER=1 (CI) makes missing assets an error.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SKIP_HINT, assetsDir, startControlPlane } from './control-plane.mjs';

export default async function globalSetup() {
  const assets = assetsDir();
  if (!assets) {
    if (process.env.FPD_REQUIRE_CLUSTER === '1') throw new Error(`FPD_REQUIRE_CLUSTER=1 but ${SKIP_HINT}`);
    process.stderr.write(`${SKIP_HINT}\n`);
    return;
  }
  const { state, stop } = await startControlPlane({ assets });
  // Torn down by globalTeardown, and also when jest itself is interrupted.
  globalThis.__fpdStopControlPlane = stop;
  const kill = () => state.pids.forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  process.once('exit', kill);
  const file = join(state.dir, 'cluster.json');
  writeFileSync(file, JSON.stringify(state));
  process.env.FPD_CLUSTER = file;
}
