// One real control plane per test run, when KUBEBUILDER_ASSETS is set; its connection facts go to the test
// workers through FPD_CLUSTER (a JSON file). FPD_REQUIRE_REAL=1 (CI) makes missing assets or a missing
// faas-cli/fwatchdog an error instead of a skip. Every temporary directory of the run is made under one run
// directory (TMPDIR, which the workers inherit), so that global teardown can remove it and find what was left.
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SKIP_HINT, assetsDir, startControlPlane } from './control-plane.mjs';

export default async function globalSetup() {
  const runDir = mkdtempSync(join(tmpdir(), 'fpd-run-'));
  chmodSync(runDir, 0o1777); // as /tmp is: the suite that runs the bundle as an unprivileged user makes its directories here

  process.env.FPD_RUN_DIR = runDir;
  process.env.TMPDIR = runDir;
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
