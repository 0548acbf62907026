// The run ends with nothing left: the control plane stopped, no process of the run still alive (one that is
// fails the run, after it is killed), and the run's directory, with every temporary directory in it, removed.
import { rmSync } from 'node:fs';
import { leftovers } from './leftovers.mjs';

export default async function globalTeardown() {
  await globalThis.__fpdStopControlPlane?.();
  const runDir = process.env.FPD_RUN_DIR;
  if (!runDir) return;
  let left = leftovers(runDir);
  // A process killed a moment ago may still be exiting.
  for (let i = 0; i < 20 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = leftovers(runDir);
  }
  for (const p of left) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  rmSync(runDir, { recursive: true, force: true });
  if (left.length > 0) {
    throw new Error(`the test run left ${left.length} process(es) running (now killed):\n${left.map((p) => `  pid ${p.pid} in ${p.cwd}: ${p.cmdline.slice(0, 200)}`).join('\n')}`);
  }
}
