// The bun:ffi symbol table. It mirrors native/src/llmatic.h (the llmatic_* shim)
// and the llama.h functions whose signatures need no shim (scalars and pointers
// only). Keep the order and grouping of the headers so the two can be read side by side.
import { FFIType } from "bun:ffi";

const { ptr, i32, i64, u32, u64, f32, bool, void: none, cstring } = FFIType;

export const symbols = {
  // ---- llmatic.h: setup and logging
  llmatic_abi_version: { args: [], returns: i32 },
  llmatic_init: { args: [i32], returns: none },
  llmatic_log_drain: { args: [ptr, i32], returns: i32 },
  llmatic_log_dropped: { args: [], returns: i32 },
  llmatic_thread_nice: { args: [i32], returns: i32 },
  llmatic_set_sgemm_min_batch: { args: [i32], returns: i32 },
  llmatic_sgemm_declined: { args: [], returns: u32 },
  llmatic_set_qgemm_max_batch: { args: [i32], returns: i32 },
  llmatic_qgemm_calls: { args: [], returns: u32 },
  // ---- qgemm.h
  llmatic_qgemm_supported: { args: [], returns: bool },
  llmatic_qgemm: { args: [i32, i32, i64, i64, i64, ptr, i64, ptr, i64, ptr, i64, i32, i32, i32], returns: bool },
  // ---- llmatic.h: model, context
  llmatic_model_load: { args: [cstring, i32, bool, bool, bool, ptr, ptr], returns: ptr },
  llmatic_context_new: { args: [ptr, u32, u32, u32, u32, i32, i32, bool, i32, i32, bool], returns: ptr },
  // ---- llmatic.h: batch
  llmatic_batch_new: { args: [i32], returns: ptr },
  llmatic_batch_free: { args: [ptr], returns: none },
  llmatic_batch_tokens: { args: [ptr], returns: ptr },
  llmatic_batch_pos: { args: [ptr], returns: ptr },
  llmatic_batch_seq: { args: [ptr], returns: ptr },
  llmatic_batch_logits: { args: [ptr], returns: ptr },
  llmatic_decode: { args: [ptr, ptr, i32], returns: i32 },
  // ---- llmatic.h: sampling
  llmatic_sampler_new: { args: [ptr, cstring, ptr], returns: ptr },
  llmatic_sampler_free: { args: [ptr], returns: none },
  llmatic_sampler_sample: { args: [ptr, ptr, i32], returns: i32 },
  llmatic_sampler_accept_prompt: { args: [ptr, ptr, i32], returns: none },
  llmatic_logprobs: { args: [ptr, i32, i32, i32, ptr, ptr], returns: f32 },
  // ---- llmatic.h: strings, chat templates, grammars
  llmatic_string_free: { args: [ptr], returns: none },
  llmatic_chat_new: { args: [ptr, cstring, ptr], returns: ptr },
  llmatic_chat_free: { args: [ptr], returns: none },
  llmatic_chat_apply: { args: [ptr, cstring], returns: ptr },
  llmatic_chat_parser_new: { args: [cstring, ptr], returns: ptr },
  llmatic_chat_parser_free: { args: [ptr], returns: none },
  llmatic_chat_parser_parse: { args: [ptr, cstring, bool], returns: ptr },
  llmatic_json_schema_to_grammar: { args: [cstring], returns: ptr },
  llmatic_vocab_info: { args: [ptr], returns: ptr },
  // ---- llmatic.h: training
  llmatic_trainer_new: { args: [ptr, u32, u32, i32, ptr, ptr], returns: ptr },
  llmatic_trainer_window: { args: [ptr], returns: u32 },
  llmatic_trainer_n_trainable: { args: [ptr], returns: i64 },
  llmatic_trainer_hook_calls: { args: [ptr], returns: i64 },
  llmatic_trainer_set_adamw: { args: [ptr, f32, f32, f32, f32, f32], returns: none },
  llmatic_trainer_step: { args: [ptr, ptr, ptr, ptr, bool, ptr, ptr, ptr], returns: i32 },
  llmatic_trainer_tensor_count: { args: [ptr], returns: i32 },
  llmatic_trainer_tensor_name: { args: [ptr, i32], returns: cstring },
  llmatic_trainer_tensor_read: { args: [ptr, i32, ptr, i64], returns: i64 },
  llmatic_trainer_free: { args: [ptr], returns: none },
  llmatic_quantize: { args: [cstring, cstring, i32, i32, i32], returns: i32 },
  // ---- llmatic.h: processes
  llmatic_engine_process_setup: { args: [], returns: i32 },
  // ---- llmatic.h: audio (audio.cpp)
  llmatic_audio_decode: { args: [ptr, u64, ptr, ptr, ptr], returns: i32 },
  llmatic_audio_free: { args: [ptr], returns: none },
  llmatic_whisper_load: { args: [cstring, ptr], returns: ptr },
  llmatic_whisper_free: { args: [ptr], returns: none },
  llmatic_whisper_info: { args: [ptr], returns: ptr },
  llmatic_transcribe_start: { args: [ptr, ptr, i64, cstring, ptr], returns: ptr },
  llmatic_transcribe_poll: { args: [ptr], returns: ptr },
  llmatic_transcribe_wait: { args: [ptr, i32], returns: i32 },
  llmatic_transcribe_cancel: { args: [ptr], returns: none },
  llmatic_transcribe_free: { args: [ptr], returns: none },

  // ---- llama.h: model
  llama_model_free: { args: [ptr], returns: none },
  llama_model_get_vocab: { args: [ptr], returns: ptr },
  llama_model_n_ctx_train: { args: [ptr], returns: i32 },
  llama_model_n_embd: { args: [ptr], returns: i32 },
  llama_model_n_layer: { args: [ptr], returns: i32 },
  llama_model_n_params: { args: [ptr], returns: u64 },
  llama_model_size: { args: [ptr], returns: u64 },
  llama_model_desc: { args: [ptr, ptr, u64], returns: i32 },
  llama_model_meta_val_str: { args: [ptr, cstring, ptr, u64], returns: i32 },
  llama_model_chat_template: { args: [ptr, cstring], returns: cstring },
  llama_model_n_cls_out: { args: [ptr], returns: u32 },
  llama_model_has_encoder: { args: [ptr], returns: bool },
  llama_model_has_decoder: { args: [ptr], returns: bool },
  // ---- llama.h: context
  llama_free: { args: [ptr], returns: none },
  llama_n_ctx: { args: [ptr], returns: u32 },
  llama_n_ctx_seq: { args: [ptr], returns: u32 },
  llama_n_batch: { args: [ptr], returns: u32 },
  llama_n_seq_max: { args: [ptr], returns: u32 },
  llama_get_memory: { args: [ptr], returns: ptr },
  llama_memory_clear: { args: [ptr, bool], returns: none },
  llama_memory_seq_rm: { args: [ptr, i32, i32, i32], returns: bool },
  llama_memory_seq_cp: { args: [ptr, i32, i32, i32, i32], returns: none },
  llama_get_embeddings_seq: { args: [ptr, i32], returns: ptr },
  // ---- llama.h: vocab
  llama_vocab_n_tokens: { args: [ptr], returns: i32 },
  llama_vocab_is_eog: { args: [ptr, i32], returns: bool },
  llama_vocab_bos: { args: [ptr], returns: i32 },
  llama_vocab_eos: { args: [ptr], returns: i32 },
  llama_vocab_sep: { args: [ptr], returns: i32 },
  llama_vocab_get_add_bos: { args: [ptr], returns: bool },
  llama_vocab_get_add_eos: { args: [ptr], returns: bool },
  llama_vocab_get_add_sep: { args: [ptr], returns: bool },
  llama_vocab_fim_pre: { args: [ptr], returns: i32 },
  llama_vocab_fim_suf: { args: [ptr], returns: i32 },
  llama_vocab_fim_mid: { args: [ptr], returns: i32 },
  llama_tokenize: { args: [ptr, ptr, i32, ptr, i32, bool, bool], returns: i32 },
  llama_token_to_piece: { args: [ptr, i32, ptr, i32, i32, bool], returns: i32 },
} as const;
