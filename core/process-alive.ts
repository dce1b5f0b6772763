// Whether the process that named a temp file still runs: crash leftovers (checkpoint saves, pyramid builds, training
// runs) are removed only once their writer is gone.

/** Whether a process with this id runs (EPERM: it does, as another user's). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
