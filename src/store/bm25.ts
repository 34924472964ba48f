// A keyword index (Okapi BM25 over lowercased word unigrams and bigrams), built
// when a search/answers/classifications file is uploaded and stored beside it:
// the prefilter before the model reranks, as OpenAI's engine used Elasticsearch.

const K1 = 1.2;
const B = 0.75;

/** Lowercased words (letters and digits of any script) and the bigrams of neighbours. */
export function terms(text: string): string[] {
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const out = [...words];
  for (let i = 1; i < words.length; i++) out.push(`${words[i - 1]} ${words[i]}`);
  return out;
}

export interface Bm25JSON {
  lengths: number[];
  /** [term, [[document, term frequency], ...]] */
  postings: [string, [number, number][]][];
}

export class Bm25Index {
  private constructor(
    private readonly lengths: number[],
    private readonly postings: Map<string, [number, number][]>,
  ) {}

  get size(): number {
    return this.lengths.length;
  }

  static build(docs: { text: string }[]): Bm25Index {
    const lengths: number[] = [];
    const postings = new Map<string, [number, number][]>();
    docs.forEach((d, i) => {
      const ts = terms(d.text);
      lengths.push(ts.length);
      const tf = new Map<string, number>();
      for (const t of ts) tf.set(t, (tf.get(t) ?? 0) + 1);
      for (const [t, n] of tf) {
        let list = postings.get(t);
        if (!list) {
          list = [];
          postings.set(t, list);
        }
        list.push([i, n]);
      }
    });
    return new Bm25Index(lengths, postings);
  }

  static fromJSON(j: Bm25JSON): Bm25Index {
    return new Bm25Index(j.lengths, new Map(j.postings));
  }

  toJSON(): Bm25JSON {
    return { lengths: this.lengths, postings: [...this.postings] };
  }

  /** Documents that share a term with the query, best first: [document, score]; at most `k`. */
  search(query: string, k: number): [number, number][] {
    const n = this.lengths.length;
    const avg = this.lengths.reduce((a, b) => a + b, 0) / Math.max(1, n);
    const scores = new Map<number, number>();
    for (const t of new Set(terms(query))) {
      const list = this.postings.get(t);
      if (!list) continue;
      const idf = Math.log(1 + (n - list.length + 0.5) / (list.length + 0.5));
      for (const [d, tf] of list) {
        const len = this.lengths[d] as number;
        const s = (idf * tf * (K1 + 1)) / (tf + K1 * (1 - B + (B * len) / Math.max(1, avg)));
        scores.set(d, (scores.get(d) ?? 0) + s);
      }
    }
    return [...scores].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, k);
  }
}
