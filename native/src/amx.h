// amx.h: what llmatic's AMX kernels (qgemm.cpp, qgemm_k.cpp) share: the tile
// instructions, the tile configuration and the check that a process may use
// them. x86-64 with GCC or Clang only; include after <immintrin.h>.
#pragma once

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace llmatic_amx {

// GCC's AMX intrinsics are asm statements that do not tell it they read or
// write memory (GCC 12 dropped the stores to ggml's tile configuration for
// that reason), so the tile instructions here are written with a "memory"
// clobber.
#define AMX_TILE_LOAD(t, base, stride)                                                                     \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t : : "r"((const void *) (base)), "r"((int64_t) (stride)) \
                     : "memory")
#define AMX_TILE_STORE(t, base, stride)                                                                    \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" : : "r"((void *) (base)), "r"((int64_t) (stride))   \
                     : "memory")
#define AMX_TILE_ZERO(t)         __asm__ volatile("tilezero %%tmm" #t : : : "memory")
#define AMX_TILE_DPBUSD(c, a, b) __asm__ volatile("tdpbusd %%tmm" #b ", %%tmm" #a ", %%tmm" #c : : : "memory")
#define AMX_TILE_DPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c : : : "memory")

struct TileConfig {
    uint8_t  palette      = 0;
    uint8_t  start_row    = 0;
    uint8_t  reserved[14] = {};
    uint16_t colsb[16]    = {};
    uint8_t  rows[16]     = {};
};
static_assert(sizeof(TileConfig) == 64, "AMX tile configuration");

inline void tile_config_load(const TileConfig & c) {
    __asm__ volatile("ldtilecfg %0" : : "m"(c) : "memory");
}

inline void tile_config_store(TileConfig & c) {
    __asm__ volatile("sttilecfg %0" : "=m"(c) : : "memory");
}

inline void tile_release() {
    __asm__ volatile("tilerelease" : : : "memory");
}

// The caller's tile configuration (ggml's AMX code assumes its own stays
// loaded between its calls), saved at construction and put back at the end.
class TileScope {
  public:
    TileScope() { tile_config_store(saved_); }

    ~TileScope() {
        if (saved_.palette == 0) tile_release();
        else tile_config_load(saved_);
    }

    TileScope(const TileScope &)             = delete;
    TileScope & operator=(const TileScope &) = delete;

  private:
    TileConfig saved_;
};

// AMX runs only where the CPU has it, the OS saves its registers (XCR0 bits 17
// and 18) and Linux lets this process use them (arch_prctl, as ggml asks too)
inline bool usable() {
#if defined(__linux__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 25) & 1)) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) != 3) return false;
    constexpr long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

}  // namespace llmatic_amx
