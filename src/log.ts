// A minimal leveled logger on stderr. LLMATIC_LOG_LEVEL = error | warn | info | debug.
const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;
export type Level = keyof typeof LEVELS;

const threshold: number = LEVELS[(process.env.LLMATIC_LOG_LEVEL as Level) ?? "info"] ?? LEVELS.info;

function write(level: Level, msg: string): void {
  if (LEVELS[level] > threshold) return;
  process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`);
}

export const log = {
  error: (msg: string) => write("error", msg),
  warn: (msg: string) => write("warn", msg),
  info: (msg: string) => write("info", msg),
  debug: (msg: string) => write("debug", msg),
};
