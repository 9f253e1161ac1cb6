/* cusim_impl.h: what the emulator's source files share, private to tests/cusim/:
 * the state of one launch (its fibers, warps, ready queue, mbarriers), the
 * device-wide state (architecture, limits, the sticky error) and the few
 * functions one file calls in another.
 *   cusim_sched.cc    fibers, context switching, barriers and warp exchanges,
 *                     launches and faults inside kernels
 *   cusim_sm80.cc     cp.async, ldmatrix, mma.sync
 *   cusim_sm90a.cc    mbarrier, TMA, wgmma, the tensor-map encoder
 *   cusim_runtime.cc  the CUDA runtime calls, device properties, memory
 * See cusim.h for the model and the checks.
 */
#ifndef MOAT_CUSIM_IMPL_H
#define MOAT_CUSIM_IMPL_H

#include "cusim.h"
#include "include/cuda.h"

#include <mutex>
#include <unordered_map>
#include <vector>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

static const size_t k_page = 4096;
static const size_t k_stack = 256 * 1024;          /* per fiber */
static const size_t k_smem_default = 48 * 1024;    /* per block without the opt-in */

/* a saved execution context (cusim_sched.cc switches between them) */
#if defined(__x86_64__)
struct ctx {
    void *sp;
};
#else
struct ctx {
    ucontext_t uc;
};
#endif

/* ---- one launch: fibers, barriers ---- */

enum wait_kind { W_NONE, W_BLOCK, W_WARP };

struct cp_op {
    void *dst;
    const void *src;
    bool pred;
    int group;
};

struct wg_op {
    float *d;
    uint64_t da, db;
    int n;
    bool bf16;
    int group;
};

struct fiber {
    ctx c;
    char *stack;
    uint3 tid;
    int id, warp, lane;
    bool done;
    wait_kind wait;
    unsigned wait_mask;
    std::vector<cp_op> cp;
    int committed;
    uint64_t nshfl;  /* shuffles executed: the phase of their buffers, and a stamp */
    uint64_t nfull;  /* ldmatrix / mma.sync executed: the phase of their buffers, and a stamp */
    std::vector<wg_op> wg; /* wgmma issued, not yet retired by wgmma.wait_group */
    uint64_t *spin_bar;    /* the mbarrier this thread waits on, or NULL */
    uint64_t seen_epoch;   /* the last epoch in which this waiter found nothing */
    bool seen_valid;
    int wg_committed;
};

struct warp_bar {
    unsigned mask, arrived;
};

struct warp_state {
    unsigned all, live;
    std::vector<warp_bar> bars;
    unsigned full_arrived; /* lanes at a full-mask collective (the common case) */
    /* exchange buffers, two of each: a lane can be one collective ahead of the
     * others, never two (it would have to pass a barrier they have not reached) */
    uint64_t slots[2][32], sseq[2][32]; /* shuffle values and stamps */
    float A[2][16][16], B[2][16][8]; /* the operands of one mma.sync, from all lanes */
    const void *addr[2][32];
    uint64_t seq[2][32]; /* each lane's stamp for the current ldmatrix / mma.sync */
};

/* the ready queue: a ring of fiber ids (a fiber is in it at most once) */
struct ready_ring {
    std::vector<int> buf;
    size_t head = 0, count = 0;
    void reset(size_t cap)
    {
        buf.assign(cap, 0);
        head = count = 0;
    }
    bool empty() const { return count == 0; }
    void push(int id)
    {
        buf[(head + count++) % buf.size()] = id;
    }
    uint64_t rng = 0; /* 0: first in, first out; else xorshift64 state: a random pick */
    int pop()
    {
        if (rng != 0 && count > 1) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t r = (head + (size_t)(rng % count)) % buf.size();
            int t = buf[r];
            buf[r] = buf[head];
            buf[head] = t;
        }
        int id = buf[head];
        head = (head + 1) % buf.size();
        count--;
        return id;
    }
    /* to_front: move the queued ids for which pick(id) holds to the front, in order */
    template <typename F> void to_front(F pick)
    {
        std::vector<int> first, rest;
        for (size_t i = 0; i < count; i++) {
            int id = buf[(head + i) % buf.size()];
            (pick(id) ? first : rest).push_back(id);
        }
        head = 0;
        count = 0;
        for (int id : first)
            push(id);
        for (int id : rest)
            push(id);
    }
};

struct launch_state {
    const char *name;
    void (*body)(void *);
    void *arg;
    int nthreads, live, arrived, ndone;
    std::vector<fiber> f;
    std::vector<warp_state> w;
    ready_ring ready;
    fiber *cur;
    ctx main;
    bool failed;
    char *smem, *smem_map;
    size_t smem_bytes, smem_map_len;
    uint64_t block_serial;
    std::unordered_map<void *, std::pair<uint64_t, size_t>> statics; /* static smem: serial, size */
    bool cp_eager;
    const char *barrier_file; /* source position of the __syncthreads being gathered */
    int barrier_line;
    struct mbar {
        uint32_t count, pending;
        int64_t tx; /* pending transaction bytes: may go negative when bytes land first */
        uint64_t phases; /* completed phases: the current phase's parity is phases & 1 */
    };
    std::unordered_map<uint64_t *, mbar> mbars;
    uint64_t epoch;       /* bumped by every change a waiting thread could be waiting for */
    uint64_t stale_epoch; /* the epoch stale_spinners counts for */
    int spinning;         /* threads inside an mbarrier wait (all in the ready queue) */
    int stale_spinners;   /* of those, how many found nothing changed in this epoch */
    bool sched_fifo;
    uint64_t launch_serial;
    size_t static_bytes; /* static __shared__ seen in this launch */
};

/* the launch running on this host thread (NULL outside kernels) */
extern thread_local launch_state *t_ls;

/* cusim_sched.cc: wait until released (the fiber may already be queued) */
void block_here(fiber *f);

/* cusim_sm80.cc: whether [p, p + n) is shared memory of the running block;
 * a b16 bit pattern as f32 */
bool in_smem(const void *p, size_t n);
namespace cusim {
float b16_to_float(uint32_t bits, bool bf16);
}

/* cusim_runtime.cc: the emulated architecture (sm_90a or sm_80), its opt-in
 * shared memory per block, the sticky error of a failed kernel, per-kernel
 * dynamic shared memory limits (under g_mu), the last launch error */
bool arch_sm90a(void);
size_t smem_optin(void);
cudaError_t sticky(void);
void set_sticky(void);
extern std::mutex g_mu;
extern std::unordered_map<const void *, int> g_smem_attr;
extern thread_local cudaError_t t_last;
extern "C" const char *const cusim_cp_async_default;

#endif
