/* malloc_counter.c: counts heap calls while switched on, for tests/clap_host.c (LD_PRELOAD it).
 *
 *   gcc -std=c99 -shared -fPIC malloc_counter.c -o malloc_counter.so -ldl
 *   LD_PRELOAD=./malloc_counter.so python ...
 *
 * malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign, valloc and
 * pvalloc are wrapped; each call made by a thread that switched counting on
 * (malloc_counter_enable(1)) adds one to malloc_counter_get(). The real functions come from
 * dlsym(RTLD_NEXT); while dlsym itself is looking them up (it may calloc), a small static arena
 * serves, and free ignores what came from there.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

static __thread int counting;
static volatile long count;
static int resolving;
static char arena[8192] __attribute__((aligned(16)));
static size_t arena_used;

void malloc_counter_enable(int on) { counting = on != 0; }
long malloc_counter_get(void) { return count; }

static void counted(void)
{
    if (counting)
        __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
}

#define RESOLVE(name) (*(void **)&real_##name = dlsym(RTLD_NEXT, #name))

static void resolve(void)
{
    if (real_malloc != NULL || resolving)
        return;
    resolving = 1;
    RESOLVE(calloc);
    RESOLVE(realloc);
    RESOLVE(free);
    RESOLVE(posix_memalign);
    RESOLVE(aligned_alloc);
    RESOLVE(memalign);
    RESOLVE(valloc);
    RESOLVE(pvalloc);
    RESOLVE(malloc); /* last: it says all are there */
    resolving = 0;
}

static void *from_arena(size_t size)
{
    size_t start = (arena_used + 15) & ~(size_t)15;
    if (size > sizeof arena - start)
        return NULL;
    arena_used = start + size;
    return arena + start; /* zeroed: static, never reused */
}

static int in_arena(const void *p)
{
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

void *malloc(size_t size)
{
    resolve();
    if (real_malloc == NULL)
        return from_arena(size);
    counted();
    return real_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    resolve();
    if (real_calloc == NULL || resolving)
        return n != 0 && size > SIZE_MAX / n ? NULL : from_arena(n * size);
    counted();
    return real_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    resolve();
    counted();
    if (in_arena(p)) { /* rare: grow out of the arena */
        void *q = real_malloc(size);
        const char *from = (const char *)p;
        size_t i, room = (size_t)(arena + sizeof arena - from);
        for (i = 0; q != NULL && i < size && i < room; i++)
            ((char *)q)[i] = from[i];
        return q;
    }
    return real_realloc(p, size);
}

void free(void *p)
{
    resolve();
    if (p == NULL)
        return; /* free(NULL) is no heap traffic */
    counted();
    if (!in_arena(p) && real_free != NULL)
        real_free(p);
}

int posix_memalign(void **p, size_t alignment, size_t size)
{
    resolve();
    counted();
    return real_posix_memalign(p, alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    resolve();
    counted();
    return real_aligned_alloc(alignment, size);
}

void *memalign(size_t alignment, size_t size)
{
    resolve();
    counted();
    return real_memalign(alignment, size);
}

void *valloc(size_t size)
{
    resolve();
    counted();
    return real_valloc(size);
}

void *pvalloc(size_t size)
{
    resolve();
    counted();
    return real_pvalloc(size);
}
