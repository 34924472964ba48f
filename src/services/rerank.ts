// Rerank (POST /rerank, /v1/rerank) in the Jina/Cohere shape, with search's
// scorer: a causal model has no rank head, so a document's relevance is how much
// it makes the query likelier.
import type { Engine } from "../engine/engine";
import type { RerankRequest } from "../openai/token-schemas";
import { searchScores } from "./legacy";
import type { Exec } from "./openai";

/** The scorer rerank uses with a causal model (no rank head): see the README. */
export const RERANK_SCORER = "query-logprob";

/**
 * Scores each document for the query and returns them best first. The score is
 * the mean log-probability of the query's tokens after the document minus the
 * same after no document (search's score / 100): how much the document makes
 * the query likelier, in nats per token.
 */
export async function rerank(engine: Engine, body: RerankRequest, x: Exec) {
  const texts = body.documents.map((d) => (typeof d === "string" ? d : d.text));
  const usage = { tokens: 0 };
  const scores = await searchScores(engine, texts, body.query, x, "documents", usage);
  const ranked = scores
    .map((s, index) => ({ index, relevance_score: s / 100 }))
    .sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index)
    .slice(0, body.top_n ?? texts.length);
  return {
    object: "list",
    model: engine.info.id,
    scorer: RERANK_SCORER,
    results: ranked.map((r) =>
      body.return_documents === false ? r : { ...r, document: { text: texts[r.index] as string } },
    ),
    usage: { prompt_tokens: usage.tokens, total_tokens: usage.tokens },
  };
}
