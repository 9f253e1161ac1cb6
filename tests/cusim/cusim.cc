/* cusim.cc: the CPU emulator behind cusim.h: fibers and their scheduler, the
 * block and warp barriers, the sm_80 instructions (cp.async, ldmatrix,
 * mma.sync), and the CUDA runtime calls the cuda backend makes.
 * See cusim.h for the model and the checks.
 */
#include "cusim.h"
#include "include/cuda.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

thread_local uint3 cusim_threadIdx, cusim_blockIdx;

static float g_half_table[65536];
const float *const cusim_half_table = g_half_table;
__attribute__((constructor)) static void half_table_init(void)
{
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t b = (uint16_t)i;
        _Float16 h;
        memcpy(&h, &b, 2);
        g_half_table[i] = (float)h;
    }
}
thread_local dim3 cusim_blockDim, cusim_gridDim;

/* ---- context switching ----
 * x86-64 (System V): cusim_ctx_switch saves the callee-saved registers on the
 * current stack, stores the stack pointer in *save and resumes the context
 * whose stack pointer is load (MXCSR and the x87 control word are not switched:
 * no kernel changes rounding modes). A new context's
 * stack is laid out so that the first switch "returns" into cusim_ctx_start,
 * which calls r13(r12). Elsewhere: ucontext (slower: a syscall per switch). */
#if defined(__x86_64__)
extern "C" void cusim_ctx_switch(void **save, void *load);
extern "C" void cusim_ctx_start(void);
asm(".text\n"
    ".globl cusim_ctx_switch\n"
    ".type cusim_ctx_switch,@function\n"
    "cusim_ctx_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size cusim_ctx_switch, .-cusim_ctx_switch\n"
    ".globl cusim_ctx_start\n"
    ".type cusim_ctx_start,@function\n"
    "cusim_ctx_start:\n"
    "  movq %r12, %rdi\n  callq *%r13\n  ud2\n"
    ".size cusim_ctx_start, .-cusim_ctx_start\n");

struct ctx {
    void *sp;
};
static void ctx_make(ctx *c, char *stack, size_t size, void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    /* after the 6 pops and ret, rsp = top: 16-byte aligned before cusim_ctx_start's call */
    uint64_t *sp = (uint64_t *)(top - 56);
    sp[0] = 0;                       /* r15 */
    sp[1] = 0;                       /* r14 */
    sp[2] = (uint64_t)(uintptr_t)fn;  /* r13 */
    sp[3] = (uint64_t)(uintptr_t)arg; /* r12 */
    sp[4] = 0;                       /* rbx */
    sp[5] = 0;                       /* rbp */
    sp[6] = (uint64_t)(uintptr_t)cusim_ctx_start;
    c->sp = sp;
}
static inline void ctx_swap(ctx *from, ctx *to)
{
    cusim_ctx_switch(&from->sp, to->sp);
}
#else
#include <ucontext.h>
struct ctx {
    ucontext_t uc;
};
static void ctx_make(ctx *c, char *stack, size_t size, void (*fn)(void *), void *arg)
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)())fn, 1, arg); /* N.B. one pointer argument: LP64 only */
}
static inline void ctx_swap(ctx *from, ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
#endif

/* ---- device-wide state ---- */

static const size_t k_page = 4096;
static const size_t k_stack = 256 * 1024;
static const size_t k_smem_default = 48 * 1024;

/* the emulated architecture: CUSIM_ARCH (sm_80 or sm_90a), else the program's
 * default: sm_80, or sm_90a where tests/cusim/arch_sm90a.cc is linked in */
extern "C" __attribute__((weak)) const char *const cusim_arch_default = "sm_80";

/* when cp.async lands: CUSIM_CP_ASYNC (wait or eager), else the program's
 * default: at the issuing thread's wait, or at issue where
 * tests/cusim/cp_eager.cc is linked in */
extern "C" __attribute__((weak)) const char *const cusim_cp_async_default = "wait";

static bool arch_sm90a(void)
{
    static const bool v = [] {
        const char *a = getenv("CUSIM_ARCH");
        return strcmp(a != NULL ? a : cusim_arch_default, "sm_90a") == 0;
    }();
    return v;
}

/* opt-in maximum of dynamic shared memory per block: 163 KiB on sm_80, 227 KiB on sm_90 */
static size_t smem_optin(void)
{
    return arch_sm90a() ? 232448 : 166912;
}
static const size_t k_global_mem = (size_t)16 << 30;

static std::mutex g_mu; /* guards the maps and the sticky error */
/* One kernel runs at a time in the process: __shared__ variables are statics,
 * one copy for all launches, so launches from several host threads (TP ranks
 * in threads) take turns. */
static std::mutex g_device;
struct alloc {
    char *map;
    size_t len, bytes;
};
static std::map<uintptr_t, alloc> g_allocs;          /* by user pointer */
static std::unordered_map<const void *, int> g_smem_attr; /* kernel -> max dynamic smem */
static cudaError_t g_sticky = cudaSuccess;
static thread_local cudaError_t t_last = cudaSuccess;

static cudaError_t sticky(void)
{
    std::lock_guard<std::mutex> l(g_mu);
    return g_sticky;
}

static void set_sticky(void)
{
    std::lock_guard<std::mutex> l(g_mu);
    g_sticky = cudaErrorLaunchFailure;
}

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

static thread_local launch_state *t_ls;

/* the fiber stacks of one host thread (k_stack each, a guard page below),
 * unmapped when the thread ends (TP ranks run in threads) */
struct stack_pool {
    std::vector<char *> v;
    size_t size() const { return v.size(); }
    char *operator[](size_t i) const { return v[i]; }
    void push_back(char *p) { v.push_back(p); }
    ~stack_pool()
    {
        for (char *p : v)
            munmap(p - k_page, k_stack + k_page);
    }
};
static thread_local stack_pool t_stacks;

static char *stack_get(size_t i)
{
    while (t_stacks.size() <= i) {
        char *m = (char *)mmap(NULL, k_stack + k_page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "cusim: cannot map a fiber stack: %s\n", strerror(errno));
            abort();
        }
        mprotect(m, k_page, PROT_NONE); /* overflow faults instead of corrupting */
        t_stacks.push_back(m + k_page);
    }
    return t_stacks[i];
}

static void where_is(char *buf, size_t n)
{
    launch_state *ls = t_ls;
    if (ls == NULL || ls->cur == NULL) {
        snprintf(buf, n, "host");
        return;
    }
    uint3 t = ls->cur->tid;
    snprintf(buf, n, "%s block (%u,%u,%u) thread (%u,%u,%u)", ls->name, cusim_blockIdx.x,
             cusim_blockIdx.y, cusim_blockIdx.z, t.x, t.y, t.z);
}

namespace cusim {

void fail(const char *fmt, ...)
{
    char at[256], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    where_is(at, sizeof at);
    fprintf(stderr, "cusim: %s: %s\n", at, msg);
    set_sticky();
    launch_state *ls = t_ls;
    if (ls == NULL || ls->cur == NULL)
        abort(); /* not inside a kernel: an emulator bug */
    ls->failed = true;
    fiber *f = ls->cur;
    ctx_swap(&f->c, &ls->main); /* never resumed */
    abort();
}

} // namespace cusim

/* switch_next: run the next ready fiber (or return to the scheduler when none
 * is ready: the block is finished or deadlocked). from: where to save the
 * current context. Returns when this fiber is resumed. */
static void switch_next(fiber *f, ctx *from)
{
    launch_state *ls = t_ls;
    while (!ls->ready.empty()) {
        fiber *n = &ls->f[(size_t)ls->ready.pop()];
        if (n->done)
            continue;
        if (n == f)
            return; /* this one is next: go on */
        ls->cur = n;
        cusim_threadIdx = n->tid;
        ctx_swap(from, &n->c);
        return;
    }
    ls->cur = NULL;
    ctx_swap(from, &ls->main);
}

/* block_here: wait until released (the fiber may already be queued) */
static void block_here(fiber *f)
{
    switch_next(f, &f->c);
}

static void release_block_barrier(launch_state *ls)
{
    if (ls->arrived == 0 || ls->arrived < ls->live)
        return;
    for (fiber &g : ls->f)
        if (!g.done && g.wait == W_BLOCK) {
            g.wait = W_NONE;
            ls->ready.push(g.id);
        }
    ls->arrived = 0;
}

static void release_warp_full(launch_state *ls, int wi)
{
    warp_state &w = ls->w[wi];
    if (w.full_arrived == 0 || ((w.full_arrived | ~w.live) & w.all) != w.all)
        return;
    for (int l = 0; l < 32; l++) {
        if (!(w.full_arrived & (1u << l)))
            continue;
        fiber &g = ls->f[(size_t)wi * 32 + l];
        g.wait = W_NONE;
        ls->ready.push(g.id);
    }
    w.full_arrived = 0;
}

static void release_warp_bars(launch_state *ls, int wi)
{
    release_warp_full(ls, wi);
    warp_state &w = ls->w[wi];
    for (size_t i = 0; i < w.bars.size();) {
        warp_bar &b = w.bars[i];
        if (((b.arrived | ~w.live) & b.mask & w.all) == (b.mask & w.all)) {
            for (int l = 0; l < 32; l++) {
                if (!(b.mask & (1u << l)) || !(w.all & (1u << l)))
                    continue;
                fiber &g = ls->f[(size_t)wi * 32 + l];
                if (!g.done && g.wait == W_WARP && g.wait_mask == b.mask) {
                    g.wait = W_NONE;
                    ls->ready.push(g.id);
                }
            }
            w.bars.erase(w.bars.begin() + (long)i);
        } else {
            i++;
        }
    }
}

static void fiber_exit(launch_state *ls, fiber *f)
{
    ls->epoch++;
    f->done = true;
    ls->ndone++;
    ls->live--;
    ls->w[f->warp].live &= ~(1u << f->lane);
    release_block_barrier(ls);
    release_warp_bars(ls, f->warp);
}

static void fiber_main(void *arg)
{
    fiber *f = (fiber *)arg;
    launch_state *ls = t_ls;
    ls->body(ls->arg);
    if (!f->wg.empty())
        cusim::fail("exits with %zu wgmma not retired by wgmma.wait_group", f->wg.size());
    fiber_exit(ls, f);
    ctx dead;
    switch_next(f, &dead); /* never resumed */
    abort();
}

namespace cusim {

void sync_block(const char *file, int line)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    /* every thread of one barrier must be at the same __syncthreads ("allowed in
     * conditional code but only if the conditional evaluates identically across
     * the entire thread block", CUDA C++ Programming Guide): the same source line,
     * whatever copies of it the compiler made */
    if (ls->arrived == 0) {
        ls->barrier_file = file;
        ls->barrier_line = line;
    } else if (line != ls->barrier_line || strcmp(file, ls->barrier_file) != 0) {
        fail("__syncthreads at %s:%d while %d thread(s) wait at another one (%s:%d)", file, line,
             ls->arrived, ls->barrier_file, ls->barrier_line);
    }
    f->wait = W_BLOCK;
    ls->epoch++;
    ls->arrived++;
    release_block_barrier(ls); /* the last to arrive queues everyone, itself included */
    block_here(f);
}

void sync_warp(unsigned mask)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    unsigned bit = 1u << f->lane;
    if (!(mask & bit))
        fail("warp collective with mask 0x%08x that does not include the calling lane %d", mask,
             f->lane);
    ls->epoch++;
    /* N.B. lanes of mask that have exited are not waited for (CUDA C++ Programming
     * Guide, "Warp __sync Intrinsic Constraints"); reading from one is the error
     * (shfl_exchange), and ldmatrix / mma need every lane (full_warp_check) */
    f->wait = W_WARP;
    f->wait_mask = mask;
    if (mask == 0xffffffffu) {
        w.full_arrived |= bit;
        release_warp_full(ls, f->warp); /* the last to arrive queues all, itself too */
        block_here(f);
        return;
    }
    warp_bar *b = NULL;
    for (warp_bar &x : w.bars)
        if (x.mask == mask)
            b = &x;
    if (b == NULL) {
        w.bars.push_back(warp_bar{mask, 0});
        b = &w.bars.back();
    }
    if (b->arrived & bit)
        fail("lane %d arrived twice at a warp collective (mask 0x%08x)", f->lane, mask);
    b->arrived |= bit;
    f->wait = W_WARP;
    f->wait_mask = mask;
    if (((b->arrived | ~w.live) & mask & w.all) == (mask & w.all))
        release_warp_bars(ls, f->warp); /* queues the mask's lanes, this one too */
    block_here(f);
}

int lane()
{
    return t_ls->cur->lane;
}

uint64_t shfl_exchange(unsigned mask, uint64_t bits, int src, const char *what)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    uint64_t mine = ++f->nshfl;
    unsigned ph = (unsigned)(mine & 1);
    w.slots[ph][f->lane] = bits;
    w.sseq[ph][f->lane] = mine;
    sync_warp(mask);
    if (src < 0 || src > 31 || !(mask & (1u << src)))
        fail("%s reads lane %d, outside mask 0x%08x", what, src, mask);
    if (w.sseq[ph][src] != mine)
        fail("%s reads lane %d, which has exited, is absent or is at another shuffle: "
             "undefined value", what, src);
    return w.slots[ph][src];
}


/* full_warp_op: the exchange of an ldmatrix or mma.sync, which are undefined
 * unless all 32 lanes execute them: each lane stamps its count of such
 * operations, all meet, and every stamp must match (a lane that has exited, is
 * absent or is elsewhere leaves a stale one). Returns the exchange phase. */
static unsigned full_warp_op(void)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    uint64_t mine = ++f->nfull;
    unsigned ph = (unsigned)(mine & 1);
    ls->w[f->warp].seq[ph][f->lane] = mine;
    return ph;
}

static void full_warp_check(unsigned ph, const char *what)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    for (int l = 0; l < 32; l++)
        if (w.seq[ph][l] != f->nfull)
            fail("%s: lane %d did not take part (exited, absent or at another one): every lane "
                 "must execute it", what, l);
}

void *dynamic_smem()
{
    return t_ls->smem;
}

void poison_shared(void *p, size_t bytes)
{
    launch_state *ls = t_ls;
    bool fresh = ls->statics.find(p) == ls->statics.end();
    auto &e = ls->statics[p];
    if (fresh) {
        /* static shared memory counts against the block's budget too: at most
         * 48 KiB of it, and static + dynamic within the opt-in maximum */
        ls->static_bytes += bytes;
        if (ls->static_bytes > k_smem_default || ls->static_bytes + ls->smem_bytes > smem_optin())
            fail("%zu bytes of static shared memory (+ %zu dynamic) exceed the block's limit",
                 ls->static_bytes, ls->smem_bytes);
    }
    if (e.first != ls->block_serial) {
        e.first = ls->block_serial;
        e.second = bytes;
        memset(p, 0xFF, bytes);
    }
}

} // namespace cusim

static bool in_smem(const void *p, size_t n)
{
    launch_state *ls = t_ls;
    const char *c = (const char *)p;
    if (c >= ls->smem && c + n <= ls->smem + ls->smem_bytes)
        return true;
    for (auto &e : ls->statics) {
        const char *s = (const char *)e.first;
        if (c >= s && c + n <= s + e.second.second)
            return true;
    }
    return false;
}

static void cp_land(const cp_op &op)
{
    if (op.pred)
        memcpy(op.dst, op.src, 16);
    else
        memset(op.dst, 0, 16);
}

namespace cusim {

void cp_async16(void *smem, const void *gmem, bool pred)
{
    launch_state *ls = t_ls;
    if ((uintptr_t)smem & 15)
        fail("cp.async destination %p not 16-byte aligned", smem);
    if (!in_smem(smem, 16))
        fail("cp.async destination %p outside shared memory (dynamic [%p, %p))", smem,
             (void *)ls->smem, (void *)(ls->smem + ls->smem_bytes));
    if (pred && ((uintptr_t)gmem & 15))
        fail("cp.async source %p not 16-byte aligned", gmem);
    cp_op op{smem, gmem, pred, ls->cur->committed};
    if (ls->cp_eager)
        cp_land(op);
    else
        ls->cur->cp.push_back(op);
}

void cp_async_commit()
{
    t_ls->cur->committed++;
}

void cp_async_wait(int n)
{
    fiber *f = t_ls->cur;
    size_t keep = 0;
    for (size_t i = 0; i < f->cp.size(); i++) {
        if (f->cp[i].group < f->committed - n)
            cp_land(f->cp[i]);
        else
            f->cp[keep++] = f->cp[i];
    }
    f->cp.resize(keep);
}

/* ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8j..8j+7 give the row
 * addresses of matrix j (8 rows of 8 b16). Without .trans lane l receives, of
 * each matrix, row l/4, columns 2(l%4) and 2(l%4)+1 (low half = lower column);
 * with .trans, row and column swap: (row 2(l%4), col l/4) and (row 2(l%4)+1,
 * col l/4). */
void ldmatrix_x4(uint32_t r[4], const void *smem, bool trans)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    if ((uintptr_t)smem & 15)
        fail("ldmatrix row address %p not 16-byte aligned", smem);
    if (!in_smem(smem, 16))
        fail("ldmatrix row address %p outside shared memory", smem);
    unsigned ph = full_warp_op();
    const void *const *addr = w.addr[ph];
    w.addr[ph][f->lane] = smem;
    sync_warp(0xffffffffu);
    full_warp_check(ph, "ldmatrix");
    int l = f->lane;
    for (int j = 0; j < 4; j++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *row = (const uint16_t *)addr[j * 8 + l / 4];
            lo = row[2 * (l % 4)];
            hi = row[2 * (l % 4) + 1];
        } else {
            lo = ((const uint16_t *)addr[j * 8 + 2 * (l % 4)])[l / 4];
            hi = ((const uint16_t *)addr[j * 8 + 2 * (l % 4) + 1])[l / 4];
        }
        r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
}

static float b16_to_float(uint32_t bits, bool bf16)
{
    if (bf16) {
        __nv_bfloat16 b;
        b.__x = (uint16_t)bits;
        return __bfloat162float(b);
    }
    __half h;
    h.__x = (uint16_t)bits;
    return __half2float(h);
}

/* mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D = A (16x16) B (16x8) + C.
 * g = lane/4, t = lane%4. A: reg i of lane (g, t) holds row g + 8 (i%2), cols
 * 2t + 8 (i/2) (+1 in the high half). B: reg i holds rows (k) 2t + 8i (+1),
 * column (n) g. C/D: element e at row g + 8 (e/2), column 2t + e%2.
 * Each lane places its operands into the warp's A and B matrices (as f32,
 * exact), all meet, each computes its four elements of D in fp32. */
void mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2], bool bf16)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    int g = f->lane / 4, t = f->lane % 4;
    unsigned ph = full_warp_op();
    float(*A)[16] = w.A[ph], (*B)[8] = w.B[ph];
    for (int i = 0; i < 4; i++)
        for (int h = 0; h < 2; h++)
            A[g + 8 * (i % 2)][2 * t + 8 * (i / 2) + h] = b16_to_float(a[i] >> (16 * h), bf16);
    for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++)
            B[2 * t + 8 * i + h][g] = b16_to_float(b[i] >> (16 * h), bf16);
    sync_warp(0xffffffffu);
    full_warp_check(ph, "mma.sync");
    for (int e = 0; e < 4; e++) {
        int row = g + 8 * (e / 2), col = 2 * t + e % 2;
        float acc = d[e];
        for (int k = 0; k < 16; k++)
            acc += A[row][k] * B[k][col];
        d[e] = acc;
    }
}


/* ---- sm_90a ---- */

size_t shared_offset(const void *p)
{
    launch_state *ls = t_ls;
    const char *c = (const char *)p, *w = ls->smem_map + k_page;
    if (c < w || c > ls->smem + ls->smem_bytes)
        fail("shared address of %p: not in the dynamic shared memory window", p);
    return (size_t)(c - w);
}

/* swizzle128: the 128-byte swizzle on a shared-memory offset: the 16-byte chunk
 * (bits 4-6) XOR the row within 8 rows of 128 bytes (bits 7-9) */
static inline size_t swizzle128(size_t off)
{
    return off ^ (((off >> 7) & 7) << 4);
}

static launch_state::mbar *mbar_get(uint64_t *bar, const char *what)
{
    launch_state *ls = t_ls;
    auto it = ls->mbars.find(bar);
    if (it == ls->mbars.end())
        fail("%s on %p, which no mbarrier.init of this block initialised", what, (void *)bar);
    return &it->second;
}

/* mbar_check_phase: complete the phase when nothing is pending; the threads
 * waiting on it then run first, before the thread that completed it goes on
 * (the order most likely to expose a buffer released too early) */
static void mbar_check_phase(uint64_t *bar, launch_state::mbar *m)
{
    if (m->pending == 0 && m->tx == 0) {
        m->phases++;
        m->pending = m->count;
        launch_state *ls = t_ls;
        ls->ready.to_front([&](int id) { return ls->f[(size_t)id].spin_bar == bar; });
        ls->ready.push(ls->cur->id);
        block_here(ls->cur);
    }
}

void mbar_init(uint64_t *bar, uint32_t count)
{
    launch_state *ls = t_ls;
    if (((uintptr_t)bar & 7) || count == 0)
        fail("mbarrier.init: %p not 8-byte aligned or count %u", (void *)bar, count);
    ls->mbars[bar] = launch_state::mbar{count, count, 0, 0};
    ls->epoch++;
}

void mbar_arrive(uint64_t *bar, uint32_t tx_bytes)
{
    launch_state *ls = t_ls;
    launch_state::mbar *m = mbar_get(bar, "mbarrier.arrive");
    if (m->pending == 0)
        fail("mbarrier.arrive on %p: more arrivals than its count %u in one phase", (void *)bar,
             m->count);
    m->tx += tx_bytes;
    if (m->tx > (1 << 20) - 1)
        fail("mbarrier.expect_tx on %p: tx-count %lld past 2^20 - 1", (void *)bar,
             (long long)m->tx);
    m->pending--;
    ls->epoch++;
    mbar_check_phase(bar, m);
}

void mbar_wait(uint64_t *bar, uint32_t parity)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    bool counted = false;
    while ((mbar_get(bar, "mbarrier.try_wait")->phases & 1) == (parity & 1)) {
        /* the phase of this parity is the current one: not complete; let others run.
         * Deadlock: every ready thread is such a waiter and each has looked again
         * since the last change anything could make */
        if (!counted) {
            counted = true;
            ls->spinning++;
        }
        if (ls->stale_epoch != ls->epoch) {
            ls->stale_epoch = ls->epoch;
            ls->stale_spinners = 0;
        }
        if (f->seen_epoch != ls->epoch || !f->seen_valid) {
            f->seen_epoch = ls->epoch;
            f->seen_valid = true;
            ls->stale_spinners++;
        }
        if (ls->stale_spinners == ls->spinning && (size_t)ls->spinning == ls->ready.count + 1)
            fail("deadlock: waiting on mbarrier %p (parity %u) that no thread or copy will "
                 "complete", (void *)bar, parity);
        f->spin_bar = bar;
        ls->ready.push(f->id);
        block_here(f);
        f->spin_bar = NULL;
    }
    if (counted)
        ls->spinning--;
    f->seen_valid = false;
}

/* the tensor map as cusim_tensor_map_encode stores it in CUtensorMap */
struct tmap {
    uint64_t magic;
    const char *base;
    uint64_t dims[2], stride; /* elements; bytes between rows */
    uint32_t box[2], esize, swizzle128;
};
static const uint64_t k_tmap_magic = 0x43555349'4d544d41ull;
static_assert(sizeof(tmap) <= sizeof(CUtensorMap), "tensor map fits");

void tma_load_2d(void *smem, const void *tm, uint64_t *bar, int c0, int c1)
{
    launch_state *ls = t_ls;
    const tmap *t = (const tmap *)tm;
    if (t->magic != k_tmap_magic)
        fail("cp.async.bulk.tensor: %p is not a tensor map from cuTensorMapEncodeTiled", tm);
    size_t row = (size_t)t->box[0] * t->esize, bytes = row * t->box[1];
    size_t off = shared_offset(smem);
    if (off % 128) /* the swizzle follows the absolute address: 128 is enough */
        fail("cp.async.bulk.tensor: destination offset %zu not 128-byte aligned", off);
    if (!in_smem(smem, bytes))
        fail("cp.async.bulk.tensor: %zu bytes at %p leave shared memory", bytes, smem);
    char *w = ls->smem_map + k_page;
    for (uint32_t r = 0; r < t->box[1]; r++)
        for (uint32_t c = 0; c < t->box[0]; c++) {
            int64_t gx = (int64_t)c0 + c, gy = (int64_t)c1 + r;
            size_t o = off + r * row + (size_t)c * t->esize;
            char *dst = w + (t->swizzle128 ? swizzle128(o) : o);
            if (gx >= 0 && gy >= 0 && (uint64_t)gx < t->dims[0] && (uint64_t)gy < t->dims[1])
                memcpy(dst, t->base + (uint64_t)gy * t->stride + (uint64_t)gx * t->esize, t->esize);
            else
                memset(dst, 0, t->esize); /* out of bounds: zero fill, bytes still counted */
        }
    launch_state::mbar *m = mbar_get(bar, "cp.async.bulk.tensor complete_tx");
    m->tx -= (int64_t)bytes;
    if (m->tx < -((1 << 20) - 1))
        fail("cp.async.bulk.tensor: tx-count of mbarrier %p below -(2^20 - 1)", (void *)bar);
    ls->epoch++;
    mbar_check_phase(bar, m);
}

/* wgmma.mma_async.sync.aligned.m64n128k16.f32.{bf16,f16}, A and B K-major in
 * smem (imm-trans 0), scale-d 1: D (64x128) += A (64x16) B^T (B 128x16).
 * Descriptor ("Matrix Descriptor Format"): bits 0-13 start address >> 4, 16-29
 * leading byte offset >> 4, 32-45 stride byte offset >> 4, 62-63 swizzle (1 =
 * 128B). K-major with 128-byte swizzle: row r, element k at start + (r / 8) *
 * SBO + (r % 8) * 128 + 2k, then swizzled (the leading offset is unused).
 * Accumulators: thread (warp w of the warpgroup, g = lane/4, t = lane%4) holds
 * d[4i + e] = D[16w + g + 8 (e / 2)][8i + 2t + e % 2]. */
static float wg_elem(const char *w, uint64_t desc, int r, int k, bool bf16)
{
    size_t start = (size_t)(desc & 0x3FFF) << 4, sbo = (size_t)((desc >> 32) & 0x3FFF) << 4;
    size_t off = swizzle128(start + (size_t)(r / 8) * sbo + (size_t)(r % 8) * 128 + 2 * (size_t)k);
    uint16_t v;
    memcpy(&v, w + off, 2);
    return b16_to_float(v, bf16);
}

/* wg_exec: one wgmma as it completes: D += A B^T from smem as it is now */
static void wg_exec(const wg_op &op)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    const char *w = ls->smem_map + k_page;
    int tw = f->id % 128, wi = tw / 32, g = (tw % 32) / 4, t = tw % 4;
    float a[2][16], b[2][16];
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 16; k++)
            a[h][k] = wg_elem(w, op.da, 16 * wi + g + 8 * h, k, op.bf16);
    for (int i = 0; i < op.n / 8; i++) {
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 16; k++)
                b[c][k] = wg_elem(w, op.db, 8 * i + 2 * t + c, k, op.bf16);
        for (int e = 0; e < 4; e++) {
            float acc = op.d[4 * i + e];
            for (int k = 0; k < 16; k++)
                acc += a[e / 2][k] * b[e % 2][k];
            op.d[4 * i + e] = acc;
        }
    }
}

/* wgmma m64nNk16 (N = 128 or 256): queued, and executed when wgmma.wait_group
 * retires its group, reading shared memory then: the latest a GPU may read it,
 * so a stage released before its wgmma completed is overwritten first */
static void wgmma_issue(float *d, uint64_t da, uint64_t db, int n, bool bf16)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    for (int o = 0; o < 2; o++) {
        uint64_t desc = o == 0 ? da : db;
        if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0)
            fail("wgmma: descriptor 0x%016llx: only 128-byte swizzle with base offset 0 is "
                 "emulated", (unsigned long long)desc);
        size_t start = (size_t)(desc & 0x3FFF) << 4, sbo = (size_t)((desc >> 32) & 0x3FFF) << 4;
        size_t rows = o == 0 ? 64 : (size_t)n, last = start + (rows / 8 - 1) * sbo + 8 * 128;
        if (last > (size_t)(ls->smem + ls->smem_bytes - (ls->smem_map + k_page)))
            fail("wgmma: operand at shared offset %zu (stride %zu) runs past shared memory", start,
                 sbo);
    }
    f->wg.push_back(wg_op{d, da, db, n, bf16, f->wg_committed});
}

void wgmma_m64n128k16(float d[64], uint64_t da, uint64_t db, bool bf16)
{
    wgmma_issue(d, da, db, 128, bf16);
}

void wgmma_m64n256k16(float d[128], uint64_t da, uint64_t db, bool bf16)
{
    wgmma_issue(d, da, db, 256, bf16);
}

void wgmma_commit()
{
    t_ls->cur->wg_committed++;
}

void wgmma_wait(int n)
{
    fiber *f = t_ls->cur;
    size_t keep = 0;
    std::vector<wg_op> ops;
    ops.swap(f->wg);
    for (const wg_op &op : ops) {
        if (op.group < f->wg_committed - n)
            wg_exec(op);
        else
            ops[keep++] = op;
    }
    ops.resize(keep);
    f->wg.swap(ops);
}

} // namespace cusim

/* ---- faults inside kernels ---- */

/* A fault inside a kernel kills the process with the signal, after a line naming
 * the kernel, block and thread: like a device fault, and never caught by a test
 * framework's handler (cmocka's would longjmp out of a fiber with the device
 * lock held). The handler is installed for the length of each launch only. */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    launch_state *ls = t_ls;
    if (ls != NULL && ls->cur != NULL) {
        char at[256];
        where_is(at, sizeof at);
        fprintf(stderr, "cusim: %s: %s at address %p (dynamic smem [%p, %p))\n", at,
                sig == SIGSEGV ? "memory fault" : "bus error", si->si_addr, (void *)ls->smem,
                (void *)(ls->smem + ls->smem_bytes));
    }
    signal(sig, SIG_DFL); /* returning re-executes the access: the process dies with sig */
}

struct fault_guard {
    struct sigaction old_segv, old_bus;
    fault_guard()
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    }
    ~fault_guard()
    {
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
    }
};

/* ---- launch ---- */

static void deadlock(launch_state *ls)
{
    int at_block = 0, at_warp = 0;
    unsigned mask = 0;
    for (fiber &f : ls->f) {
        if (f.done)
            continue;
        if (f.wait == W_BLOCK)
            at_block++;
        else {
            at_warp++;
            mask = f.wait_mask;
        }
    }
    fprintf(stderr, "cusim: %s block (%u,%u,%u): deadlock: %d thread(s) wait at __syncthreads, "
            "%d at warp collectives (one with mask 0x%08x), %d exited\n", ls->name,
            cusim_blockIdx.x, cusim_blockIdx.y, cusim_blockIdx.z, at_block, at_warp, mask,
            ls->ndone);
    set_sticky();
    ls->failed = true;
}

static void run_block(launch_state *ls)
{
    int n = ls->nthreads;
    ls->f.assign((size_t)n, fiber{});
    ls->w.assign((size_t)(n + 31) / 32, warp_state{});
    for (size_t i = 0; i < ls->w.size(); i++) {
        int lanes = n - (int)i * 32 < 32 ? n - (int)i * 32 : 32;
        ls->w[i].all = ls->w[i].live = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    }
    ls->live = n;
    ls->arrived = 0;
    ls->ndone = 0;
    ls->ready.reset((size_t)n);
    ls->mbars.clear(); /* an mbarrier lives in its block's shared memory */
    ls->spinning = ls->stale_spinners = 0;
    /* the order ready threads run in: a random one, seeded by the launch and the
     * block (so every run is the same), unless CUSIM_SCHED=fifo */
    ls->ready.rng = ls->sched_fifo ? 0
                                   : 0x9e3779b97f4a7c15ull ^ (ls->launch_serial << 32) ^
                                         ls->block_serial;
    ls->epoch++;
    ls->block_serial++;
    if (ls->smem_bytes)
        memset(ls->smem, 0xFF, ls->smem_bytes);
    dim3 bd = cusim_blockDim;
    for (int i = 0; i < n; i++) {
        fiber &f = ls->f[(size_t)i];
        f.id = i;
        f.tid = uint3{(unsigned)i % bd.x, ((unsigned)i / bd.x) % bd.y, (unsigned)i / (bd.x * bd.y)};
        f.warp = i / 32;
        f.lane = i % 32;
        f.stack = stack_get((size_t)i);
        ctx_make(&f.c, f.stack, k_stack, fiber_main, &f);
        ls->ready.push(i);
    }
    while (!ls->ready.empty() && !ls->failed) {
        fiber *f = &ls->f[(size_t)ls->ready.pop()];
        if (f->done)
            continue;
        ls->cur = f;
        cusim_threadIdx = f->tid;
        ctx_swap(&ls->main, &f->c);
        ls->cur = NULL;
    }
    if (!ls->failed && ls->ndone < n)
        deadlock(ls);
}

static cudaError_t launch_error(cudaError_t e, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cudaError_t launch_error(cudaError_t e, const char *name, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cusim: launch %s: %s\n", name, msg);
    t_last = e;
    return e;
}

namespace cusim {

void launch_raw(const char *name, const void *fn, const cfg &c, void (*body)(void *), void *arg)
{
    if (sticky() != cudaSuccess) {
        t_last = sticky();
        return;
    }
    uint64_t threads = (uint64_t)c.block.x * c.block.y * c.block.z;
    if (threads == 0 || threads > 1024 || c.block.z > 64) {
        launch_error(cudaErrorInvalidConfiguration, name, "block (%u,%u,%u): 1..1024 threads",
                     c.block.x, c.block.y, c.block.z);
        return;
    }
    if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.y > 65535 ||
        c.grid.z > 65535 || c.grid.x > 2147483647u) {
        launch_error(cudaErrorInvalidConfiguration, name, "grid (%u,%u,%u) out of range",
                     c.grid.x, c.grid.y, c.grid.z);
        return;
    }
    int limit = (int)k_smem_default;
    {
        std::lock_guard<std::mutex> l(g_mu);
        auto it = g_smem_attr.find(fn);
        if (it != g_smem_attr.end())
            limit = it->second;
    }
    if (c.smem > (size_t)limit) {
        launch_error(cudaErrorInvalidValue, name,
                     "%zu bytes of dynamic shared memory > this kernel's limit %d (%s)", c.smem,
                     limit, limit == (int)k_smem_default
                                ? "cudaFuncAttributeMaxDynamicSharedMemorySize not raised"
                                : "cudaFuncSetAttribute");
        return;
    }
    std::lock_guard<std::mutex> device(g_device);
    fault_guard faults;
    launch_state ls{};
    ls.name = name;
    ls.body = body;
    ls.arg = arg;
    ls.nthreads = (int)threads;
    static std::atomic<uint64_t> launches{0};
    ls.launch_serial = ++launches;
    const char *sched = getenv("CUSIM_SCHED");
    ls.sched_fifo = sched != NULL && strcmp(sched, "fifo") == 0;
    const char *mode = getenv("CUSIM_CP_ASYNC");
    ls.cp_eager = strcmp(mode != NULL ? mode : cusim_cp_async_default, "eager") == 0;
    /* dynamic smem ends at a PROT_NONE page */
    size_t data = (c.smem + k_page - 1) / k_page * k_page;
    ls.smem_map_len = data + 2 * k_page;
    ls.smem_map = (char *)mmap(NULL, ls.smem_map_len, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ls.smem_map == MAP_FAILED) {
        launch_error(cudaErrorMemoryAllocation, name, "cannot map shared memory");
        return;
    }
    mprotect(ls.smem_map, k_page, PROT_NONE);
    mprotect(ls.smem_map + k_page + data, k_page, PROT_NONE);
    ls.smem_bytes = c.smem;
    ls.smem = (char *)(((uintptr_t)(ls.smem_map + k_page + data - c.smem)) & ~(uintptr_t)15);
    launch_state *prev = t_ls;
    t_ls = &ls;
    dim3 prev_bd = cusim_blockDim, prev_gd = cusim_gridDim;
    uint3 prev_bi = cusim_blockIdx, prev_ti = cusim_threadIdx;
    cusim_blockDim = c.block;
    cusim_gridDim = c.grid;
    for (unsigned z = 0; z < c.grid.z && !ls.failed; z++)
        for (unsigned y = 0; y < c.grid.y && !ls.failed; y++)
            for (unsigned x = 0; x < c.grid.x && !ls.failed; x++) {
                cusim_blockIdx = uint3{x, y, z};
                run_block(&ls);
            }
    cusim_blockDim = prev_bd;
    cusim_gridDim = prev_gd;
    cusim_blockIdx = prev_bi;
    cusim_threadIdx = prev_ti;
    t_ls = prev;
    munmap(ls.smem_map, ls.smem_map_len);
    if (ls.failed)
        t_last = cudaErrorLaunchFailure;
}

} // namespace cusim

/* ---- runtime API ---- */

static thread_local int t_dev = 0;

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev)
{
    if (dev != 0)
        return t_last = cudaErrorInvalidDevice;
    t_dev = dev;
    return sticky();
}

cudaError_t cudaGetDevice(int *dev)
{
    *dev = t_dev;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev)
{
    if (dev != 0)
        return t_last = cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cusim (CPU emulation of %s)",
             arch_sm90a() ? "sm_90a" : "sm_80");
    memcpy(p->uuid.bytes, "cusim-device-000", 16);
    p->totalGlobalMem = k_global_mem;
    p->sharedMemPerBlock = k_smem_default;
    p->sharedMemPerBlockOptin = smem_optin();
    p->major = arch_sm90a() ? 9 : 8;
    p->minor = 0;
    p->multiProcessorCount = 4;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev)
{
    if (dev != 0)
        return t_last = cudaErrorInvalidDevice;
    switch (attr) {
    case cudaDevAttrClockRate: *v = 1410000; break;       /* kHz */
    case cudaDevAttrMemoryClockRate: *v = 1215000; break; /* kHz */
    case cudaDevAttrGlobalMemoryBusWidth: *v = 5120; break;
    default: return t_last = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    std::lock_guard<std::mutex> l(g_mu);
    size_t used = 0;
    for (auto &a : g_allocs)
        used += a.second.bytes;
    *total_bytes = k_global_mem;
    *free_bytes = used < k_global_mem ? k_global_mem - used : 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = NULL;
    if (sticky() != cudaSuccess)
        return t_last = sticky();
    size_t data = (bytes + 255) / 256 * 256, pages = (data + k_page - 1) / k_page * k_page;
    size_t len = pages + k_page;
    if (bytes > k_global_mem)
        return t_last = cudaErrorMemoryAllocation;
    char *m = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return t_last = cudaErrorMemoryAllocation;
    mprotect(m + pages, k_page, PROT_NONE);
    char *u = m + pages - data; /* 256-byte aligned; the end meets the guard page */
    memset(m, 0xFF, pages);     /* fresh device memory is not zero, nor what lies before it */
    std::lock_guard<std::mutex> l(g_mu);
    g_allocs[(uintptr_t)u] = alloc{m, len, bytes};
    *p = u;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (p == NULL)
        return cudaSuccess;
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) {
        fprintf(stderr, "cusim: cudaFree(%p): not a pointer cudaMalloc returned\n", p);
        return t_last = cudaErrorInvalidValue;
    }
    munmap(it->second.map, it->second.len);
    g_allocs.erase(it);
    return cudaSuccess;
}

/* dev_range: whether [p, p + n) lies inside one cudaMalloc allocation */
static bool dev_range(const void *p, size_t n)
{
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it == g_allocs.begin())
        return false;
    --it;
    uintptr_t a = it->first, q = (uintptr_t)p;
    return q >= a && q + n <= a + it->second.bytes;
}

static cudaError_t copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                        const char *call)
{
    if (sticky() != cudaSuccess)
        return t_last = sticky();
    bool dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (bytes && ((dd && !dev_range(dst, bytes)) || (sd && !dev_range(src, bytes)))) {
        fprintf(stderr, "cusim: %s(%p <- %p, %zu bytes, kind %d): the device side is not "
                "inside one cudaMalloc allocation\n", call, dst, src, bytes, (int)kind);
        return t_last = cudaErrorInvalidValue;
    }
    if (bytes)
        memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    return copy(dst, src, bytes, kind, "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t st)
{
    (void)st;
    return copy(dst, src, bytes, kind, "cudaMemcpyAsync");
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t st)
{
    (void)st;
    if (sticky() != cudaSuccess)
        return t_last = sticky();
    if (bytes && !dev_range(dst, bytes)) {
        fprintf(stderr, "cusim: cudaMemsetAsync(%p, %zu bytes): not device memory\n", dst, bytes);
        return t_last = cudaErrorInvalidValue;
    }
    memset(dst, value, bytes);
    return cudaSuccess;
}

struct CUstream_st {
    int unused;
};

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned flags)
{
    (void)flags;
    *st = new CUstream_st();
    return sticky();
}

cudaError_t cudaStreamDestroy(cudaStream_t st)
{
    delete st;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t st)
{
    (void)st;
    return sticky();
}

cudaError_t cudaDeviceSynchronize(void)
{
    return sticky();
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = t_last;
    t_last = cudaSuccess;
    return e != cudaSuccess ? e : sticky();
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorLaunchFailure: return "a kernel failed an emulator check (see stderr)";
    case cudaErrorInvalidConfiguration: return "invalid launch configuration";
    case cudaErrorInvalidValue: return "invalid argument";
    default: return "error (cusim)";
    }
}

cudaError_t cudaFuncSetAttributeRaw(const void *fn, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > smem_optin())
        return t_last = cudaErrorInvalidValue;
    std::lock_guard<std::mutex> l(g_mu);
    g_smem_attr[fn] = value;
    return cudaSuccess;
}

/* cuTensorMapEncodeTiled, as the driver API documents it, for what the
 * emulator's TMA implements: rank 2, 16-bit elements, element strides 1, no
 * interleave, swizzle none or 128B (with 128-byte inner box rows), zero fill
 * out of bounds. Checks: base 16-byte aligned; dimensions 1..2^32; the row
 * stride a multiple of 16 bytes below 2^40; box dimensions 1..256, the inner
 * one a multiple of 16 bytes and, with 128B swizzle, at most 128 bytes. */
static CUresult tensor_map_encode(CUtensorMap *tm, CUtensorMapDataType dt, cuuint32_t rank,
                                  void *base, const cuuint64_t *dims, const cuuint64_t *strides,
                                  const cuuint32_t *box, const cuuint32_t *estr,
                                  CUtensorMapInterleave il, CUtensorMapSwizzle sw,
                                  CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob)
{
    (void)l2;
    uint32_t es = dt == CU_TENSOR_MAP_DATA_TYPE_FLOAT16 || dt == CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                      ? 2 : 0;
    const char *why = NULL;
    if (es == 0 || rank != 2)
        why = "emulated: rank 2, 16-bit elements only";
    else if ((uintptr_t)base & 15)
        why = "global address not 16-byte aligned";
    else if (dims[0] == 0 || dims[1] == 0 || dims[0] > (1ull << 32) || dims[1] > (1ull << 32))
        why = "global dimensions must be 1..2^32";
    else if (strides[0] % 16 || strides[0] >= (1ull << 40))
        why = "row stride not a multiple of 16 bytes, or not below 2^40";
    else if (box[0] == 0 || box[1] == 0 || box[0] > 256 || box[1] > 256 || (box[0] * es) % 16)
        why = "box dimensions";
    else if (sw == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * es > 128)
        why = "inner box dimension over 128 bytes with 128B swizzle";
    else if (sw == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * es < 128)
        why = "emulated: 128B swizzle with an inner box of exactly 128 bytes only";
    else if (estr[0] != 1 || estr[1] != 1 || il != CU_TENSOR_MAP_INTERLEAVE_NONE ||
             oob != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE ||
             (sw != CU_TENSOR_MAP_SWIZZLE_NONE && sw != CU_TENSOR_MAP_SWIZZLE_128B))
        why = "emulated: element strides 1, no interleave, zero fill, swizzle none or 128B";
    if (why != NULL) {
        fprintf(stderr, "cusim: cuTensorMapEncodeTiled: %s\n", why);
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(tm, 0, sizeof *tm);
    cusim::tmap t = {cusim::k_tmap_magic, (const char *)base, {dims[0], dims[1]}, strides[0],
                     {box[0], box[1]}, es, sw == CU_TENSOR_MAP_SWIZZLE_128B};
    memcpy(tm, &t, sizeof t);
    return CUDA_SUCCESS;
}

cudaError_t cudaGetDriverEntryPoint(const char *sym, void **fn, unsigned long long flags,
                                    cudaDriverEntryPointQueryResult *q)
{
    (void)flags;
    *fn = NULL;
    *q = cudaDriverEntryPointSymbolNotFound;
    if (arch_sm90a() && strcmp(sym, "cuTensorMapEncodeTiled") == 0) {
        *fn = (void *)tensor_map_encode;
        *q = cudaDriverEntryPointSuccess;
    }
    return cudaSuccess;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *sym, void **fn, unsigned version,
                                             unsigned long long flags,
                                             cudaDriverEntryPointQueryResult *q)
{
    (void)version;
    return cudaGetDriverEntryPoint(sym, fn, flags, q);
}
