// The fine-tune training thread as an entry point of the compiled executable:
// the runner asks for "./train-worker.ts" next to it, which in the executable is this file.
import "./finetune/train-worker";
