// Rerank (POST /rerank, /v1/rerank) in the Jina/Cohere shape. A reranker GGUF
// (rank pooling: a classification head, as llama.cpp converts Qwen3-Reranker or
// bge-reranker) scores each query/document pair with its head. A causal model
// has no head: then a document's relevance is how much it makes the query
// likelier (search's scorer). The reply's `scorer` says which was used.
import type { Engine } from "../engine/engine";
import type { RerankRequest } from "../openai/token-schemas";
import { searchScores } from "./legacy";
import type { Exec } from "./openai";

/** The scorer of a model with a rank head: its first label's score (p("yes") for Qwen3-Reranker). */
export const RANK_HEAD_SCORER = "rank-head";
/** The scorer rerank uses with a causal model (no rank head): see the README. */
export const RERANK_SCORER = "query-logprob";

/**
 * Scores each document for the query and returns them best first. With a rank
 * head the score is the head's; otherwise it is the mean log-probability of the
 * query's tokens after the document minus the same after no document (search's
 * score / 100): how much the document makes the query likelier, in nats per token.
 */
export async function rerank(engine: Engine, body: RerankRequest, x: Exec) {
  const texts = body.documents.map((d) => (typeof d === "string" ? d : d.text));
  let scores: number[];
  let tokens: number;
  if (engine.info.rankHead) {
    const r = await engine.rank(body.query, texts, x.signal);
    scores = r.scores;
    tokens = r.promptTokens;
  } else {
    const usage = { tokens: 0 };
    scores = (await searchScores(engine, texts, body.query, x, "documents", usage)).map((s) => s / 100);
    tokens = usage.tokens;
  }
  const ranked = scores
    .map((relevance_score, index) => ({ index, relevance_score }))
    .sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index)
    .slice(0, body.top_n ?? texts.length);
  return {
    object: "list",
    model: engine.info.id,
    scorer: engine.info.rankHead ? RANK_HEAD_SCORER : RERANK_SCORER,
    results: ranked.map((r) =>
      body.return_documents === false ? r : { ...r, document: { text: texts[r.index] as string } },
    ),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
