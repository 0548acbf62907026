// Every process a test starts, stopped when its test file ends, and when the worker exits (a failed or
// interrupted suite): each is started in a process group of its own (detached), so that what it starts in
// turn (the watchdog's node, a replica's children) goes with it.
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
  try {
    child.kill('SIGKILL');
  } catch {
    // gone
  }
}

/** Starts tracking a child spawned with `detached: true`; it is forgotten once it has exited. */
export function track<T extends ChildProcess>(child: T): T {
  running.add(child);
  child.once('exit', () => {
    running.delete(child);
    // What it started may outlive it (a watchdog killed before its function): the group goes too.
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // nothing left
      }
    }
  });
  return child;
}

/** Stops every tracked process (and its group) and waits until each has exited. */
export async function stopAll(): Promise<void> {
  const children = [...running];
  const exits = children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => c.once('exit', () => resolve()))));
  for (const c of children) killGroup(c);
  await Promise.all(exits);
}

process.once('exit', () => {
  for (const c of running) killGroup(c);
});
