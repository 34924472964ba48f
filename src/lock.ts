// A cross-process lock as a directory (mkdir is atomic): held by a pid, taken
// over when that process is gone. Used by the native build and by downloads.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

function holderAlive(lock: string): boolean {
  const pidFile = join(lock, "pid");
  const pid = Number(existsSync(pidFile) ? readFileSync(pidFile, "utf8") : 0);
  if (!pid) return false;
  try {
    return process.kill(pid, 0);
  } catch {
    return false;
  }
}

/** Runs `fn` holding `lock`; `onWait` is called now and then while another process holds it. */
export async function withDirLock<T>(lock: string, fn: () => Promise<T>, onWait?: () => void): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch {
      // a lock whose holder died (or never wrote its pid) is stale after a moment
      if (i > 1 && !holderAlive(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (i % 30 === 0) onWait?.();
      await Bun.sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
