// vision.cpp: images through llama.cpp's libmtmd (tools/mtmd), linked into
// this library. An image file becomes the parts mtmd makes of one media marker;
// the preparation thread encodes them (the vision tower), the decode thread
// decodes the embeddings into a sequence. stb_image (compiled into libmtmd)
// reads the files; their size is checked before any pixel is decoded.
#include "llmatic.h"
#include "strings.hpp"

#include <cstring>
#include <exception>
#include <string>

#include "mtmd-helper.h"
#include "mtmd.h"
#include "stb/stb_image.h"

struct llmatic_vision {
    mtmd_context *       mtmd;
    const llama_model *  model;
};

struct llmatic_image {
    mtmd_input_chunks * chunks;
};

static void set_error(char ** error, const std::string & s) {
    if (error) *error = llmatic_dup_string(s);
}

extern "C" {

llmatic_vision * llmatic_vision_load(const char * mmproj_path, const llama_model * model, int32_t n_threads,
                                     char ** error) {
    // mtmd and its helpers log through their own callbacks: send them where llama's logs go
    ggml_log_callback cb = nullptr;
    void *            ud = nullptr;
    llama_log_get(&cb, &ud);
    if (cb) {
        mtmd_log_set(cb, ud);
        mtmd_helper_log_set(cb, ud);
    }
    mtmd_context_params p = mtmd_context_params_default();
    p.use_gpu             = false;
    p.print_timings       = false;
    p.n_threads           = n_threads > 0 ? n_threads : 1;
    p.warmup              = true;
    mtmd_context * m      = nullptr;
    try {
        m = mtmd_init_from_file(mmproj_path, model, p);
    } catch (const std::exception & e) {
        set_error(error, std::string("the projector could not be loaded: ") + e.what());
        return nullptr;
    }
    if (!m) {
        set_error(error, std::string("libmtmd could not load the projector ") + mmproj_path +
                             " (is it a projector for this model? the log says why)");
        return nullptr;
    }
    if (!mtmd_support_vision(m)) {
        mtmd_free(m);
        set_error(error, std::string(mmproj_path) + " is a projector without a vision encoder (llmatic reads images only)");
        return nullptr;
    }
    return new llmatic_vision{ m, model };
}

void llmatic_vision_free(llmatic_vision * vision) {
    if (!vision) return;
    mtmd_free(vision->mtmd);
    delete vision;
}

int32_t llmatic_vision_caps(const llmatic_vision * vision) {
    return (mtmd_support_vision(vision->mtmd) ? 1 : 0) | (mtmd_support_audio(vision->mtmd) ? 2 : 0) |
           (mtmd_decode_use_mrope(vision->mtmd) ? 4 : 0);
}

llmatic_image * llmatic_image_tokenize(llmatic_vision * vision, const uint8_t * data, size_t size, uint32_t max_pixels,
                                       int32_t * status, char ** error) {
    *status = 1;
    int nx = 0, ny = 0, nc = 0;
    if (size == 0 || size > INT32_MAX || !stbi_info_from_memory(data, (int) size, &nx, &ny, &nc)) {
        set_error(error, "not an image llmatic can read (jpeg, png, gif, bmp, tga, psd, pnm)");
        return nullptr;
    }
    if (nx <= 0 || ny <= 0 || (uint64_t) nx * (uint64_t) ny > max_pixels) {
        *status = 2;
        set_error(error, "the image is " + std::to_string(nx) + "x" + std::to_string(ny) + " pixels, more than " +
                             std::to_string(max_pixels));
        return nullptr;
    }
    unsigned char * rgb = stbi_load_from_memory(data, (int) size, &nx, &ny, &nc, 3);
    if (!rgb) {
        set_error(error, std::string("the image could not be decoded: ") + stbi_failure_reason());
        return nullptr;
    }
    mtmd_bitmap * bmp = mtmd_bitmap_init((uint32_t) nx, (uint32_t) ny, rgb);
    stbi_image_free(rgb);
    mtmd_input_chunks * chunks = mtmd_input_chunks_init();
    const char *        marker = mtmd_default_marker();
    mtmd_input_text     text{ marker, strlen(marker), false, true };
    const mtmd_bitmap * bitmaps[1] = { bmp };
    int32_t             r          = -1;
    try {
        r = mtmd_tokenize(vision->mtmd, chunks, &text, bitmaps, 1);
    } catch (const std::exception & e) {
        set_error(error, std::string("the image could not be prepared: ") + e.what());
        r = -1;
    }
    mtmd_bitmap_free(bmp);
    if (r != 0) {
        mtmd_input_chunks_free(chunks);
        *status = 3;
        if (error && !*error) set_error(error, "libmtmd could not preprocess the image (status " + std::to_string(r) + ")");
        return nullptr;
    }
    *status = 0;
    return new llmatic_image{ chunks };
}

int32_t llmatic_image_n_parts(const llmatic_image * image) {
    return (int32_t) mtmd_input_chunks_size(image->chunks);
}

int32_t llmatic_image_part(const llmatic_image * image, int32_t i, int32_t * kind, int32_t * n_pos, int32_t * tokens,
                           int32_t cap) {
    const mtmd_input_chunk * c = mtmd_input_chunks_get(image->chunks, (size_t) i);
    if (!c) return -1;
    const auto type = mtmd_input_chunk_get_type(c);
    *kind           = type == MTMD_INPUT_CHUNK_TYPE_TEXT ? 0 : type == MTMD_INPUT_CHUNK_TYPE_IMAGE ? 1 : 2;
    *n_pos          = (int32_t) mtmd_input_chunk_get_n_pos(c);
    if (type == MTMD_INPUT_CHUNK_TYPE_TEXT) {
        size_t              n  = 0;
        const llama_token * tk = mtmd_input_chunk_get_tokens_text(c, &n);
        if (tokens) memcpy(tokens, tk, sizeof(int32_t) * (n < (size_t) cap ? n : (size_t) cap));
        return (int32_t) n;
    }
    return (int32_t) mtmd_input_chunk_get_n_tokens(c);
}

int32_t llmatic_image_encode(llmatic_vision * vision, const llmatic_image * image, int32_t i, float * out, int64_t cap) {
    const mtmd_input_chunk * c = mtmd_input_chunks_get(image->chunks, (size_t) i);
    if (!c || mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_TEXT) return -1;
    const int64_t need = (int64_t) mtmd_input_chunk_get_n_tokens(c) * llama_model_n_embd_inp(vision->model);
    if (need > cap) return -2;
    int32_t r = 0;
    try {
        r = mtmd_encode_chunk(vision->mtmd, c);
    } catch (const std::exception &) {
        r = -3;
    }
    if (r != 0) return r < 0 ? r : -3;
    memcpy(out, mtmd_get_output_embd(vision->mtmd), sizeof(float) * (size_t) need);
    return 0;
}

mtmd_input_chunk * llmatic_image_take_part(const llmatic_image * image, int32_t i) {
    const mtmd_input_chunk * c = mtmd_input_chunks_get(image->chunks, (size_t) i);
    return c ? mtmd_input_chunk_copy(c) : nullptr;
}

void llmatic_image_part_free(mtmd_input_chunk * part) {
    if (part) mtmd_input_chunk_free(part);
}

void llmatic_image_free(llmatic_image * image) {
    if (!image) return;
    mtmd_input_chunks_free(image->chunks);
    delete image;
}

int32_t llmatic_vision_decode(llmatic_vision * vision, llama_context * ctx, const mtmd_input_chunk * part,
                              const float * embd, int32_t n_past, int32_t seq, int32_t n_batch, int32_t * new_n_past) {
    llama_pos next = n_past;
    // the helper reads the embeddings only; its signature is not const
    int32_t   r    = mtmd_helper_decode_image_chunk(vision->mtmd, ctx, part, const_cast<float *>(embd), n_past, seq,
                                                    n_batch, &next, nullptr, nullptr);
    *new_n_past    = next;
    return r;
}

}  // extern "C"
