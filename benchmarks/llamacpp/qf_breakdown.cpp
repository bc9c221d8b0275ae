// Exact-byte memory breakdown for a llama_context (our helper, not llama.cpp code).
//
// Why: llama.cpp only logs buffer sizes in MiB with 2 decimals. Its staging C++ API
// (src/llama-ext.h: llama_get_memory_breakdown) and the hybrid memory class expose the exact
// byte counts; this shim flattens them into a C ABI that Python's ctypes can call.
// Built by build.sh against the vendored llama.cpp headers; never shipped in the wheel.
#include "llama.h"
#include "llama-ext.h"
#include "llama-memory-hybrid.h"
#include "llama-kv-cache.h"
#include "llama-memory-recurrent.h"
#include "ggml-backend.h"

#include <cstdint>
#include <cstring>

// rows of (model, context, compute) bytes per buffer type; names get buft names.
extern "C" int qf_memory_breakdown(const llama_context * ctx, char * names, int name_len,
                                   uint64_t * out, int max_rows) {
    int i = 0;
    for (const auto & [buft, mb] : llama_get_memory_breakdown(ctx)) {
        if (i >= max_rows) {
            break;
        }
        std::strncpy(names + i * name_len, ggml_backend_buft_name(buft), name_len - 1);
        names[i * name_len + name_len - 1] = 0;
        out[3 * i + 0] = mb.model;
        out[3 * i + 1] = mb.context;
        out[3 * i + 2] = mb.compute;
        ++i;
    }
    return i;
}

// out[0] = attention KV cache bytes, out[1] = recurrent state bytes; returns 1 if hybrid.
extern "C" int qf_cache_bytes(llama_context * ctx, uint64_t * out) {
    out[0] = out[1] = 0;
    auto * hyb = dynamic_cast<llama_memory_hybrid *>(llama_get_memory(ctx));
    if (hyb == nullptr) {
        return 0;
    }
    for (const auto & [buft, size] : hyb->get_mem_attn()->memory_breakdown()) {
        out[0] += size;
    }
    for (const auto & [buft, size] : hyb->get_mem_recr()->memory_breakdown()) {
        out[1] += size;
    }
    return 1;
}
