// sampler.cpp: llama.cpp's common_sampler behind a C face. It is the sampler
// llama-server uses (grammar checked on the sampled token first, full grammar
// pass only on rejection; lazy grammars with triggers), so llmatic samples the
// same tokens at the same cost.
#include "llmatic.h"
#include "strings.hpp"

#include <exception>
#include <string>

#include "common.h"
#include "json.h"
#include "sampling.h"

using json = common_json;

struct llmatic_sampler {
    common_sampler * smpl = nullptr;
};

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
        common_sampler * smpl = common_sampler_init(model, p);
        if (!smpl) throw std::runtime_error("failed to initialise the sampler (invalid grammar?)");
        auto * s = new llmatic_sampler();
        s->smpl  = smpl;
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
        const llama_token id = common_sampler_sample(sampler->smpl, ctx, idx);
        common_sampler_accept(sampler->smpl, id, true);
        return id;
    } catch (const std::exception &) {
        return LLAMA_TOKEN_NULL;
    }
}

void llmatic_sampler_accept_prompt(llmatic_sampler * sampler, const int32_t * tokens, int32_t n) {
    for (int32_t i = 0; i < n; i++) common_sampler_accept(sampler->smpl, tokens[i], false);
}
