/* cusim_sched.cc: fibers and their scheduler: context switching, the block and
 * warp barriers, warp exchanges (shuffles), per-block shared memory, launches,
 * and faults inside kernels. See cusim.h and cusim_impl.h.
 */
#include "cusim_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

thread_local uint3 cusim_threadIdx, cusim_blockIdx;
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

thread_local launch_state *t_ls;

/* One kernel runs at a time in the process: __shared__ variables are statics,
 * one copy for all launches, so launches from several host threads (TP ranks
 * in threads) take turns. */
static std::mutex g_device;

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
void block_here(fiber *f)
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
