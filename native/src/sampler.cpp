// sampler.cpp: llama.cpp's common_sampler behind a C face. It is the sampler
// llama-server uses (grammar checked on the sampled token first, full grammar
// pass only on rejection; lazy grammars with triggers), so llmatic samples the
// same tokens at the same cost.
#include "llmatic.h"
#include "strings.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>
#include <vector>

#if defined(__SSE__) || defined(__x86_64__)
#    include <immintrin.h>
#endif

#include "common.h"
#include "json.h"
#include "sampling.h"

using json = common_json;

struct llmatic_sampler {
    common_sampler * smpl = nullptr;
    // > 0: the chain starts with samplers that change nothing but the logit
    // bias, then top-k; sample() preselects the k candidates itself
    int32_t                       fast_k  = 0;
    int32_t                       n_vocab = 0;
    std::vector<llama_logit_bias> bias;  // what the chain's logit-bias sampler adds, by token
    std::vector<llama_token_data> cand;  // scratch
};

// The chain is logit-bias, penalties, DRY, top-n-sigma, top-k, ... (common_sampler_init).
// With neutral penalties, DRY and top-n-sigma off and no grammar, only the
// logit bias acts before top-k, so the k best tokens after the bias are exactly
// what the full chain keeps. One pass over the logits finds them; the chain then
// runs on those k instead of on the whole vocabulary (which it would first copy,
// 151936 entries for Qwen, and partially sort).
static bool fast_top_k_applies(const common_params_sampling & p) {
    const bool neutral_penalties =
        p.penalty_last_n == 0 || (p.penalty_repeat == 1.0f && p.penalty_freq == 0.0f && p.penalty_present == 0.0f);
    return p.top_k > 0 && p.mirostat == 0 && neutral_penalties && p.dry_multiplier == 0.0f && p.top_n_sigma <= 0.0f &&
           common_grammar_value(p.grammar).empty() && p.reasoning_budget_start.empty();
}

static bool logit_greater(const llama_token_data & a, const llama_token_data & b) {
    return a.logit > b.logit;
}

// the largest of 32 floats (NaN never wins, as in the comparisons that follow)
static inline float block_max(const float * x) {
#if defined(__SSE__) || defined(__x86_64__)
    __m128 m = _mm_loadu_ps(x);
    for (int i = 4; i < 32; i += 4) m = _mm_max_ps(m, _mm_loadu_ps(x + i));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
#else
    float m = x[0];
    for (int i = 1; i < 32; i++) m = x[i] > m ? x[i] : m;
    return m;
#endif
}

static llama_token sample_top_k(llmatic_sampler * s, llama_context * ctx, int32_t idx) {
    const float * logits = llama_get_logits_ith(ctx, idx);
    if (!logits) throw std::runtime_error("no logits for this output");
    const size_t k    = std::min<size_t>(s->fast_k, s->n_vocab);
    // a token pushed below the k best by the bias of others is still among the
    // k + (biased tokens) best raw logits
    const size_t keep = std::min<size_t>(k + s->bias.size(), s->n_vocab);
    auto &       c    = s->cand;
    c.clear();
    // min-heap (front = smallest) of the `keep` largest raw logits; blocks whose
    // maximum cannot enter the heap (nearly all of them) are skipped whole
    for (size_t t = 0; t < keep; t++) c.push_back({ (llama_token) t, logits[t], 0.0f });
    std::make_heap(c.begin(), c.end(), logit_greater);
    float         floor = c.front().logit;
    const int32_t n     = s->n_vocab;
    constexpr int B     = 32;
    for (int32_t t0 = (int32_t) keep; t0 < n; t0 += B) {
        const int32_t end = std::min(n, t0 + B);
        if (end - t0 == B && block_max(logits + t0) <= floor) continue;
        for (int32_t t = t0; t < end; t++) {
            if (!(logits[t] > floor)) continue;  // (NaN never enters)
            std::pop_heap(c.begin(), c.end(), logit_greater);
            c.back() = { t, logits[t], 0.0f };
            std::push_heap(c.begin(), c.end(), logit_greater);
            floor = c.front().logit;
        }
    }
    if (!s->bias.empty()) {
        // biased tokens compete with their biased logits; the chain adds the bias itself
        for (const auto & b : s->bias) c.push_back({ b.token, logits[b.token], 0.0f });
        std::sort(c.begin(), c.end(), [](const llama_token_data & a, const llama_token_data & b) { return a.id < b.id; });
        c.erase(std::unique(c.begin(), c.end(),
                            [](const llama_token_data & a, const llama_token_data & b) { return a.id == b.id; }),
                c.end());
        // both sorted by token: one merge gives each candidate its bias (p: the
        // biased logit, used for ranking only)
        size_t bi = 0;
        for (auto & e : c) {
            e.p = e.logit;
            while (bi < s->bias.size() && s->bias[bi].token < e.id) bi++;
            for (size_t j = bi; j < s->bias.size() && s->bias[j].token == e.id; j++) e.p += s->bias[j].bias;
        }
        std::sort(c.begin(), c.end(), [](const llama_token_data & a, const llama_token_data & b) { return a.p > b.p; });
        if (c.size() > k) c.resize(k);
        for (auto & e : c) e.p = 0.0f;
    } else {
        std::sort(c.begin(), c.end(), logit_greater);
    }
    llama_token_data_array cur = { c.data(), c.size(), -1, false };
    llama_sampler_apply(common_sampler_get(s->smpl), &cur);
    if (cur.selected < 0 || (size_t) cur.selected >= cur.size) throw std::runtime_error("no token selected");
    return cur.data[cur.selected].id;
}

llmatic_sampler * llmatic_sampler_new(const llama_model * model, const char * config_json, char ** error) {
    try {
        const json cfg = json::parse(config_json);
        common_params_sampling p;
        p.no_perf         = true;
        p.seed            = static_cast<uint32_t>(cfg.value("seed", static_cast<int64_t>(LLAMA_DEFAULT_SEED)));
        p.temp            = cfg.value("temp", p.temp);
        p.top_k           = cfg.value("top_k", p.top_k);
        p.top_p           = cfg.value("top_p", p.top_p);
        p.min_p           = cfg.value("min_p", p.min_p);
        p.typ_p           = cfg.value("typ_p", p.typ_p);
        p.penalty_last_n  = cfg.value("penalty_last_n", p.penalty_last_n);
        p.penalty_repeat  = cfg.value("penalty_repeat", p.penalty_repeat);
        p.penalty_freq    = cfg.value("penalty_freq", p.penalty_freq);
        p.penalty_present = cfg.value("penalty_present", p.penalty_present);
        p.dry_multiplier  = cfg.value("dry_multiplier", p.dry_multiplier);
        if (cfg.contains("logit_bias")) {
            for (const auto & e : cfg.at("logit_bias")) {
                p.logit_bias.push_back({ e.at(0).get<int>(), e.at(1).get<float>() });
            }
        }
        const std::string grammar = cfg.value("grammar", std::string());
        if (!grammar.empty()) {
            if (grammar.rfind("%llguidance", 0) == 0) throw std::invalid_argument("llguidance grammars are not supported");
            const std::string type = cfg.value("grammar_type", std::string("user"));
            const common_grammar_type t = type == "tool_calls"    ? COMMON_GRAMMAR_TYPE_TOOL_CALLS
                                        : type == "output_format" ? COMMON_GRAMMAR_TYPE_OUTPUT_FORMAT
                                                                  : COMMON_GRAMMAR_TYPE_USER;
            p.grammar      = common_grammar(t, grammar);
            p.grammar_lazy = cfg.value("grammar_lazy", false);
            if (cfg.contains("grammar_triggers")) {
                for (const auto & t : cfg.at("grammar_triggers")) {
                    common_grammar_trigger trig;
                    trig.type  = static_cast<common_grammar_trigger_type>(t.value("type", 0));
                    trig.value = t.value("value", std::string());
                    trig.token = t.value("token", static_cast<int>(LLAMA_TOKEN_NULL));
                    p.grammar_triggers.push_back(trig);
                }
            }
        }
        p.generation_prompt = cfg.value("generation_prompt", std::string());
        // a thinking budget: after reasoning_budget_tokens inside the template's think block, its end tag is forced
        const int32_t budget = cfg.value("reasoning_budget_tokens", -1);
        const std::string start_tag = cfg.value("reasoning_start_tag", std::string());
        if (budget >= 0 && !start_tag.empty() && cfg.contains("reasoning_end_tags")) {
            const llama_vocab * vocab = llama_model_get_vocab(model);
            p.reasoning_budget_tokens = budget;
            p.reasoning_budget_start  = common_tokenize(vocab, start_tag, false, true);
            for (const auto & t : cfg.at("reasoning_end_tags")) {
                const std::string tag = t.get<std::string>();
                if (!tag.empty()) p.reasoning_budget_end.push_back(common_tokenize(vocab, tag, false, true));
            }
            if (!p.reasoning_budget_end.empty()) {
                llama_tokens forced = p.reasoning_budget_end.front();
                const std::string message = cfg.value("reasoning_budget_message", std::string());
                if (!message.empty()) {
                    const llama_tokens m = common_tokenize(vocab, message, false, true);
                    forced.insert(forced.begin(), m.begin(), m.end());
                }
                p.reasoning_budget_forced = forced;
            }
        }
        common_sampler * smpl = common_sampler_init(model, p);
        if (!smpl) throw std::runtime_error("failed to initialise the sampler (invalid grammar?)");
        auto * s    = new llmatic_sampler();
        s->smpl     = smpl;
        s->n_vocab  = llama_vocab_n_tokens(llama_model_get_vocab(model));
        if (cfg.value("fast_top_k", true) && fast_top_k_applies(p)) {
            s->fast_k = p.top_k;
            std::vector<llama_logit_bias> all = p.logit_bias;
            int32_t                       n_suppress = 0;
            const llama_token * suppress = llama_vocab_get_suppress_tokens(llama_model_get_vocab(model), &n_suppress);
            for (int32_t i = 0; i < n_suppress; i++) all.push_back({ suppress[i], -INFINITY });
            // the chain's logit-bias sampler finds no candidate for an unknown token and skips it
            for (const auto & b : all) {
                if (b.token >= 0 && b.token < s->n_vocab) s->bias.push_back(b);
            }
            std::stable_sort(s->bias.begin(), s->bias.end(),
                             [](const llama_logit_bias & a, const llama_logit_bias & b) { return a.token < b.token; });
        }
        return s;
    } catch (const std::exception & e) {
        if (error) *error = llmatic_dup_string(e.what());
        return nullptr;
    }
}

void llmatic_sampler_free(llmatic_sampler * sampler) {
    if (!sampler) return;
    common_sampler_free(sampler->smpl);
    delete sampler;
}

int32_t llmatic_sampler_sample(llmatic_sampler * sampler, llama_context * ctx, int32_t idx) {
    try {
        const llama_token id = sampler->fast_k > 0 ? sample_top_k(sampler, ctx, idx)
                                                   : common_sampler_sample(sampler->smpl, ctx, idx);
        common_sampler_accept(sampler->smpl, id, true);
        return id;
    } catch (const std::exception &) {
        return LLAMA_TOKEN_NULL;
    }
}

void llmatic_sampler_accept_prompt(llmatic_sampler * sampler, const int32_t * tokens, int32_t n) {
    for (int32_t i = 0; i < n; i++) common_sampler_accept(sampler->smpl, tokens[i], false);
}
