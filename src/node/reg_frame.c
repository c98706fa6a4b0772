/* Registrations as both sides of a mailbox see them: the registration frame
 * (the parent encodes it into a mailbox's args area; a child parses it, every
 * length checked), appending to the registration list (every process appends
 * in the same order, so handles mean the same everywhere), loading a chip
 * callable by symbol, and a child applying a REGISTER request. */
#define _GNU_SOURCE
#include "node/node.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "chip/kernel.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/sys.h"

typedef struct reg_frame {
    uint32_t kind;        /* strata__reg_kind, or REG_SYMBOL */
    uint32_t nkernels;
    uint64_t orch, fn, ctx;
    uint32_t name_len, path_len, symbol_len, pad;
    /* then: kernels (strata_kernel_entry), name, path, symbol */
} reg_frame;

enum { REG_SYMBOL = 7 };

int strata__node_reg_append(strata__node *n, const strata__registration *r, strata_handle *out)
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
int strata__reg_load_symbol(const char *so_path, const char *symbol, strata__callable *out)
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

int strata__reg_frame_encode(const strata__registration *r, uint8_t *dst, size_t *len)
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
    } else if (r->kind == STRATA__REG_ORCH) {
        f.kind = STRATA__REG_ORCH;
        f.fn = (uint64_t)(uintptr_t)r->orch;
        f.ctx = (uint64_t)(uintptr_t)r->ctx;
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
int strata__reg_frame_parse(const void *buf, size_t len, strata__reg_parsed *out)
{
    reg_frame f;
    if (len < sizeof f)
        return strata__fail(STRATA_EINVAL, "registration frame of %zu bytes is shorter than its %zu-byte header", len,
                            sizeof f);
    memcpy(&f, buf, sizeof f);
    if (f.kind != STRATA__REG_CHIP && f.kind != STRATA__REG_SUB && f.kind != STRATA__REG_ORCH && f.kind != REG_SYMBOL)
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
        .kind = f.kind == REG_SYMBOL ? STRATA__REG_CHIP : (strata__reg_kind)f.kind,
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
        rc = path && symbol ? strata__reg_load_symbol(path, symbol, &r.chip)
                            : strata__fail(STRATA_ENOMEM, "out of host memory in a child");
        free(path);
        free(symbol);
    } else if (f.kind == STRATA__REG_CHIP) {
        rc = strata__reg_parsed_callable(&f, &r.chip);
        r.kind = STRATA__REG_CHIP;
    } else if (f.kind == STRATA__REG_ORCH) {
        r.kind = STRATA__REG_ORCH;
        r.orch = (strata_orch_fn)(uintptr_t)f.fn;
        r.ctx = (void *)(uintptr_t)f.ctx;
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
    int arc = strata__node_reg_append(n, &r, NULL);
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
