/* The snapshot of the objects loaded when a node worker's children started
 * (taken at init, before the first fork): a function pointer registered after
 * init means the same in a child only if it lies in one of them. */
#define _GNU_SOURCE
#include "node/node.h"

#include <dlfcn.h>
#include <link.h>

#include "core/alloc.h"

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
int strata__node_check_pointer(const strata__node *n, const void *fn, const char *what)
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
