/* Hide AVX-512, VNNI and AMX from every CPUID a process makes, so that numpy, onnxruntime and
 * LiteRT take the code paths of a CPU without an int8 dot product, on the same hardware.
 *
 * Used by `scripts/bench.py --hide-int8-dot-product` (which builds it with cc) as LD_PRELOAD. It needs
 * the kernel's CPUID faulting (`cpuid_fault` in /proc/cpuinfo): each CPUID then traps, and the handler
 * below answers it with those feature bits cleared. The setting is kept by threads and forks and
 * reset by exec, where this library's constructor sets it again. A measuring tool, never the daemon's.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction program_segv; /* what the program itself asked for on SIGSEGV */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

#define BIT(n) (1u << (n))

static void answer_cpuid(greg_t *r) {
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1); /* the real answer, then trap again */
    __cpuid_count(leaf, sub, a, b, c, d);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        /* AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL; VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ; 4VNNIW, 4FMAPS,
         * VP2INTERSECT, AMX-BF16, FP16, AMX-TILE, AMX-INT8 */
        b &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        c &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        d &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && sub == 1) {
        a &= ~(BIT(4) | BIT(5) | BIT(23));   /* AVX-VNNI, AVX512-BF16, AVX-IFMA */
        d &= ~(BIT(4) | BIT(5) | BIT(10));   /* AVX-VNNI-INT8, AVX-NE-CONVERT, AVX-VNNI-INT16 */
    }
    r[REG_RAX] = a, r[REG_RBX] = b, r[REG_RCX] = c, r[REG_RDX] = d;
    r[REG_RIP] += 2; /* past the two bytes of CPUID */
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    greg_t *r = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2) {
        answer_cpuid(r);
        return;
    }
    if ((program_segv.sa_flags & SA_SIGINFO) && program_segv.sa_sigaction) {
        program_segv.sa_sigaction(sig, info, ctx);
    } else if (program_segv.sa_handler != SIG_DFL && program_segv.sa_handler != SIG_IGN) {
        program_segv.sa_handler(sig);
    } else { /* a real fault: the default action when the instruction runs again */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
    }
}

/* The program's own SIGSEGV handler (Python's faulthandler) is kept aside and called for real faults. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV) return real_sigaction(sig, act, old);
    if (old) *old = program_segv;
    if (act) program_segv = *act;
    return 0;
}

__attribute__((constructor)) static void hide(void) {
    struct sigaction sa;
    real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    real_sigaction(SIGSEGV, &sa, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) { /* a sandbox may refuse it: say so, hide nothing */
        static const char msg[] = "hide_int8_dot_product: CPUID faulting refused; nothing is hidden\n";
        (void)!write(2, msg, sizeof msg - 1);
    }
}
