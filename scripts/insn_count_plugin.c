/* A qemu-user plugin (plugin API version 1, qemu 7.2 as Debian bookworm ships it) that counts the guest
 * instructions each thread executes; used by scripts/count_instructions.py through
 * `sudo scripts/check-arm64.sh --instructions`.
 *
 * When the guest calls getpriority(PRIO_PROCESS, MAGIC + n) (a marker: no such process, it fails
 * harmlessly), the calling thread's count so far and all threads' together are appended to the file given
 * as `out=PATH`, as the line "n thread all", and flushed before the guest goes on, so the guest can read it
 * back at once.
 *
 *   cc -O2 -shared -fPIC -o insn_count.so scripts/insn_count_plugin.c
 *   qemu-aarch64 -cpu cortex-a72 -plugin ./insn_count.so,out=/tmp/counts ... */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The few declarations of qemu's include/qemu/qemu-plugin.h (API version 1) this plugin uses. */
typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct { int min, cur; } version;
    bool system_emulation;
} qemu_info_t;
struct qemu_plugin_tb;
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                                  uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                                  uint64_t a8);
enum { QEMU_PLUGIN_CB_NO_REGS };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb, int flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, vcpu_syscall_cb_t cb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_THREADS 4096
#define AARCH64_GETPRIORITY 141
#define MAGIC ((uint64_t)0x4000000)

static uint64_t counts[MAX_THREADS]; /* by vCPU index: one per guest thread in qemu-user */
static FILE *out;

/* Called each time a translated block runs: a callback rather than an inline add, so that threads
 * running at once each add to their own counter (inline adds to one counter are not atomic). */
static void on_block(unsigned int vcpu, void *n_insns) { counts[vcpu % MAX_THREADS] += (uintptr_t)n_insns; }

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
    if (num != AARCH64_GETPRIORITY || a2 < MAGIC || a2 >= MAGIC + 1000000) return;
    uint64_t all = 0;
    for (int i = 0; i < MAX_THREADS; i++) all += counts[i];
    fprintf(out, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a2 - MAGIC, counts[vcpu % MAX_THREADS], all);
    fflush(out);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                              int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) out = fopen(argv[i] + 4, "w");
    }
    if (out == NULL) {
        fprintf(stderr, "insn_count_plugin: give out=PATH, a file it can write\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    return 0;
}
