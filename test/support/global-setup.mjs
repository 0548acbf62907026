// One real control plane per test run, when KUBEBUILDER_ASSETS is set; its connection facts go to the test
// workers through FPD_CLUSTER (a JSON file). FPD_REQUIRE_REAL=1 (CI) makes missing assets or a missing
// faas-cli/fwatchdog an error instead of a skip.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SKIP_HINT, assetsDir, startControlPlane } from './control-plane.mjs';

export default async function globalSetup() {
  const assets = assetsDir();
  const required = process.env.FPD_REQUIRE_REAL === '1';
  if (required) {
    const tools = [process.env.OPENFAAS_TOOLS, assets].some((d) => d && existsSync(join(d, 'faas-cli')) && existsSync(join(d, 'fwatchdog')));
    if (!tools) throw new Error('FPD_REQUIRE_REAL=1 but no faas-cli and fwatchdog in OPENFAAS_TOOLS or KUBEBUILDER_ASSETS');
  }
  if (!assets) {
    if (required) throw new Error(`FPD_REQUIRE_REAL=1 but ${SKIP_HINT}`);
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
