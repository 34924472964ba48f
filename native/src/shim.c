// shim.c: pointer-taking wrappers over llama.h for bun:ffi, and log capture.
#define _GNU_SOURCE
#include "llmatic.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <signal.h>
#include <sys/prctl.h>
#endif

int32_t llmatic_abi_version(void) { return LLMATIC_ABI_VERSION; }

// ---- logging -----------------------------------------------------------------
// llama/ggml may log from any thread; lines go into a bounded buffer under a
// mutex and JS drains it. Nothing here ever calls back into JS.

#define LOG_CAP (256 * 1024)

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char            log_buf[LOG_CAP];
static int32_t         log_len     = 0;
static int32_t         log_dropped = 0;
static int32_t         log_min     = GGML_LOG_LEVEL_INFO;
static int32_t         log_last    = GGML_LOG_LEVEL_INFO;  // level of the line in progress (for CONT)
static bool            log_open    = false;                // last line not yet ended by '\n'

static void log_cb(enum ggml_log_level level, const char * text, void * user_data) {
    (void) user_data;
    if (text == NULL) return;
    pthread_mutex_lock(&log_mu);
    int32_t eff = level == GGML_LOG_LEVEL_CONT ? log_last : (int32_t) level;
    if (level != GGML_LOG_LEVEL_CONT) log_last = eff;
    if (eff >= log_min) {
        size_t n    = strlen(text);
        size_t need = n + 2;
        if ((size_t) log_len + need >= LOG_CAP) {
            log_dropped++;
        } else {
            // a new line starts with its level digit, unless it continues the previous one
            if (!log_open || level != GGML_LOG_LEVEL_CONT) {
                if (log_open) log_buf[log_len++] = '\n';
                log_buf[log_len++] = (char) ('0' + eff);
            }
            memcpy(log_buf + log_len, text, n);
            log_len += (int32_t) n;
            log_open = !(n > 0 && text[n - 1] == '\n');
        }
    }
    pthread_mutex_unlock(&log_mu);
}

void llmatic_init(int32_t min_log_level) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_mutex_lock(&log_mu);
    log_min = min_log_level;
    pthread_mutex_unlock(&log_mu);
    llama_log_set(log_cb, NULL);
    pthread_once(&once, llama_backend_init);
}

int32_t llmatic_log_drain(char * buf, int32_t cap) {
    pthread_mutex_lock(&log_mu);
    // hand out whole lines only, so a reader never splits a line
    int32_t n = 0;
    for (int32_t i = 0; i < log_len && i < cap; i++) {
        if (log_buf[i] == '\n') n = i + 1;
    }
    if (n == 0 && log_len > 0 && log_len > cap) n = cap;  // one line longer than buf
    memcpy(buf, log_buf, (size_t) n);
    memmove(log_buf, log_buf + n, (size_t) (log_len - n));
    log_len -= n;
    pthread_mutex_unlock(&log_mu);
    return n;
}

int32_t llmatic_log_dropped(void) {
    pthread_mutex_lock(&log_mu);
    int32_t d   = log_dropped;
    log_dropped = 0;
    pthread_mutex_unlock(&log_mu);
    return d;
}

// The library is linked with --wrap=llamafile_sgemm (see CMakeLists.txt): ggml's
// calls land here. Returning false makes ggml use its own kernels, exactly as it
// does when tinyBLAS declines a product.
#ifdef LLMATIC_WRAP_SGEMM
struct ggml_compute_params;
bool __real_llamafile_sgemm(const struct ggml_compute_params * params, int64_t m, int64_t n, int64_t k,
                            const void * a, int64_t lda, const void * b, int64_t ldb, void * c, int64_t ldc,
                            int atype, int btype, int ctype);

static int32_t  sgemm_min_batch = 8;
static uint32_t sgemm_declined  = 0;
static int32_t  qgemm_max_batch = 16;
static uint32_t qgemm_calls     = 0;

// the head of ggml's struct ggml_compute_params (ggml-cpu-impl.h)
struct compute_params_head {
    int ith, nth;
};

bool __wrap_llamafile_sgemm(const struct ggml_compute_params * params, int64_t m, int64_t n, int64_t k,
                            const void * a, int64_t lda, const void * b, int64_t ldb, void * c, int64_t ldc,
                            int atype, int btype, int ctype) {
    const struct compute_params_head * head = (const struct compute_params_head *) params;
    // K-quant weights: llmatic's kernels for every batch, one column too (ggml's
    // alternative for them, unrepacked, is its per-column dot product; with its
    // prefetch the kernels' one-column tile decoded one stream 1.14x faster:
    // bench:engine --vs-lib); Q8_0/Q5_0: 1..max (one column too: on a Zen 5 EPYC
    // the kernel decoded the bench model 1.48x faster than ggml's dot products,
    // on a Sapphire-Rapids-class Xeon 30.1 ms against 35.6 with AVX512, 23 with AMX)
    const int32_t max_batch = __atomic_load_n(&qgemm_max_batch, __ATOMIC_RELAXED);
    if (max_batch > 0 &&
        (llmatic_qgemm_k(head->ith, head->nth, m, n, k, a, lda, b, ldb, c, ldc, atype, btype, ctype) ||
         (n <= max_batch &&
          llmatic_qgemm(head->ith, head->nth, m, n, k, a, lda, b, ldb, c, ldc, atype, btype, ctype)))) {
        if (head->ith == 0) __atomic_add_fetch(&qgemm_calls, 1, __ATOMIC_RELAXED);
        return true;
    }
    // (one column never reaches tinyBLAS on x86: it declines n < 2 itself)
    if (n >= 2 && n < __atomic_load_n(&sgemm_min_batch, __ATOMIC_RELAXED) && ggml_is_quantized((enum ggml_type) atype)) {
        __atomic_add_fetch(&sgemm_declined, 1, __ATOMIC_RELAXED);
        return false;
    }
    return __real_llamafile_sgemm(params, m, n, k, a, lda, b, ldb, c, ldc, atype, btype, ctype);
}

int32_t llmatic_set_sgemm_min_batch(int32_t min_batch) {
    return __atomic_exchange_n(&sgemm_min_batch, min_batch < 0 ? 0 : min_batch, __ATOMIC_RELAXED);
}

uint32_t llmatic_sgemm_declined(void) { return __atomic_load_n(&sgemm_declined, __ATOMIC_RELAXED); }

int32_t llmatic_set_qgemm_max_batch(int32_t max_batch) {
    return __atomic_exchange_n(&qgemm_max_batch, max_batch < 0 ? 0 : max_batch, __ATOMIC_RELAXED);
}

uint32_t llmatic_qgemm_calls(void) { return __atomic_load_n(&qgemm_calls, __ATOMIC_RELAXED); }
#else
int32_t llmatic_set_qgemm_max_batch(int32_t max_batch) {
    (void) max_batch;
    return -1;
}

uint32_t llmatic_qgemm_calls(void) { return 0; }

int32_t llmatic_set_sgemm_min_batch(int32_t min_batch) {
    (void) min_batch;
    return -1;
}

uint32_t llmatic_sgemm_declined(void) { return 0; }
#endif

bool llmatic_dequantize(int32_t type, const void * src, float * dst, int64_t n) {
    if (type < 0 || type >= GGML_TYPE_COUNT || n < 0) return false;
    const struct ggml_type_traits * t = ggml_get_type_traits((enum ggml_type) type);
    if (!t->to_float || t->blck_size <= 0 || n % t->blck_size != 0) return false;
    t->to_float(src, dst, n);
    return true;
}

int32_t llmatic_thread_nice(int32_t nice) {
#if defined(__linux__)
    const pid_t tid = (pid_t) syscall(SYS_gettid);
    errno           = 0;
    const int cur   = getpriority(PRIO_PROCESS, (id_t) tid);
    if (errno != 0) return errno;
    return setpriority(PRIO_PROCESS, (id_t) tid, cur + nice) == 0 ? 0 : errno;
#else
    (void) nice;
    return 0;
#endif
}

// ---- model ---------------------------------------------------------------------

struct load_progress {
    float *         progress;
    const int32_t * cancel;
};

static bool load_progress_cb(float p, void * user_data) {
    struct load_progress * lp = (struct load_progress *) user_data;
    if (lp->progress) __atomic_store_n((int32_t *) lp->progress, *(int32_t *) &p, __ATOMIC_RELAXED);
    return !(lp->cancel && __atomic_load_n(lp->cancel, __ATOMIC_RELAXED) != 0);
}

struct llama_model * llmatic_model_load(const char * path, int32_t n_gpu_layers, bool use_mmap, bool vocab_only,
                                        bool repack, float * progress, const int32_t * cancel) {
    struct load_progress         lp = { progress, cancel };
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers                 = n_gpu_layers;
    mp.load_mode                    = use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
    mp.vocab_only                   = vocab_only;
    mp.use_extra_bufts              = repack;
    mp.progress_callback            = load_progress_cb;
    mp.progress_callback_user_data  = &lp;
    return llama_model_load_from_file(path, mp);
}

// ---- context -------------------------------------------------------------------

struct llama_context * llmatic_context_new(struct llama_model * model, uint32_t n_ctx, uint32_t n_batch,
                                           uint32_t n_ubatch, uint32_t n_seq_max, int32_t n_threads,
                                           int32_t n_threads_batch, bool embeddings, int32_t pooling_type,
                                           int32_t flash_attn_type, bool kv_unified) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx                       = n_ctx;
    cp.n_batch                     = n_batch;
    cp.n_ubatch                    = n_ubatch;
    cp.n_seq_max                   = n_seq_max;
    cp.n_threads                   = n_threads;
    cp.n_threads_batch             = n_threads_batch;
    cp.embeddings                  = embeddings;
    cp.pooling_type                = (enum llama_pooling_type) pooling_type;
    cp.flash_attn_type             = (enum llama_flash_attn_type) flash_attn_type;
    cp.kv_unified                  = kv_unified;
    cp.no_perf                     = true;
    return llama_init_from_model(model, cp);
}

// ---- batch -----------------------------------------------------------------------

struct llmatic_batch {
    struct llama_batch b;
    int32_t            capacity;
    int32_t *          seq;  // flat: seq[i] is the one sequence id of token i
};

llmatic_batch * llmatic_batch_new(int32_t capacity) {
    if (capacity <= 0) return NULL;
    llmatic_batch * batch = (llmatic_batch *) calloc(1, sizeof(llmatic_batch));
    if (!batch) return NULL;
    batch->b        = llama_batch_init(capacity, 0, 1);
    batch->capacity = capacity;
    batch->seq      = (int32_t *) calloc((size_t) capacity, sizeof(int32_t));
    if (!batch->seq) {
        llama_batch_free(batch->b);
        free(batch);
        return NULL;
    }
    for (int32_t i = 0; i < capacity; i++) {
        batch->b.n_seq_id[i] = 1;
        free(batch->b.seq_id[i]);           // replace the per-token arrays by pointers into `seq`
        batch->b.seq_id[i] = &batch->seq[i];
    }
    return batch;
}

void llmatic_batch_free(llmatic_batch * batch) {
    if (!batch) return;
    // llama_batch_free frees seq_id[i] until it meets a NULL entry: give it none
    for (int32_t i = 0; i < batch->capacity; i++) batch->b.seq_id[i] = NULL;
    llama_batch_free(batch->b);
    free(batch->seq);
    free(batch);
}

int32_t * llmatic_batch_tokens(llmatic_batch * batch) { return batch->b.token; }
int32_t * llmatic_batch_pos(llmatic_batch * batch) { return batch->b.pos; }
int32_t * llmatic_batch_seq(llmatic_batch * batch) { return batch->seq; }
int8_t *  llmatic_batch_logits(llmatic_batch * batch) { return batch->b.logits; }

int32_t llmatic_decode(struct llama_context * ctx, llmatic_batch * batch, int32_t n_tokens) {
    if (n_tokens <= 0 || n_tokens > batch->capacity) return -1;
    struct llama_batch b = batch->b;
    b.n_tokens           = n_tokens;
    return llama_decode(ctx, b);
}

// ---- sampling ----------------------------------------------------------------------

float llmatic_logprobs(struct llama_context * ctx, int32_t idx, int32_t token, int32_t k, int32_t * ids,
                       float * logprobs) {
    const float * logits = llama_get_logits_ith(ctx, idx);
    if (!logits) return NAN;
    const struct llama_model * model = llama_get_model(ctx);
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double) (logits[i] - max));
    const float log_z = max + (float) log(sum);

    // top-k by insertion into a small sorted array (k <= 20 in practice)
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab && k > 0; i++) {
        const float lp = logits[i] - log_z;
        if (n == k && lp <= logprobs[n - 1]) continue;
        int32_t j = n < k ? n++ : k - 1;
        while (j > 0 && logprobs[j - 1] < lp) {
            logprobs[j] = logprobs[j - 1];
            ids[j]      = ids[j - 1];
            j--;
        }
        logprobs[j] = lp;
        ids[j]      = i;
    }
    return token >= 0 && token < n_vocab ? logits[token] - log_z : NAN;
}

void llmatic_string_free(char * s) { free(s); }

// ---- processes ---------------------------------------------------------------

int32_t llmatic_engine_process_setup(void) {
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errno;
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    if (fd >= 0) {
        const char v[] = "1000";
        if (write(fd, v, sizeof(v) - 1) < 0) { /* not fatal */ }
        close(fd);
    }
#endif
    return 0;
}
