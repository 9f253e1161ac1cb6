/* wrk_rawsys.h: Linux system calls without libc: the result is returned
 * (a negative errno on failure) and nothing else is touched, not errno, not
 * the thread's descriptor. For code that runs in a process sharing another's
 * memory without being its thread (clone(2) with CLONE_VM but not
 * CLONE_THREAD: worker/wrk_reap_task.c), where libc's wrappers would write
 * the other's errno. Calling conventions: syscall(2), "Architecture calling
 * conventions". x86_64 and aarch64 (the architectures of moat's GPU nodes).
 */
#ifndef MOAT_WRK_RAWSYS_H
#define MOAT_WRK_RAWSYS_H

#include <sys/syscall.h>

#if defined(__x86_64__)
static inline long rawsys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static inline long rawsys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
#error "worker/wrk_rawsys.h: raw system calls are written for x86_64 and aarch64 only"
#endif

#define rawsys0(n) rawsys6((n), 0, 0, 0, 0, 0, 0)
#define rawsys1(n, a) rawsys6((n), (long)(a), 0, 0, 0, 0, 0)
#define rawsys2(n, a, b) rawsys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define rawsys3(n, a, b, c) rawsys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define rawsys4(n, a, b, c, d) rawsys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define rawsys5(n, a, b, c, d, e) rawsys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

#endif
