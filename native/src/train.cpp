// train.cpp: llama.cpp's training API (llama_opt_init / llama_opt_epoch) behind
// a C face, one window (one optimizer step) per call, so JS reads progress,
// cancels and sets the learning rate between calls. No JS callback ever runs on
// a ggml thread: the dataset, the results, the parameter filter, the optimizer
// parameters and the per-position loss weights all live here.
//
// prompt_loss_weight: ggml's loss is the mean cross-entropy over every position
// of a window. An eval callback on the scheduler sees each ubatch's logits at
// the CROSS_ENTROPY_LOSS node (it records each position's NLL and top token) and the logits' gradient at CROSS_ENTROPY_LOSS_BACK,
// whose rows it rescales by w_p * W / sum(w): the gradient of sum(w NLL)/sum(w).
#include "llmatic.h"
#include "strings.hpp"

#include <cmath>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml-opt.h"
#include "ggml.h"

struct llmatic_trainer {
    llama_context *              ctx     = nullptr;
    ggml_opt_dataset_t           dataset = nullptr;
    ggml_opt_result_t            result  = nullptr;
    ggml_opt_optimizer_params    opt_pars{};
    const int32_t *              cancel  = nullptr;
    uint32_t                     window  = 0;
    uint32_t                     ubatch  = 0;
    std::vector<ggml_tensor *>   params;  // what the filter marked trainable (F32, not the embedding)
    int64_t                      n_trainable = 0;
    // per step
    const int32_t *              labels  = nullptr;
    const float *                weights = nullptr;
    double                       weight_sum = 0;
    float *                      nll     = nullptr;
    int32_t *                    pred    = nullptr;
    int32_t                      k_loss  = 0;  // CROSS_ENTROPY_LOSS nodes seen this step
    int32_t                      k_back  = 0;  // CROSS_ENTROPY_LOSS_BACK nodes seen this step
    int64_t                      hook_calls = 0;
};

static bool trainer_abort(void * data) {
    const auto * t = static_cast<const llmatic_trainer *>(data);
    return t->cancel && __atomic_load_n(t->cancel, __ATOMIC_RELAXED) != 0;
}

static bool trainer_filter(const ggml_tensor * tensor, void * ud) {
    auto * t = static_cast<llmatic_trainer *>(ud);
    // llama.cpp only trains F32 tensors, and never token_embd / rope_freqs (its FIXMEs): record what it will train
    if (tensor->type != GGML_TYPE_F32) return true;
    if (std::strcmp(tensor->name, "token_embd.weight") == 0 || std::strcmp(tensor->name, "rope_freqs.weight") == 0) return true;
    for (auto * p : t->params) {
        if (p == tensor) return true;
    }
    t->params.push_back(const_cast<ggml_tensor *>(tensor));
    t->n_trainable += ggml_nelements(tensor);
    return true;
}

// Per-row NLL and argmax at the loss node; the weights applied to the gradient rows.
static bool trainer_hook(ggml_tensor * t, bool ask, void * ud) {
    auto * tr = static_cast<llmatic_trainer *>(ud);
    const bool loss = t->op == GGML_OP_CROSS_ENTROPY_LOSS;
    const bool back = t->op == GGML_OP_CROSS_ENTROPY_LOSS_BACK;
    if (ask) return loss || back;
    if (!tr->labels) return true;
    tr->hook_calls++;
    if (loss) {
        const ggml_tensor * logits = t->src[0];
        const int64_t nv = logits->ne[0];
        const int64_t nr = ggml_nrows(logits);
        for (int64_t r = 0; r < nr; r++) {
            const int64_t p = (int64_t) tr->k_loss * nr + r;
            if (p >= tr->window) break;
            const float * row = (const float *) ((const char *) logits->data + r * logits->nb[1]);
            float mx = row[0];
            int64_t arg = 0;
            for (int64_t i = 1; i < nv; i++) {
                if (row[i] > mx) {
                    mx = row[i];
                    arg = i;
                }
            }
            double sum = 0;
            for (int64_t i = 0; i < nv; i++) sum += std::exp((double) row[i] - mx);
            const int32_t label = tr->labels[p];
            tr->nll[p]  = (float) (std::log(sum) + mx - row[label]);
            tr->pred[p] = (int32_t) arg;
        }
        tr->k_loss++;
    } else if (back) {
        const int64_t nr = ggml_nrows(t);
        const int64_t nv = t->ne[0];
        const double scale = tr->weight_sum > 0 ? (double) tr->window / tr->weight_sum : 0.0;
        for (int64_t r = 0; r < nr; r++) {
            const int64_t p = (int64_t) tr->k_back * nr + r;
            if (p >= tr->window) break;
            const float f = (float) (tr->weights[p] * scale);
            if (f == 1.0f) continue;
            float * row = (float *) ((char *) t->data + r * t->nb[1]);
            for (int64_t i = 0; i < nv; i++) row[i] *= f;
        }
        tr->k_back++;
    }
    return true;
}

llmatic_trainer * llmatic_trainer_new(llama_model * model, uint32_t window, uint32_t ubatch, int32_t n_threads,
                                      const int32_t * cancel, char ** error) {
    auto * t = new llmatic_trainer();
    try {
        t->cancel = cancel;
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx            = window;
        cp.n_batch          = window;
        cp.n_ubatch         = ubatch;
        cp.n_seq_max        = 1;
        cp.n_threads        = n_threads;
        cp.n_threads_batch  = n_threads;
        cp.type_k           = GGML_TYPE_F32;  // OUT_PROD has no f16 path: the K/V cache must be f32
        cp.type_v           = GGML_TYPE_F32;
        cp.flash_attn_type  = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // FLASH_ATTN_EXT has no backward pass
        cp.cb_eval           = trainer_hook;
        cp.cb_eval_user_data = t;
        cp.abort_callback      = trainer_abort;
        cp.abort_callback_data = t;
        t->ctx = llama_init_from_model(model, cp);
        if (!t->ctx) throw std::runtime_error("could not create the training context");
        t->window = llama_n_ctx(t->ctx);
        t->ubatch = llama_n_ubatch(t->ctx);
        if (t->window % t->ubatch != 0) throw std::runtime_error("the window is not a multiple of the micro-batch");
        // one decode installs the eval callback on the scheduler (it stays for the training graphs)
        {
            llama_token tok = 0;
            llama_batch b   = llama_batch_get_one(&tok, 1);
            if (llama_decode(t->ctx, b) != 0) throw std::runtime_error("the warm-up decode failed");
            llama_memory_clear(llama_get_memory(t->ctx), true);
        }
        t->opt_pars = ggml_opt_get_default_optimizer_params(nullptr);
        llama_opt_params op{};
        op.n_ctx_train     = 0;
        op.param_filter    = trainer_filter;
        op.param_filter_ud = t;
        op.get_opt_pars    = ggml_opt_get_constant_optimizer_params;
        op.get_opt_pars_ud = &t->opt_pars;
        op.optimizer_type  = GGML_OPT_OPTIMIZER_TYPE_ADAMW;
        llama_opt_init(t->ctx, model, op);
        if (t->n_trainable == 0) throw std::runtime_error("the model has no trainable (F32) tensors");
        t->dataset = ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, t->window, t->window, 1, 1);
        t->result  = ggml_opt_result_init();
        return t;
    } catch (const std::exception & e) {
        if (error) *error = llmatic_dup_string(e.what());
        llmatic_trainer_free(t);
        return nullptr;
    }
}

uint32_t llmatic_trainer_window(llmatic_trainer * t) { return t->window; }
int64_t  llmatic_trainer_n_trainable(llmatic_trainer * t) { return t->n_trainable; }
int64_t  llmatic_trainer_hook_calls(llmatic_trainer * t) { return t->hook_calls; }

void llmatic_trainer_set_adamw(llmatic_trainer * t, float lr, float beta1, float beta2, float eps, float wd) {
    t->opt_pars.adamw.alpha = lr;
    t->opt_pars.adamw.beta1 = beta1;
    t->opt_pars.adamw.beta2 = beta2;
    t->opt_pars.adamw.eps   = eps;
    t->opt_pars.adamw.wd    = wd;
}

int32_t llmatic_trainer_step(llmatic_trainer * t, const int32_t * tokens, const int32_t * labels, const float * weights,
                             bool train, float * nll, int32_t * pred, double * loss) {
    if (trainer_abort(t)) return 1;
    std::memcpy(ggml_opt_dataset_data(t->dataset)->data, tokens, t->window * sizeof(int32_t));
    std::memcpy(ggml_opt_dataset_labels(t->dataset)->data, labels, t->window * sizeof(int32_t));
    t->labels  = labels;
    t->weights = weights;
    t->nll     = nll;
    t->pred    = pred;
    t->k_loss  = 0;
    t->k_back  = 0;
    t->weight_sum = 0;
    for (uint32_t i = 0; i < t->window; i++) t->weight_sum += weights[i];
    std::memset(nll, 0, t->window * sizeof(float));
    std::memset(pred, 0, t->window * sizeof(int32_t));
    ggml_opt_result_reset(t->result);
    llama_opt_epoch(t->ctx, t->dataset, train ? t->result : nullptr, train ? nullptr : t->result, train ? 1 : 0, nullptr,
                    nullptr);
    t->labels = nullptr;
    double unc = 0;
    ggml_opt_result_loss(t->result, loss, &unc);
    if (trainer_abort(t)) return 1;
    return t->k_loss > 0 ? 0 : -1;
}

int32_t llmatic_trainer_tensor_count(llmatic_trainer * t) { return (int32_t) t->params.size(); }

const char * llmatic_trainer_tensor_name(llmatic_trainer * t, int32_t i) {
    return i >= 0 && i < (int32_t) t->params.size() ? t->params[i]->name : nullptr;
}

int64_t llmatic_trainer_tensor_read(llmatic_trainer * t, int32_t i, void * dst, int64_t cap) {
    if (i < 0 || i >= (int32_t) t->params.size()) return -1;
    ggml_tensor * x = t->params[i];
    const int64_t n = (int64_t) ggml_nbytes(x);
    if (n > cap) return -n;
    ggml_backend_tensor_get(x, dst, 0, n);
    return n;
}

void llmatic_trainer_free(llmatic_trainer * t) {
    if (!t) return;
    if (t->result) ggml_opt_result_free(t->result);
    if (t->dataset) ggml_opt_dataset_free(t->dataset);
    if (t->ctx) llama_free(t->ctx);
    delete t;
}

int32_t llmatic_quantize(const char * in, const char * out, int32_t ftype, int32_t token_embedding_type, int32_t n_threads) {
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype            = (llama_ftype) ftype;
    p.nthread          = n_threads;
    p.allow_requantize = true;
    if (token_embedding_type >= 0) p.token_embedding_type = (ggml_type) token_embedding_type;
    return (int32_t) llama_model_quantize(in, out, &p);
}
