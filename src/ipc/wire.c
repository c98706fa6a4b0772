/* Task arguments on the wire: see ipc/wire.h. */
#include "ipc/wire.h"

#include <string.h>

#include "core/status.h"

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

size_t strata__wire_size(const strata_task_args *args)
{
    uint32_t nt = args ? args->ntensors : 0, ns = args ? args->nscalars : 0;
    return 8 + (size_t)nt * sizeof(strata_tensor) + pad8((size_t)nt * sizeof(strata_tag)) + (size_t)ns * 8;
}

int strata__wire_encode(const strata_task_args *args, void *buf, size_t cap, size_t *len)
{
    size_t need = strata__wire_size(args);
    if (need > cap)
        return strata__fail(STRATA_EINVAL, "the task's arguments take %zu bytes encoded; a frame holds %zu", need, cap);
    uint8_t *p = buf;
    uint32_t nt = args ? args->ntensors : 0, ns = args ? args->nscalars : 0;
    memcpy(p, &nt, 4);
    memcpy(p + 4, &ns, 4);
    p += 8;
    if (nt) {
        memcpy(p, args->tensors, nt * sizeof(strata_tensor));
        p += nt * sizeof(strata_tensor);
        memcpy(p, args->tags, nt * sizeof(strata_tag));
        memset(p + nt * sizeof(strata_tag), 0, pad8(nt * sizeof(strata_tag)) - nt * sizeof(strata_tag));
        p += pad8(nt * sizeof(strata_tag));
    }
    if (ns)
        memcpy(p, args->scalars, (size_t)ns * 8);
    *len = need;
    return STRATA_OK;
}

int strata__wire_decode(const void *buf, size_t len, strata_task_args *out)
{
    const uint8_t *p = buf;
    uint32_t nt, ns;
    if (len < 8)
        return strata__fail(STRATA_EINVAL, "task frame of %zu bytes is shorter than its 8-byte header", len);
    memcpy(&nt, p, 4);
    memcpy(&ns, p + 4, 4);
    if (nt > STRATA_MAX_TASK_TENSORS || ns > STRATA_MAX_TASK_SCALARS)
        return strata__fail(STRATA_EINVAL, "task frame claims %u tensors and %u scalars; at most %u and %u",
                            nt, ns, STRATA_MAX_TASK_TENSORS, STRATA_MAX_TASK_SCALARS);
    strata_task_args a = {.ntensors = nt, .nscalars = ns};
    if (strata__wire_size(&a) != len)
        return strata__fail(STRATA_EINVAL, "task frame is %zu bytes; %u tensors and %u scalars take %zu", len, nt,
                            ns, strata__wire_size(&a));
    p += 8;
    a.tensors = nt ? (const strata_tensor *)(const void *)p : NULL;
    p += (size_t)nt * sizeof(strata_tensor);
    a.tags = nt ? (const strata_tag *)(const void *)p : NULL;
    for (size_t i = (size_t)nt * sizeof(strata_tag); i < pad8((size_t)nt * sizeof(strata_tag)); i++)
        if (p[i] != 0)
            return strata__fail(STRATA_EINVAL, "task frame has nonzero padding after its %u tags (byte %zu); the "
                                "encoder writes zeros there", nt, i);
    p += pad8((size_t)nt * sizeof(strata_tag));
    a.scalars = ns ? (const uint64_t *)(const void *)p : NULL;
    *out = a;
    return STRATA_OK;
}
