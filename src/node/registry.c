/* Registrations of a node worker: chip callables and SUB functions, before init
 * (children inherit them when forked) or after it (each live child is sent the
 * registration and must acknowledge it before the call returns).
 *
 * A function pointer means the same in a child only if its code was mapped
 * before the child was forked. init takes a snapshot of the loaded objects; a
 * registration after init checks every pointer against it with dladdr and
 * refuses one that lies in an object loaded later, naming the object and
 * pointing to strata_worker_register_chip_symbol, which has each child load the
 * shared object itself. Handles are indexes into one list that every process
 * appends to in the same order, and that a replacement child inherits whole. */
#define _GNU_SOURCE
#include "node/node.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip/kernel.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/log.h"
#include "core/sys.h"

/* ---- the snapshot of loaded objects ---- */

/* The snapshot is the list of loadable segments [start, end), in pairs. */
static int add_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    strata__node *n = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (n->nobjects + 2 > n->objects_cap) {
            uint32_t cap = n->objects_cap ? 2 * n->objects_cap : 64;
            uint64_t *p = strata__realloc(n->objects, cap * sizeof p[0]);
            if (!p)
                return 1;
            n->objects = p;
            n->objects_cap = cap;
        }
        uint64_t start = (uint64_t)info->dlpi_addr + ph->p_vaddr;
        n->objects[n->nobjects++] = start;
        n->objects[n->nobjects++] = start + ph->p_memsz;
    }
    return 0;
}

int strata__node_snapshot_objects(strata__node *n)
{
    n->nobjects = 0;
    if (dl_iterate_phdr(add_object, n) != 0)
        return strata__fail(STRATA_ENOMEM, "out of host memory listing the loaded objects");
    return STRATA_OK;
}

/* Whether fn lies in an object that was loaded when the children started. */
static int check_pointer(const strata__node *n, const void *fn, const char *what)
{
    uint64_t a = (uint64_t)(uintptr_t)fn;
    for (uint32_t i = 0; i + 1 < n->nobjects; i += 2)
        if (a >= n->objects[i] && a < n->objects[i + 1])
            return STRATA_OK;
    Dl_info info;
    if (!dladdr(fn, &info) || info.dli_fname == NULL)
        return strata__fail(STRATA_EINVAL, "%s at %p lies in no loaded object (generated code?); children cannot "
                            "resolve it: register it before init", what, fn);
    return strata__fail(STRATA_EINVAL, "%s at %p (%s in '%s') lies in an object loaded after the children started, "
                        "so they cannot call it; register it before init, or export the chip callable from a shared "
                        "object and register it with strata_worker_register_chip_symbol", what, fn,
                        info.dli_sname ? info.dli_sname : "no symbol", info.dli_fname);
}

/* ---- the registration frame (mailbox args area) ---- */

typedef struct reg_frame {
    uint32_t kind;        /* strata__reg_kind, or REG_SYMBOL */
    uint32_t nkernels;
    uint64_t orch, fn, ctx;
    uint32_t name_len, path_len, symbol_len, pad;
    /* then: kernels (strata_kernel_entry), name, path, symbol */
} reg_frame;

enum { REG_SYMBOL = 7 };

static int append(strata__node *n, const strata__registration *r, strata_handle *out)
{
    int rc = STRATA__RESERVE(n->regs, n->nregs, n->regs_cap, 8, "the registrations");
    if (rc)
        return rc;
    n->regs[n->nregs++] = *r;
    if (out)
        *out = n->nregs;
    return STRATA_OK;
}

/* Load `symbol`, a const strata_chip_callable, from so_path and copy it. */
static int load_symbol(const char *so_path, const char *symbol, strata__callable *out)
{
    void *h = strata__sys_dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = strata__sys_dlerror();
        return strata__fail(STRATA_ENOENT, "dlopen of '%s' failed: %s", so_path, why ? why : "unknown error");
    }
    /* Deliberately never closed: the callable's functions may run at any time. */
    const strata_chip_callable *c = dlsym(h, symbol);
    if (!c)
        return strata__fail(STRATA_ENOENT, "'%s' has no symbol '%s' (a const strata_chip_callable)", so_path, symbol);
    return strata__callable_copy(c, out);
}

/* Send frame (already in every mailbox's args) to every live child and wait for
   each to acknowledge. */
static int broadcast(strata__node *n, size_t len)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (c->dead || c->pid <= 0)
            continue;
        c->mb->kind = STRATA__REQ_REGISTER;
        c->mb->args_len = (uint32_t)len;
        c->busy = true;
        strata__mailbox_post(c->mb, ++c->seq);
    }
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    int rc = STRATA_OK;
    for (;;) {
        bool waiting = false;
        for (uint32_t i = 0; i < n->nchildren; i++) {
            strata__child *c = &n->children[i];
            if (!c->busy || c->dead)
                continue;
            if (!strata__mailbox_answered(c->mb, c->seq)) {
                waiting = true;
                continue;
            }
            c->busy = false;
            if (c->mb->status != STRATA_OK && rc == STRATA_OK) {
                char name[96];
                rc = strata__fail(strata__mailbox_reply_status(c->mb), "%s: %.*s", strata__child_name(c, name, sizeof name),
                                  (int)strata__mailbox_message_len(c->mb), c->mb->message);
            }
        }
        strata__node_reap(n);   /* a death is reported by the next run; its replacement inherits */
        if (!waiting)
            return rc;
        if (strata__now_ns() > deadline) {
            for (uint32_t i = 0; i < n->nchildren; i++) {
                strata__child *c = &n->children[i];
                if (c->busy && !c->dead) {
                    char name[96];
                    strata__child_name(c, name, sizeof name);
                    strata__node_kill(n, c, NULL);
                    rc = strata__fail(STRATA_ETIMEDOUT, "%s did not acknowledge the registration within "
                                      "init_timeout_ms (%u ms) and was killed", name, n->cfg.init_timeout_ms);
                }
            }
            return rc;
        }
        strata__node_sleep(n, 10);
    }
}

/* Encode the frame of r (a symbol registration when r->so_path is set) into
   dst, which holds STRATA__MAILBOX_ARGS bytes. */
static int encode_frame(const strata__registration *r, uint8_t *dst, size_t *len)
{
    reg_frame f = {0};
    const char *name = "";
    if (r->so_path) {
        f.kind = REG_SYMBOL;
        f.path_len = (uint32_t)strlen(r->so_path);
        f.symbol_len = (uint32_t)strlen(r->symbol);
    } else if (r->kind == STRATA__REG_CHIP) {
        f.kind = STRATA__REG_CHIP;
        f.nkernels = r->chip.nkernels;
        f.orch = (uint64_t)(uintptr_t)r->chip.orch;
        name = r->chip.name;
        f.name_len = (uint32_t)strlen(name);
    } else {
        f.kind = STRATA__REG_SUB;
        f.fn = (uint64_t)(uintptr_t)r->fn;
        f.ctx = (uint64_t)(uintptr_t)r->ctx;
    }
    size_t kbytes = (size_t)f.nkernels * sizeof(strata_kernel_entry);
    *len = sizeof f + kbytes + f.name_len + f.path_len + f.symbol_len;
    if (*len > STRATA__MAILBOX_ARGS)
        return strata__fail(STRATA_EINVAL, "the registration takes %zu bytes; a mailbox holds %u (a kernel table "
                            "of %u entries, a name of %u bytes)", *len, STRATA__MAILBOX_ARGS, f.nkernels, f.name_len);
    uint8_t *p = dst;
    memcpy(p, &f, sizeof f);
    p += sizeof f;
    if (kbytes)
        memcpy(p, r->chip.kernels, kbytes);
    p += kbytes;
    memcpy(p, name, f.name_len);
    p += f.name_len;
    if (r->so_path) {
        memcpy(p, r->so_path, f.path_len);
        memcpy(p + f.path_len, r->symbol, f.symbol_len);
    }
    return STRATA_OK;
}

/* Write the frame of r into every mailbox. */
static int write_frames(strata__node *n, const strata__registration *r, size_t *len)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        int rc = encode_frame(r, n->children[i].mb->args, len);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

int strata__node_replay_registrations(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    char name[96];
    for (uint32_t k = n->nregs_spawner; k < n->nregs; k++) {
        size_t len = 0;
        int rc = encode_frame(&n->regs[k], c->mb->args, &len);
        if (rc)
            return rc;
        c->mb->kind = STRATA__REQ_REGISTER;
        c->mb->args_len = (uint32_t)len;
        strata__mailbox_post(c->mb, ++c->seq);
        while (!strata__mailbox_answered(c->mb, c->seq)) {
            strata__node_reap(n);
            if (c->dead)
                return strata__fail(STRATA_ECHILD, "%s while taking registration %u", c->death_message
                                    ? c->death_message : "the child died", k + 1);
            if (strata__now_ns() > deadline_ns)
                return strata__fail(STRATA_ETIMEDOUT, "%s did not take registration %u within init_timeout_ms (%u "
                                    "ms)", strata__child_name(c, name, sizeof name), k + 1, n->cfg.init_timeout_ms);
            strata__node_sleep(n, 10);
        }
        /* A registration the child refused stays there as a placeholder that
           fails each of its tasks with the reason, as it did in the children
           that were told at registration time. */
        if (c->mb->status != STRATA_OK)
            strata__log(STRATA__LOG_WARN, "%s refused registration %u: %.*s",
                        strata__child_name(c, name, sizeof name), k + 1, (int)strata__mailbox_message_len(c->mb),
                        c->mb->message);
    }
    return STRATA_OK;
}

int strata__node_register(strata__node *n, bool live, const strata__registration *r, const char *so_path,
                          const char *symbol, strata_handle *out)
{
    strata__registration copy = *r;
    size_t len = 0;
    int rc = STRATA_OK;
    if (so_path) {
        copy.kind = STRATA__REG_CHIP;
        rc = load_symbol(so_path, symbol, &copy.chip);
        if (rc)
            return rc;
        copy.so_path = strata__strdup(so_path);
        copy.symbol = strata__strdup(symbol);
        if (!copy.so_path || !copy.symbol)
            rc = strata__fail(STRATA_ENOMEM, "out of host memory for a registration");
        if (rc == STRATA_OK && live)
            rc = write_frames(n, &copy, &len);
    } else if (live && r->kind == STRATA__REG_CHIP) {
        rc = check_pointer(n, (const void *)(uintptr_t)r->chip.orch, "the orchestration function");
        for (uint32_t i = 0; rc == STRATA_OK && i < r->chip.nkernels; i++) {
            char what[64];
            snprintf(what, sizeof what, "the kernel of func_id %d", r->chip.kernels[i].func_id);
            rc = check_pointer(n, (const void *)(uintptr_t)r->chip.kernels[i].fn, what);
        }
    } else if (live) {
        rc = check_pointer(n, (const void *)(uintptr_t)r->fn, "the SUB function");
    }
    if (rc == STRATA_OK && live && !so_path)
        rc = write_frames(n, &copy, &len);
    if (rc == STRATA_OK)
        rc = append(n, &copy, out);
    if (rc) {
        if (copy.kind == STRATA__REG_CHIP)
            strata__callable_free(&copy.chip);   /* given to us: not kept */
        free(copy.so_path);
        free(copy.symbol);
        return rc;
    }
    if (!live)
        return STRATA_OK;
    rc = broadcast(n, len);
    if (rc) {
        /* Some child could not take it: the handle stays, so that every process
           keeps the same list, but the caller is told which child failed. */
        return rc;
    }
    return STRATA_OK;
}

int strata__reg_frame_parse(const void *buf, size_t len, strata__reg_parsed *out)
{
    reg_frame f;
    if (len < sizeof f)
        return strata__fail(STRATA_EINVAL, "registration frame of %zu bytes is shorter than its %zu-byte header", len,
                            sizeof f);
    memcpy(&f, buf, sizeof f);
    if (f.kind != STRATA__REG_CHIP && f.kind != STRATA__REG_SUB && f.kind != REG_SYMBOL)
        return strata__fail(STRATA_EINVAL, "registration frame of unknown kind %u", f.kind);
    if (f.kind != STRATA__REG_CHIP && f.nkernels != 0)
        return strata__fail(STRATA_EINVAL, "registration frame of kind %u claims %u kernels", f.kind, f.nkernels);
    /* 64-bit sums of 32-bit fields: no overflow */
    uint64_t need = (uint64_t)sizeof f + (uint64_t)f.nkernels * sizeof(strata_kernel_entry) + f.name_len +
                    f.path_len + f.symbol_len;
    if (need != len)
        return strata__fail(STRATA_EINVAL, "registration frame is %zu bytes; its header says %llu (%u kernels, name "
                            "%u, path %u, symbol %u bytes)", len, (unsigned long long)need, f.nkernels, f.name_len,
                            f.path_len, f.symbol_len);
    if (f.kind == REG_SYMBOL && (f.path_len == 0 || f.symbol_len == 0))
        return strata__fail(STRATA_EINVAL, "symbol registration frame without a path or a symbol");
    const uint8_t *p = (const uint8_t *)buf + sizeof f;
    *out = (strata__reg_parsed){
        .kind = f.kind == STRATA__REG_SUB ? STRATA__REG_SUB : STRATA__REG_CHIP,
        .by_symbol = f.kind == REG_SYMBOL,
        .orch = f.orch, .fn = f.fn, .ctx = f.ctx,
        .kernels = p, .nkernels = f.nkernels,
        .name = (const char *)p + (size_t)f.nkernels * sizeof(strata_kernel_entry), .name_len = f.name_len,
    };
    out->path = out->name + f.name_len;
    out->path_len = f.path_len;
    out->symbol = out->path + f.path_len;
    out->symbol_len = f.symbol_len;
    return STRATA_OK;
}

int strata__child_register(strata__node *n, const strata__mailbox *mb)
{
    strata__reg_parsed f;
    int rc = mb->args_len <= STRATA__MAILBOX_ARGS ? strata__reg_frame_parse(mb->args, mb->args_len, &f)
                                                  : strata__fail(STRATA_EINVAL, "registration frame says it takes %u "
                                                                 "bytes; a mailbox holds %u", mb->args_len,
                                                                 STRATA__MAILBOX_ARGS);
    strata__registration r = {0};
    if (rc) {
        f.kind = STRATA__REG_CHIP;   /* not even a frame: still numbered, as a placeholder */
    } else if (f.by_symbol) {
        char *path = strata__strndup(f.path, f.path_len), *symbol = strata__strndup(f.symbol, f.symbol_len);
        r.kind = STRATA__REG_CHIP;
        rc = path && symbol ? load_symbol(path, symbol, &r.chip)
                            : strata__fail(STRATA_ENOMEM, "out of host memory in a child");
        free(path);
        free(symbol);
    } else if (f.kind == STRATA__REG_CHIP) {
        rc = strata__reg_parsed_callable(&f, &r.chip);
        r.kind = STRATA__REG_CHIP;
    } else {
        r.kind = STRATA__REG_SUB;
        r.fn = (strata_sub_fn)(uintptr_t)f.fn;
        r.ctx = (void *)(uintptr_t)f.ctx;
    }
    if (rc != STRATA_OK) {
        /* Keep the handle numbering of every process the same: a placeholder
           that makes each task on this handle fail, saying why. */
        memset(&r, 0, sizeof r);
        r.kind = f.kind;
        r.error = strata__format("%s", strata_last_error());
    }
    int arc = append(n, &r, NULL);
    return rc ? rc : arc;
}

int strata__reg_parsed_callable(const strata__reg_parsed *f, strata__callable *out)
{
    char *name = strata__strndup(f->name, f->name_len);
    if (!name)
        return strata__fail(STRATA_ENOMEM, "out of host memory in a child");
    strata_kernel_entry *k = f->nkernels ? strata__malloc(f->nkernels * sizeof *k) : NULL;
    if (f->nkernels && !k) {
        free(name);
        return strata__fail(STRATA_ENOMEM, "out of host memory in a child");
    }
    if (f->nkernels)
        memcpy(k, f->kernels, f->nkernels * sizeof *k);   /* the frame need not be aligned */
    strata_chip_callable c = {name, (strata_chip_orch_fn)(uintptr_t)f->orch, k, f->nkernels};
    int rc = strata__callable_copy(&c, out);
    free(k);
    free(name);
    return rc;
}
