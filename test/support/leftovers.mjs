// What a test run leaves behind: processes whose working directory, command line or environment is inside the
// run's directory (every temporary directory of the run is made there: global setup points TMPDIR at it).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Processes (other than this one) that belong to the run under `runDir`: pid and what they are. */
export function leftovers(runDir) {
  const found = [];
  let pids = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  } catch {
    return found; // no /proc (not Linux): nothing can be checked
  }
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (cwd.startsWith(runDir) || cmdline.includes(runDir) || environ.includes(runDir)) found.push({ pid, cwd, cmdline });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}
