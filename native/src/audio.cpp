// audio.cpp: speech to text through whisper.cpp (compiled into this library
// against llama.cpp's ggml), and audio decoding (wav, mp3, flac through
// miniaudio; ogg vorbis through stb_vorbis) to 16 kHz mono float PCM.
//
// A transcription runs on a native thread of its own: JS starts it, polls for
// the segments decoded so far and cancels it; no JS callback ever runs on that
// thread. Results cross as JSON text.
#include "llmatic.h"
#include "strings.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "json.h"
#include "whisper.h"

#define STB_VORBIS_HEADER_ONLY
#include "stb_vorbis.c"
#define MA_NO_DEVICE_IO
#define MA_NO_THREADING
#define MA_NO_ENCODING
#define MA_NO_GENERATION
#define MA_NO_RESOURCE_MANAGER
#define MA_NO_NODE_GRAPH
#define MINIAUDIO_IMPLEMENTATION
// libmtmd's helpers compile miniaudio too: its one global that is not static gets a name of ours
#define ma_atomic_global_lock llmatic_ma_atomic_global_lock
#include "miniaudio.h"
#undef STB_VORBIS_HEADER_ONLY
#include "stb_vorbis.c"

using json = common_json;

// ---- audio decoding ---------------------------------------------------------

int32_t llmatic_audio_decode(const uint8_t * data, size_t size, float ** out, int64_t * n_samples, char ** error) {
    *out       = nullptr;
    *n_samples = 0;
    ma_decoder_config config = ma_decoder_config_init(ma_format_f32, 1, WHISPER_SAMPLE_RATE);
    ma_decoder        decoder;
    ma_result         r = ma_decoder_init_memory(data, size, &config, &decoder);
    if (r != MA_SUCCESS) {
        if (error) *error = llmatic_dup_string("not audio llmatic can decode (wav, mp3, flac, ogg vorbis)");
        return -1;
    }
    ma_uint64 frames = 0;
    r                = ma_decoder_get_length_in_pcm_frames(&decoder, &frames);
    std::vector<float> pcm;
    if (r == MA_SUCCESS && frames > 0) {
        pcm.resize(frames);
        ma_uint64 got = 0;
        r             = ma_decoder_read_pcm_frames(&decoder, pcm.data(), frames, &got);
        pcm.resize(got);
    } else {
        // length unknown (some streams): read in chunks
        float     buf[4096];
        ma_uint64 got = 0;
        while (ma_decoder_read_pcm_frames(&decoder, buf, 4096, &got) == MA_SUCCESS && got > 0) {
            pcm.insert(pcm.end(), buf, buf + got);
        }
        r = MA_SUCCESS;
    }
    ma_decoder_uninit(&decoder);
    if (r != MA_SUCCESS && r != MA_AT_END) {
        if (error) *error = llmatic_dup_string(std::string("the audio could not be decoded: ") + ma_result_description(r));
        return -2;
    }
    if (pcm.empty()) {
        if (error) *error = llmatic_dup_string("the audio holds no samples");
        return -3;
    }
    *out = (float *) malloc(pcm.size() * sizeof(float));
    if (!*out) {
        if (error) *error = llmatic_dup_string("out of memory decoding the audio");
        return -4;
    }
    memcpy(*out, pcm.data(), pcm.size() * sizeof(float));
    *n_samples = (int64_t) pcm.size();
    return 0;
}

void llmatic_audio_free(float * pcm) { free(pcm); }

// ---- whisper models ---------------------------------------------------------

whisper_context * llmatic_whisper_load(const char * path, char ** error) {
    whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu                = false;  // flash attention stays whisper.cpp's default (on), as whisper-cli runs it
    whisper_context * ctx     = whisper_init_from_file_with_params(path, cp);
    if (!ctx && error) *error = llmatic_dup_string(std::string("whisper.cpp could not load ") + path);
    return ctx;
}

void llmatic_whisper_free(whisper_context * ctx) {
    if (ctx) whisper_free(ctx);
}

char * llmatic_whisper_info(whisper_context * ctx) {
    json j = json::object();
    j["multilingual"]  = whisper_is_multilingual(ctx) != 0;
    j["n_vocab"]       = whisper_model_n_vocab(ctx);
    j["n_audio_ctx"]   = whisper_model_n_audio_ctx(ctx);
    j["n_audio_state"] = whisper_model_n_audio_state(ctx);
    j["n_audio_layer"] = whisper_model_n_audio_layer(ctx);
    j["n_text_ctx"]    = whisper_model_n_text_ctx(ctx);
    j["n_text_layer"]  = whisper_model_n_text_layer(ctx);
    j["n_mels"]        = whisper_model_n_mels(ctx);
    j["type"]          = std::string(whisper_model_type_readable(ctx));
    return llmatic_dup_string(j.dump_safe());
}

// ---- transcription jobs -----------------------------------------------------

struct llmatic_transcription {
    whisper_context *  ctx;
    std::vector<float> pcm;
    std::string        language;
    std::string        prompt;
    bool               translate        = false;
    bool               token_timestamps = false;
    float              temperature      = 0.0f;
    float              temperature_inc  = -1.0f;  // < 0: whisper.cpp's default
    int                n_threads        = 1;
    std::atomic<bool>  cancel{ false };
    std::atomic<int>   state{ 0 };  // 0 running, 1 done, 2 failed, 3 cancelled
    std::mutex              mu;
    std::condition_variable changed;  // a segment came, or the job ended
    json               pending = json::array();  // segments not yet polled
    std::string        detected;
    std::string        error;
    std::thread        worker;
};

static json segment_json(whisper_context * ctx, int i, bool token_timestamps) {
    json s        = json::object();
    s["t0"]       = whisper_full_get_segment_t0(ctx, i);
    s["t1"]       = whisper_full_get_segment_t1(ctx, i);
    s["text"]     = std::string(whisper_full_get_segment_text(ctx, i));
    s["no_speech_prob"] = whisper_full_get_segment_no_speech_prob(ctx, i);
    const whisper_token eot = whisper_token_eot(ctx);
    json tokens   = json::array();
    double sum_lp = 0;
    int    n_lp   = 0;
    for (int k = 0; k < whisper_full_n_tokens(ctx, i); ++k) {
        const whisper_token_data d = whisper_full_get_token_data(ctx, i, k);
        if (d.id >= eot) continue;  // special and timestamp tokens
        json t    = json::object();
        t["id"]   = d.id;
        t["text"] = std::string(whisper_full_get_token_text(ctx, i, k));
        t["p"]    = d.p;
        if (token_timestamps) {
            t["t0"] = d.t0;
            t["t1"] = d.t1;
        }
        sum_lp += d.plog;
        n_lp++;
        tokens.push_back(t);
    }
    s["tokens"]      = tokens;
    s["avg_logprob"] = n_lp ? sum_lp / n_lp : 0.0;
    return s;
}

static void on_segments(whisper_context * ctx, whisper_state *, int n_new, void * user) {
    auto *    job = (llmatic_transcription *) user;
    const int n   = whisper_full_n_segments(ctx);
    std::lock_guard<std::mutex> lock(job->mu);
    for (int i = n - n_new; i < n; ++i) job->pending.push_back(segment_json(ctx, i, job->token_timestamps));
    job->changed.notify_all();
}

static bool should_abort(void * user) { return ((llmatic_transcription *) user)->cancel.load(); }

static void run_job(llmatic_transcription * job) {
    try {
        whisper_full_params p              = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
        p.n_threads                        = job->n_threads;
        p.translate                        = job->translate;
        p.language                         = job->language.empty() ? "auto" : job->language.c_str();
        p.detect_language                  = false;
        p.initial_prompt                   = job->prompt.empty() ? nullptr : job->prompt.c_str();
        p.temperature                      = job->temperature;
        if (job->temperature_inc >= 0) p.temperature_inc = job->temperature_inc;
        p.token_timestamps                 = job->token_timestamps;
        p.print_progress                   = false;
        p.print_realtime                   = false;
        p.print_timestamps                 = false;
        p.print_special                    = false;
        p.new_segment_callback             = on_segments;
        p.new_segment_callback_user_data   = job;
        p.abort_callback                   = should_abort;
        p.abort_callback_user_data         = job;
        const int rc = whisper_full(job->ctx, p, job->pcm.data(), (int) job->pcm.size());
        {
            std::lock_guard<std::mutex> lock(job->mu);
            const int lang = whisper_full_lang_id(job->ctx);
            job->detected  = lang >= 0 ? whisper_lang_str(lang) : (job->language.empty() ? "" : job->language);
            if (rc != 0 && !job->cancel.load()) job->error = "whisper_full failed with status " + std::to_string(rc);
        }
        std::lock_guard<std::mutex> lock(job->mu);
        job->state = job->cancel.load() ? 3 : rc == 0 ? 1 : 2;
    } catch (const std::exception & e) {
        std::lock_guard<std::mutex> lock(job->mu);
        job->error = e.what();
        job->state = 2;
    }
    job->changed.notify_all();
}

llmatic_transcription * llmatic_transcribe_start(whisper_context * ctx, const float * pcm, int64_t n,
                                                 const char * options_json, char ** error) {
    try {
        const json o = json::parse(options_json ? options_json : "{}");
        auto *   job = new llmatic_transcription();
        job->ctx     = ctx;
        job->pcm.assign(pcm, pcm + n);
        job->language         = o.value("language", std::string());
        job->prompt           = o.value("prompt", std::string());
        job->translate        = o.value("translate", false);
        job->token_timestamps = o.value("token_timestamps", false);
        job->temperature      = o.value("temperature", 0.0f);
        job->temperature_inc  = o.value("temperature_inc", -1.0f);
        job->n_threads        = std::max(1, o.value("n_threads", 1));
        if (!job->language.empty() && job->language != "auto" && whisper_lang_id(job->language.c_str()) < 0) {
            if (error) *error = llmatic_dup_string("unknown language '" + job->language + "'");
            delete job;
            return nullptr;
        }
        job->worker = std::thread(run_job, job);
        return job;
    } catch (const std::exception & e) {
        if (error) *error = llmatic_dup_string(e.what());
        return nullptr;
    }
}

char * llmatic_transcribe_poll(llmatic_transcription * job) {
    const int state = job->state.load();
    json      j     = json::object();
    std::lock_guard<std::mutex> lock(job->mu);
    j["state"]    = state == 0 ? "running" : state == 1 ? "done" : state == 2 ? "failed" : "cancelled";
    j["segments"] = job->pending;
    job->pending  = json::array();
    if (state != 0) {
        j["language"] = job->detected;
        if (!job->error.empty()) j["error"] = job->error;
    }
    return llmatic_dup_string(j.dump_safe());
}

int32_t llmatic_transcribe_wait(llmatic_transcription * job, int32_t timeout_ms) {
    std::unique_lock<std::mutex> lock(job->mu);
    job->changed.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                          [job] { return job->state.load() != 0 || !job->pending.empty(); });
    return job->state.load();
}

void llmatic_transcribe_cancel(llmatic_transcription * job) { job->cancel = true; }

void llmatic_transcribe_free(llmatic_transcription * job) {
    if (!job) return;
    job->cancel = true;
    if (job->worker.joinable()) job->worker.join();
    delete job;
}
