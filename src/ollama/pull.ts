// A pull's progress as Ollama's clients read it: "pulling manifest", then
// "pulling <digest>" lines with total and completed bytes, "verifying sha256
// digest", "writing manifest", "success"; a failure is an {error} line.
import type { PullProgress } from "../services/library";

export function pullLines(p: PullProgress, first: boolean): object[] {
  const out: object[] = first ? [{ status: "pulling manifest" }] : [];
  if (p.status === "failed") return [...out, { error: p.error ?? "the pull failed" }];
  if ((p.status === "pulling" || p.status === "verifying") && p.file) {
    out.push({ status: `pulling ${p.file}`, digest: p.file, total: p.total ?? 0, completed: p.completed });
  }
  if (p.status === "verifying") out.push({ status: "verifying sha256 digest" });
  else if (p.status === "success") out.push({ status: "writing manifest" }, { status: "success" });
  return out;
}
