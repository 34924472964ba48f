// Bounds on what one request may ask for, checked before any work is done (the
// schemas in schemas.ts and the conversions in convert.ts use them). OpenAI's
// own limits where it has them; generous where it has none. The body size
// (--max-body-mb) and the slot's context bound everything else.
export const LIMITS = {
  /** chat messages per request */
  messages: 4096,
  /** content parts per message */
  contentParts: 1024,
  /** tools (or legacy functions) per request: OpenAI's limit */
  tools: 128,
  /** stop sequences: the spec's limit */
  stop: 4,
  /** characters per stop sequence */
  stopLength: 1024,
  /** logit_bias entries */
  logitBias: 1024,
  /** prompts in one completions request (each is queued like a request) */
  prompts: 128,
  /** embedding inputs per request: OpenAI's limit */
  embeddingInputs: 2048,
  /** tokens in one token-array prompt or input */
  promptTokens: 1 << 20,
  /** top_k: more than any vocabulary */
  topK: 1 << 20,
} as const;
