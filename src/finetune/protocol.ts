// Messages between the server (services/finetunes.ts) and a fine-tune runner
// process (finetune/child.ts), JSON over Bun's IPC channel.

export interface Hyperparams {
  n_epochs: number;
  /** examples per optimizer step (packed into one window) */
  batch_size: number;
  /** the learning rate actually used: base rate x learning_rate_multiplier */
  learning_rate: number;
  learning_rate_multiplier: number;
  prompt_loss_weight: number;
  compute_classification_metrics: boolean;
  classification_n_classes: number | null;
  classification_positive_class: string | null;
  classification_betas: number[] | null;
}

export interface FineTuneSpec {
  id: string;
  baseModelPath: string;
  /** a directory for the job's working files (removed afterwards) */
  workDir: string;
  trainingFile: string;
  validationFile: string | null;
  outputPath: string;
  hyperparams: Hyperparams;
  threads: number;
  seed: number;
  /** the longest example (tokens) a job may have */
  maxWindow: number;
  libPath?: string;
}

export type RunnerReport =
  | { type: "event"; level: "info" | "warn"; message: string }
  /** one row of compiled_results.csv */
  | { type: "row"; row: Record<string, number> }
  | { type: "done"; modelPath: string; steps: number; seconds: number }
  | { type: "cancelled" }
  | { type: "failed"; message: string };

export type ToRunner = { type: "start"; spec: FineTuneSpec } | { type: "cancel" };
