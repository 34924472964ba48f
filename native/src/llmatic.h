// llmatic.h: the C surface that bun:ffi calls.
//
// bun:ffi cannot pass or return structs by value, and llama.h does (model and
// context params, llama_batch). Every function here takes and returns only
// scalars and pointers. The TypeScript symbol table in src/ffi/symbols.ts
// mirrors this header line for line; llama.h functions that already have an
// FFI-friendly signature are called directly and listed there too.
//
// Conventions: functions that can fail return a status (0 = ok, < 0 = error) or
// NULL; the reason is in the captured log (llmatic_log_drain). Strings returned
// as `char *` are malloc'd and must be released with llmatic_string_free.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "llama.h"
#include "qgemm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMATIC_ABI_VERSION 10

// The largest grammar (GBNF text) built from a request's schema or tools.
#define LLMATIC_MAX_GRAMMAR_BYTES (2u * 1024u * 1024u)

int32_t llmatic_abi_version(void);

// ---- process-wide setup and logging --------------------------------------
// Initialises the llama backend once and routes every llama/ggml log line into
// an internal buffer (no JS callback ever runs on a ggml thread).
void    llmatic_init(int32_t min_log_level);
// Copies buffered log text ("<level digit><text>\n" per line) into buf, returns
// the number of bytes written; lines that do not fit stay for the next call.
int32_t llmatic_log_drain(char * buf, int32_t cap);
// Number of log lines dropped because the buffer was full since the last call.
int32_t llmatic_log_dropped(void);
// Lowers the calling thread's scheduling priority by `nice` (Linux: per thread;
// threads it creates later, such as ggml's compute threads, inherit it), so the
// HTTP thread wins the CPU whenever it has work. Returns 0 or an errno.
int32_t llmatic_thread_nice(int32_t nice);
// Matrix products whose activations have fewer than `min_batch` columns (the
// tokens of a small decode batch) on quantized weights go to ggml's own
// per-column kernels instead of llamafile's tinyBLAS, which on x86 is slower
// for them: with Q8_0/Q5_0 weights a batch of 4 tokens took 49.9 ms with
// tinyBLAS and 42.6 ms without (2 threads, Qwen2-0.5B shape). 0 leaves every
// product to tinyBLAS (stock llama.cpp). Returns the previous value, or -1
// when the library was built without llamafile (then nothing changes).
int32_t llmatic_set_sgemm_min_batch(int32_t min_batch);
// Matrix products handed back to ggml's kernels so far (wraps around).
uint32_t llmatic_sgemm_declined(void);
// Products of Q8_0/Q5_0 weights with 2..max_batch columns (default 16) use
// llmatic's AVX512-VNNI kernel (qgemm.h) where the CPU has it: a decode of 8
// tokens took 64 ms with tinyBLAS and 34 ms with it (Qwen2-0.5B shape, 2
// threads). 0 turns it off. Returns the previous value (-1: not linked in).
int32_t llmatic_set_qgemm_max_batch(int32_t max_batch);
// Products computed by that kernel so far (wraps around). The same switch and
// counter cover the K-quant kernels (Q4_K/Q6_K weights, AVX2 or AVX512-VNNI,
// see qgemm_k.cpp): while max_batch > 0 they take every product, one column
// included.
uint32_t llmatic_qgemm_calls(void);

// Attention of decode-sized batches (attn.cpp): with on (the default) products of
// fewer than 64 query rows per stream with f16 K/V go through llmatic's kernel
// instead of ggml-cpu's per-cell loop. Set between decodes only. Returns the
// previous setting; the count is of the ops it took (llmatic_attention_calls).
int32_t  llmatic_set_fast_attention(int32_t on);
uint32_t llmatic_attention_calls(void);
// for the tests: one attention op through ggml's CPU backend (see attn.cpp)
bool     llmatic_attention_probe(const float * q, const uint16_t * k, const uint16_t * v, const uint16_t * mask,
                                 int32_t DK, int32_t DV, int32_t N, int32_t NKV, int32_t HQ, int32_t HKV, int32_t NS,
                                 float scale, int32_t threads, int32_t on, float * out);
// ggml's own dequantization of n values (a whole number of blocks) of `type`
// into floats: the reference the kernels' tests compare with. Returns false
// for a type ggml cannot dequantize or an n that is not whole blocks.
bool llmatic_dequantize(int32_t type, const void * src, float * dst, int64_t n);

// ---- model ----------------------------------------------------------------
// progress (may be NULL) receives 0..1 while loading; loading aborts when
// *cancel (may be NULL) becomes non-zero. Both may point into shared memory.
// repack: let ggml repack quantized weights for faster CPU kernels (the
// default); without it every token is computed by the same kernel whatever
// the batch holds, which makes batched results bit-identical to solo ones.
struct llama_model * llmatic_model_load(const char * path, int32_t n_gpu_layers, bool use_mmap,
                                        bool vocab_only, bool repack, float * progress, const int32_t * cancel);

// ---- context ----------------------------------------------------------------
struct llama_context * llmatic_context_new(struct llama_model * model, uint32_t n_ctx, uint32_t n_batch,
                                           uint32_t n_ubatch, uint32_t n_seq_max, int32_t n_threads,
                                           int32_t n_threads_batch, bool embeddings, int32_t pooling_type,
                                           int32_t flash_attn_type, bool kv_unified);

// ---- batch ----------------------------------------------------------------
// A batch owns fixed arrays of `capacity` entries that JS fills in place
// (one sequence id per token), then llmatic_decode submits the first n.
typedef struct llmatic_batch llmatic_batch;

llmatic_batch * llmatic_batch_new(int32_t capacity);
void            llmatic_batch_free(llmatic_batch * batch);
int32_t *       llmatic_batch_tokens(llmatic_batch * batch);
int32_t *       llmatic_batch_pos(llmatic_batch * batch);
int32_t *       llmatic_batch_seq(llmatic_batch * batch);
int8_t *        llmatic_batch_logits(llmatic_batch * batch);
// Returns llama_decode's status for the first n_tokens entries.
int32_t         llmatic_decode(struct llama_context * ctx, llmatic_batch * batch, int32_t n_tokens);

// ---- sampling ---------------------------------------------------------------
// llama.cpp's common sampler (the one llama-server uses): penalties, top-k/p,
// min-p, temperature, seed, logit bias, grammars (lazy ones with triggers).
// Configured from JSON {seed, temp, top_k, top_p, min_p, typ_p, penalty_last_n,
// penalty_repeat, penalty_freq, penalty_present, logit_bias: [[token, bias]...],
// grammar, grammar_type: "user"|"output_format"|"tool_calls", grammar_lazy,
// grammar_triggers: [{type, value, token}], generation_prompt}.
typedef struct llmatic_sampler llmatic_sampler;

llmatic_sampler * llmatic_sampler_new(const struct llama_model * model, const char * config_json, char ** error);
void              llmatic_sampler_free(llmatic_sampler * sampler);
// Samples from output `idx` of the last decode and accepts the token.
int32_t           llmatic_sampler_sample(llmatic_sampler * sampler, struct llama_context * ctx, int32_t idx);
// Feeds prompt tokens to the penalty history (not to the grammar).
void              llmatic_sampler_accept_prompt(llmatic_sampler * sampler, const int32_t * tokens, int32_t n);
// Log-probabilities of the raw logits of output `idx`: writes the top k
// (ids and logprobs, most likely first) and returns the logprob of `token`.
float llmatic_logprobs(struct llama_context * ctx, int32_t idx, int32_t token, int32_t k, int32_t * ids,
                       float * logprobs);

// ---- strings --------------------------------------------------------------
void llmatic_string_free(char * s);

// ---- chat templates and grammars (llama.cpp's C++ common library) ---------
// Opaque handle to the model's chat templates (or `override_template` when not
// NULL/empty). Returns NULL on error; the reason is in *error (free it).
typedef struct llmatic_chat llmatic_chat;

llmatic_chat * llmatic_chat_new(const struct llama_model * model, const char * override_template, char ** error);
void           llmatic_chat_free(llmatic_chat * chat);
// Input: JSON {messages, tools?, tool_choice?, parallel_tool_calls?, json_schema?,
// grammar?, add_generation_prompt?, chat_template_kwargs?}. Output: JSON with
// {prompt, grammar, grammar_lazy, grammar_triggers, preserved_tokens,
// additional_stops, format, parser, generation_prompt} or {error}.
char *         llmatic_chat_apply(llmatic_chat * chat, const char * request_json);
// A parser for one generation's output, configured from llmatic_chat_apply's
// result: JSON {format, parser, generation_prompt, parse_tool_calls}.
typedef struct llmatic_chat_parser llmatic_chat_parser;

llmatic_chat_parser * llmatic_chat_parser_new(const char * config_json, char ** error);
void                  llmatic_chat_parser_free(llmatic_chat_parser * parser);
// Parses the whole text generated so far. Output: the OpenAI-shaped message
// JSON {role, content, reasoning_content?, tool_calls?} or {error}.
char *                llmatic_chat_parser_parse(llmatic_chat_parser * parser, const char * text, bool is_partial);
// JSON schema (text) -> GBNF grammar. Output JSON {grammar} or {error}.
char *         llmatic_json_schema_to_grammar(const char * schema_json);
// What the tokenizer needs to know about the vocabulary: JSON {control: [texts
// of the control/unknown tokens, the ones only parse_special turns into
// tokens], max_piece: the longest token's text in bytes}.
char *         llmatic_vocab_info(const struct llama_vocab * vocab);

// ---- training (train.cpp) ---------------------------------------------------
// llama.cpp's training API, one window (one optimizer step) per call. The model
// must be loaded without mmap and without repacking, and be private to the
// trainer (its weights change in place). Only F32 tensors train (never
// token_embd); the K/V cache is F32 and flash attention off.
typedef struct llmatic_trainer llmatic_trainer;

// window: tokens per step (rounded up to a multiple of 256 by llama.cpp; read it
// back with llmatic_trainer_window); ubatch divides it. *cancel (may be NULL)
// aborts a step when it becomes non-zero. NULL on error (*error says why).
llmatic_trainer * llmatic_trainer_new(struct llama_model * model, uint32_t window, uint32_t ubatch, int32_t n_threads,
                                      const int32_t * cancel, char ** error);
uint32_t llmatic_trainer_window(llmatic_trainer * trainer);
// parameters that train
int64_t  llmatic_trainer_n_trainable(llmatic_trainer * trainer);
// times the loss hook ran (0 means per-position weights were not applied)
int64_t  llmatic_trainer_hook_calls(llmatic_trainer * trainer);
void     llmatic_trainer_set_adamw(llmatic_trainer * trainer, float lr, float beta1, float beta2, float eps, float wd);
// One window of `window` tokens, labels (the next tokens) and loss weights.
// train: forward + backward + one AdamW step; else forward only (validation).
// Writes each position's NLL of its label and the model's top token there, and
// ggml's mean loss. Returns 0, 1 when cancelled (the weights may be half-updated), < 0 on error.
int32_t  llmatic_trainer_step(llmatic_trainer * trainer, const int32_t * tokens, const int32_t * labels,
                              const float * weights, bool train, float * nll, int32_t * pred, double * loss);
// the tensors that train: names, and their bytes (returns the size; negative: dst too small)
int32_t      llmatic_trainer_tensor_count(llmatic_trainer * trainer);
const char * llmatic_trainer_tensor_name(llmatic_trainer * trainer, int32_t i);
int64_t      llmatic_trainer_tensor_read(llmatic_trainer * trainer, int32_t i, void * dst, int64_t cap);
void         llmatic_trainer_free(llmatic_trainer * trainer);
// llama_model_quantize with allow_requantize: ftype (0 = all F32, 7 = Q8_0, 1 = F16),
// token_embedding_type a ggml type to keep the embedding in (-1: as ftype says). 0 on success.
int32_t      llmatic_quantize(const char * in, const char * out, int32_t ftype, int32_t token_embedding_type,
                              int32_t n_threads);

// ---- processes --------------------------------------------------------------
// The calling process gets SIGKILL when its parent exits, and becomes the
// kernel's first choice when memory runs out (oom_score_adj 1000). Engine
// processes call it at start. Returns 0 or an errno.
int32_t        llmatic_engine_process_setup(void);

// ---- audio (audio.cpp) ------------------------------------------------------
// Decodes wav, mp3, flac or ogg vorbis bytes to 16 kHz mono float PCM (malloc'd,
// freed by llmatic_audio_free). 0 on success, < 0 with *error set.
int32_t llmatic_audio_decode(const uint8_t * data, size_t size, float ** out, int64_t * n_samples, char ** error);
void    llmatic_audio_free(float * pcm);

struct whisper_context;
typedef struct llmatic_transcription llmatic_transcription;
struct whisper_context * llmatic_whisper_load(const char * path, char ** error);
void                     llmatic_whisper_free(struct whisper_context * ctx);
// JSON: multilingual, n_vocab, n_audio_ctx, n_text_ctx, n_mels, type, ...
char *                   llmatic_whisper_info(struct whisper_context * ctx);
// Starts whisper_full on a native thread of its own with options JSON
// {language?, prompt?, translate?, temperature?, temperature_inc?, token_timestamps?, n_threads?};
// the PCM is copied. NULL with *error on bad options.
llmatic_transcription * llmatic_transcribe_start(struct whisper_context * ctx, const float * pcm, int64_t n,
                                                 const char * options_json, char ** error);
// JSON {state: running|done|failed|cancelled, segments: [new since the last poll], language?, error?}
char *                  llmatic_transcribe_poll(llmatic_transcription * job);
// blocks until a segment is pending or the job ended, at most timeout_ms; returns the state (0 running)
int32_t                 llmatic_transcribe_wait(llmatic_transcription * job, int32_t timeout_ms);
void                    llmatic_transcribe_cancel(llmatic_transcription * job);
// cancels, joins the thread and frees
void                    llmatic_transcribe_free(llmatic_transcription * job);

// ---- images (vision.cpp): llama.cpp's libmtmd ---------------------------------
// A projector file (mmproj-*.gguf) loaded beside its text model. The
// preparation thread tokenizes and encodes images (an encode runs the vision
// tower, the slow part); the decode thread only decodes the embeddings into a
// sequence, between its shared batches. NULL/negative on error, reason in *error.
typedef struct llmatic_vision llmatic_vision;
typedef struct llmatic_image  llmatic_image;

llmatic_vision * llmatic_vision_load(const char * mmproj_path, const struct llama_model * model, int32_t n_threads,
                                     char ** error);
void             llmatic_vision_free(llmatic_vision * vision);
// bit 0: images; bit 1: audio; bit 2: M-RoPE positions (an image takes fewer positions than tokens)
int32_t          llmatic_vision_caps(const llmatic_vision * vision);
// One image file (jpeg, png, bmp, gif, ...) as the model reads it: the parts
// mtmd makes of one media marker (text tokens some projectors put around an
// image, and the image's own tokens). NULL with *error and *status: 1 not an
// image, 2 more than max_pixels, 3 preprocessing failed.
llmatic_image *  llmatic_image_tokenize(llmatic_vision * vision, const uint8_t * data, size_t size, uint32_t max_pixels,
                                        int32_t * status, char ** error);
int32_t          llmatic_image_n_parts(const llmatic_image * image);
// Part i: its token count; *kind 0 text, 1 image; *n_pos the positions it takes.
// A text part's token ids are written to tokens (cap entries).
int32_t          llmatic_image_part(const llmatic_image * image, int32_t i, int32_t * kind, int32_t * n_pos,
                                    int32_t * tokens, int32_t cap);
// Encodes image part i: n_tokens x n_embd floats into out (cap floats). 0 on success.
int32_t          llmatic_image_encode(llmatic_vision * vision, const llmatic_image * image, int32_t i, float * out,
                                      int64_t cap);
// A copy of image part i that outlives the image (what llmatic_vision_decode needs with the embeddings).
struct mtmd_input_chunk;
struct mtmd_input_chunk * llmatic_image_take_part(const llmatic_image * image, int32_t i);
void             llmatic_image_part_free(struct mtmd_input_chunk * part);
void             llmatic_image_free(llmatic_image * image);
// Decodes an encoded image part into sequence seq at position n_past (in
// batches of n_batch); *new_n_past is the next free position. 0 on success.
int32_t          llmatic_vision_decode(llmatic_vision * vision, struct llama_context * ctx,
                                       const struct mtmd_input_chunk * part, const float * embd, int32_t n_past,
                                       int32_t seq, int32_t n_batch, int32_t * new_n_past);

#ifdef __cplusplus
}
#endif
