// chat.cpp: a C face over llama.cpp's C++ common library: jinja chat templates,
// tool-call parsing and JSON-schema -> GBNF. Data crosses as JSON text so the
// FFI surface stays a handful of pointer-taking functions.
#include "llmatic.h"
#include "strings.hpp"

#include <algorithm>
#include <exception>
#include <string>

#include "chat.h"
#include "json-schema-to-grammar.h"
#include "json.h"

using json = common_json;

static char * error_json(const char * message) {
    json j = json::object();
    j["error"] = std::string(message);
    return llmatic_dup_string(j.dump_safe());
}

struct llmatic_chat {
    common_chat_templates_ptr tmpls;
};

struct llmatic_chat_parser {
    common_chat_parser_params params;
};

llmatic_chat * llmatic_chat_new(const llama_model * model, const char * override_template, char ** error) {
    try {
        auto * chat  = new llmatic_chat();
        chat->tmpls = common_chat_templates_init(model, override_template ? override_template : "");
        return chat;
    } catch (const std::exception & e) {
        if (error) *error = llmatic_dup_string(e.what());
        return nullptr;
    }
}

void llmatic_chat_free(llmatic_chat * chat) { delete chat; }

char * llmatic_chat_apply(llmatic_chat * chat, const char * request_json) {
    try {
        const json body = json::parse(request_json);

        common_chat_templates_inputs inputs;
        inputs.messages = common_chat_msgs_parse_oaicompat(body.at("messages"));
        if (body.contains("tools") && body.at("tools").is_array()) {
            inputs.tools = common_chat_tools_parse_oaicompat(body.at("tools"));
        }
        inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(body.value("tool_choice", std::string("auto")));
        inputs.parallel_tool_calls = body.value("parallel_tool_calls", false);
        if (body.contains("json_schema") && !body.at("json_schema").is_null()) {
            inputs.json_schema = body.at("json_schema").dump();
        }
        inputs.grammar               = body.value("grammar", std::string());
        inputs.add_generation_prompt = body.value("add_generation_prompt", true);
        inputs.use_jinja             = true;
        inputs.enable_thinking       = body.value("enable_thinking", true);
        // deepseek: the parser the template gets moves its think block into reasoning_content
        inputs.reasoning_format = common_reasoning_format_from_name(body.value("reasoning_format", std::string("none")));
        if (body.contains("chat_template_kwargs") && body.at("chat_template_kwargs").is_object()) {
            for (const auto & [key, val] : body.at("chat_template_kwargs").items()) {
                inputs.chat_template_kwargs[key] = val.dump();
            }
        }

        const common_chat_params params = common_chat_templates_apply(chat->tmpls.get(), inputs);
        if (params.grammar.size() > LLMATIC_MAX_GRAMMAR_BYTES) {
            return error_json(("the output grammar would be " + std::to_string(params.grammar.size()) +
                               " bytes, more than the " + std::to_string(LLMATIC_MAX_GRAMMAR_BYTES) +
                               " this server builds: simplify the schema or the tools")
                                  .c_str());
        }

        json out = json::object();
        out["prompt"]            = params.prompt;
        out["format"]            = static_cast<int>(params.format);
        out["grammar"]           = params.grammar;
        out["grammar_lazy"]      = params.grammar_lazy;
        out["generation_prompt"] = params.generation_prompt;
        out["parser"]            = params.parser;
        out["supports_thinking"] = params.supports_thinking;
        out["thinking_start_tag"] = params.thinking_start_tag;
        json end_tags            = json::array();
        for (const auto & t : params.thinking_end_tags) end_tags.push_back(t);
        out["thinking_end_tags"] = end_tags;
        json triggers            = json::array();
        for (const auto & t : params.grammar_triggers) {
            json jt     = json::object();
            jt["type"]  = static_cast<int>(t.type);
            jt["value"] = t.value;
            jt["token"] = static_cast<int>(t.token);
            triggers.push_back(jt);
        }
        out["grammar_triggers"] = triggers;
        json preserved          = json::array();
        for (const auto & s : params.preserved_tokens) preserved.push_back(s);
        out["preserved_tokens"] = preserved;
        json stops              = json::array();
        for (const auto & s : params.additional_stops) stops.push_back(s);
        out["additional_stops"] = stops;
        return llmatic_dup_string(out.dump_safe());
    } catch (const std::exception & e) {
        return error_json(e.what());
    }
}

llmatic_chat_parser * llmatic_chat_parser_new(const char * config_json, char ** error) {
    try {
        const json cfg  = json::parse(config_json);
        auto *     p    = new llmatic_chat_parser();
        p->params.format            = static_cast<common_chat_format>(cfg.value("format", 0));
        p->params.generation_prompt = cfg.value("generation_prompt", std::string());
        p->params.parse_tool_calls  = cfg.value("parse_tool_calls", true);
        p->params.reasoning_format  = common_reasoning_format_from_name(cfg.value("reasoning_format", std::string("none")));
        const std::string parser    = cfg.value("parser", std::string());
        if (!parser.empty()) p->params.parser.load(parser);
        return p;
    } catch (const std::exception & e) {
        if (error) *error = llmatic_dup_string(e.what());
        return nullptr;
    }
}

void llmatic_chat_parser_free(llmatic_chat_parser * parser) { delete parser; }

char * llmatic_chat_parser_parse(llmatic_chat_parser * parser, const char * text, bool is_partial) {
    try {
        const common_chat_msg msg = common_chat_parse(text, is_partial, parser->params);
        json out = json::object();
        out["role"]              = std::string("assistant");
        out["content"]           = msg.content;
        out["reasoning_content"] = msg.reasoning_content;
        json calls               = json::array();
        for (const auto & tc : msg.tool_calls) {
            json c         = json::object();
            c["name"]      = tc.name;
            c["arguments"] = tc.arguments;
            c["id"]        = tc.id;
            calls.push_back(c);
        }
        out["tool_calls"] = calls;
        return llmatic_dup_string(out.dump_safe());
    } catch (const std::exception & e) {
        return error_json(e.what());
    }
}

char * llmatic_json_schema_to_grammar(const char * schema_json) {
    try {
        const json  schema  = json::parse(schema_json);
        json        out     = json::object();
        out["grammar"]      = json_schema_to_grammar(schema);
        if (out["grammar"].get<std::string>().size() > LLMATIC_MAX_GRAMMAR_BYTES) {
            return error_json("the grammar for this schema is too large");
        }
        return llmatic_dup_string(out.dump_safe());
    } catch (const std::exception & e) {
        return error_json(e.what());
    }
}

char * llmatic_vocab_info(const llama_vocab * vocab) {
    try {
        json       out     = json::object();
        json       control = json::array();
        int32_t    max_len = 1;
        const int  n       = llama_vocab_n_tokens(vocab);
        char       buf[512];
        for (llama_token id = 0; id < n; id++) {
            const int attr = llama_vocab_get_attr(vocab, id);
            if (attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN)) {
                const char * text = llama_vocab_get_text(vocab, id);
                if (text && text[0]) control.push_back(std::string(text));
            }
            const int32_t len = llama_token_to_piece(vocab, id, buf, sizeof(buf), 0, true);
            max_len           = std::max(max_len, len < 0 ? -len : len);
        }
        out["control"]   = control;
        out["max_piece"] = max_len;
        return llmatic_dup_string(out.dump_safe());
    } catch (const std::exception & e) {
        return error_json(e.what());
    }
}
