/* clap_host.c: a small CLAP host for the tests (tests/test_plugin_clap.py), built as a shared
 * library and driven from Python through ctypes. Written against the CLAP 1.1 headers DPF
 * bundles (gcc -std=c99 -shared -fPIC -I/usr/share/dpf/distrho/src ... -ldl).
 *
 *   module:   ch_load(path) -> dlopen, clap_entry.init; ch_plugin_count/ch_plugin_id; ch_unload
 *   instance: ch_create(module, id) -> create_plugin + init; ch_destroy
 *             ch_param_count/ch_param_info/ch_param_value, ch_params_flush (values while idle)
 *             ch_channels (audio ports), ch_activate (activate + start_processing), ch_latency,
 *             ch_deactivate, ch_process (one block, param events at its start), ch_run (a whole
 *             signal in blocks of cycling sizes, param events at given frames),
 *             ch_state_save/ch_state_load (clap.state through memory streams)
 *   host:     ch_asked (the host extensions the plugin asked for), ch_counters (its requests),
 *             ch_mxcsr (the SSE control/status register), ch_allocations (tests/malloc_counter.c,
 *             when preloaded: heap calls made inside plugin->process only; -1 when absent),
 *             ch_counter_probe (the counter's own check: one malloc and one free count 2)
 *
 * Audio is float32, channels x frames, one contiguous array each way. The host itself allocates
 * nothing while processing: events and channel pointers live in the instance.
 */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clap/entry.h"
#include "clap/plugin-factory.h"
#include "clap/ext/audio-ports.h"
#include "clap/ext/latency.h"
#include "clap/ext/params.h"
#include "clap/ext/state.h"
#include "clap/ext/thread-check.h"

#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif

#define CH_MAX_PORTS 8
#define CH_MAX_CHANNELS 8
#define CH_MAX_EVENTS 64

static char error[512];

typedef struct ch_module {
    void *dl;
    const clap_plugin_entry_t *entry;
    const clap_plugin_factory_t *factory;
} ch_module;

typedef struct ch_instance {
    clap_host_t host;
    const clap_plugin_t *plugin;
    const clap_plugin_params_t *params;
    const clap_plugin_latency_t *latency;
    const clap_plugin_state_t *state;
    const clap_plugin_audio_ports_t *ports;
    int active, in_process;
    uint32_t max_frames;
    int64_t steady_time;
    int counters[4]; /* request_restart, request_callback, latency changed, params rescan */
    char asked[1024];
    uint32_t ports_n[2], port_channels[2][CH_MAX_PORTS], channels[2]; /* [0] out, [1] in */
    clap_audio_buffer_t buffers[2][CH_MAX_PORTS];
    float *pointers[2][CH_MAX_CHANNELS];
    clap_event_param_value_t events[CH_MAX_EVENTS];
    uint32_t n_events;
    clap_input_events_t in_events;
    clap_output_events_t out_events;
} ch_instance;

/* tests/malloc_counter.c, when preloaded */
static void (*counter_enable)(int);
static long (*counter_get)(void);

const char *ch_error(void) { return error; }

unsigned ch_mxcsr(void)
{
#if defined(__x86_64__) || defined(__SSE__)
    return _mm_getcsr();
#else
    return 0;
#endif
}

static void find_counter(void)
{
    if (counter_get == NULL) {
        *(void **)&counter_enable = dlsym(RTLD_DEFAULT, "malloc_counter_enable");
        *(void **)&counter_get = dlsym(RTLD_DEFAULT, "malloc_counter_get");
    }
}

long ch_allocations(void)
{
    find_counter();
    return counter_get != NULL && counter_enable != NULL ? counter_get() : -1;
}

/* The counter's own check: what it counts for one malloc and one free (2), -1 without it. */
long ch_counter_probe(void)
{
    void *volatile p;
    long before;
    if (ch_allocations() < 0)
        return -1;
    before = counter_get();
    counter_enable(1);
    p = malloc(24);
    free(p);
    counter_enable(0);
    return counter_get() - before;
}

/* ---- host callbacks ---- */

static ch_instance *of(const clap_host_t *host) { return (ch_instance *)host->host_data; }

static void request_restart(const clap_host_t *host) { of(host)->counters[0]++; }
static void request_process(const clap_host_t *host) { (void)host; }
static void request_callback(const clap_host_t *host) { of(host)->counters[1]++; }
static void latency_changed(const clap_host_t *host) { of(host)->counters[2]++; }
static bool is_main_thread(const clap_host_t *host) { return !of(host)->in_process; }
static bool is_audio_thread(const clap_host_t *host) { return of(host)->in_process; }
static void params_rescan(const clap_host_t *host, clap_param_rescan_flags flags)
{
    (void)flags;
    of(host)->counters[3]++;
}
static void params_clear(const clap_host_t *host, clap_id id, clap_param_clear_flags flags)
{
    (void)host, (void)id, (void)flags;
}
static void params_request_flush(const clap_host_t *host) { (void)host; }
static void state_mark_dirty(const clap_host_t *host) { (void)host; }

static const clap_host_latency_t host_latency = {latency_changed};
static const clap_host_thread_check_t host_thread_check = {is_main_thread, is_audio_thread};
static const clap_host_params_t host_params = {params_rescan, params_clear, params_request_flush};
static const clap_host_state_t host_state = {state_mark_dirty};

static const void *host_extension(const clap_host_t *host, const char *id)
{
    ch_instance *h = of(host);
    size_t used = strlen(h->asked);
    snprintf(h->asked + used, sizeof h->asked - used, "%s%s", used ? "," : "", id);
    if (strcmp(id, CLAP_EXT_LATENCY) == 0)
        return &host_latency;
    if (strcmp(id, CLAP_EXT_THREAD_CHECK) == 0)
        return &host_thread_check;
    if (strcmp(id, CLAP_EXT_PARAMS) == 0)
        return &host_params;
    if (strcmp(id, CLAP_EXT_STATE) == 0)
        return &host_state;
    return NULL; /* log, gui, timer-support, ...: not offered */
}

static uint32_t events_size(const clap_input_events_t *list)
{
    return ((const ch_instance *)list->ctx)->n_events;
}

static const clap_event_header_t *events_get(const clap_input_events_t *list, uint32_t i)
{
    const ch_instance *h = (const ch_instance *)list->ctx;
    return i < h->n_events ? &h->events[i].header : NULL;
}

static bool events_push(const clap_output_events_t *list, const clap_event_header_t *event)
{
    (void)list, (void)event;
    return true; /* output events (parameter echoes) are not needed here */
}

/* ---- module ---- */

ch_module *ch_load(const char *path)
{
    ch_module *m = (ch_module *)calloc(1, sizeof *m);
    find_counter();
    if (m == NULL || (m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        snprintf(error, sizeof error, "dlopen: %s", dlerror());
        free(m);
        return NULL;
    }
    m->entry = (const clap_plugin_entry_t *)dlsym(m->dl, "clap_entry");
    if (m->entry == NULL || !clap_version_is_compatible(m->entry->clap_version)
        || !m->entry->init(path)) {
        snprintf(error, sizeof error, "no usable clap_entry in %s", path);
        dlclose(m->dl);
        free(m);
        return NULL;
    }
    m->factory = (const clap_plugin_factory_t *)m->entry->get_factory(CLAP_PLUGIN_FACTORY_ID);
    if (m->factory == NULL) {
        snprintf(error, sizeof error, "no plugin factory in %s", path);
        m->entry->deinit();
        dlclose(m->dl);
        free(m);
        return NULL;
    }
    return m;
}

void ch_unload(ch_module *m)
{
    m->entry->deinit();
    dlclose(m->dl);
    free(m);
}

uint32_t ch_plugin_count(const ch_module *m) { return m->factory->get_plugin_count(m->factory); }

const char *ch_plugin_id(const ch_module *m, uint32_t index)
{
    const clap_plugin_descriptor_t *d = m->factory->get_plugin_descriptor(m->factory, index);
    return d != NULL ? d->id : NULL;
}

/* ---- instance ---- */

static void count_channels(ch_instance *h)
{
    int dir;
    uint32_t i;
    clap_audio_port_info_t info;
    for (dir = 0; dir < 2; dir++) {
        h->ports_n[dir] = h->ports == NULL ? 0 : h->ports->count(h->plugin, dir == 1);
        h->channels[dir] = 0;
        for (i = 0; i < h->ports_n[dir] && i < CH_MAX_PORTS; i++) {
            h->port_channels[dir][i] = h->ports->get(h->plugin, i, dir == 1, &info)
                                       ? info.channel_count : 0;
            h->channels[dir] += h->port_channels[dir][i];
        }
    }
}

ch_instance *ch_create(const ch_module *m, const char *id)
{
    ch_instance *h = (ch_instance *)calloc(1, sizeof *h);
    const clap_version_t version = CLAP_VERSION_INIT;
    uint32_t i, n = ch_plugin_count(m);
    for (i = 0; i < n && strcmp(ch_plugin_id(m, i), id) != 0; i++) {}
    if (h == NULL || i == n) {
        snprintf(error, sizeof error, "no plugin with the id %s", id);
        free(h);
        return NULL;
    }
    h->host.clap_version = version;
    h->host.host_data = h;
    h->host.name = "klon test host";
    h->host.vendor = "klon";
    h->host.url = "https://klon.invalid/";
    h->host.version = "1";
    h->host.get_extension = host_extension;
    h->host.request_restart = request_restart;
    h->host.request_process = request_process;
    h->host.request_callback = request_callback;
    h->in_events.ctx = h;
    h->in_events.size = events_size;
    h->in_events.get = events_get;
    h->out_events.ctx = h;
    h->out_events.try_push = events_push;
    h->plugin = m->factory->create_plugin(m->factory, &h->host, id);
    if (h->plugin == NULL || !h->plugin->init(h->plugin)) {
        snprintf(error, sizeof error, "%s: create_plugin or init failed", id);
        if (h->plugin != NULL)
            h->plugin->destroy(h->plugin);
        free(h);
        return NULL;
    }
    h->params = (const clap_plugin_params_t *)h->plugin->get_extension(h->plugin, CLAP_EXT_PARAMS);
    h->latency = (const clap_plugin_latency_t *)h->plugin->get_extension(h->plugin,
                                                                         CLAP_EXT_LATENCY);
    h->state = (const clap_plugin_state_t *)h->plugin->get_extension(h->plugin, CLAP_EXT_STATE);
    h->ports = (const clap_plugin_audio_ports_t *)h->plugin->get_extension(h->plugin,
                                                                           CLAP_EXT_AUDIO_PORTS);
    count_channels(h);
    return h;
}

void ch_deactivate(ch_instance *h)
{
    if (h->active) {
        h->plugin->stop_processing(h->plugin);
        h->plugin->deactivate(h->plugin);
        h->active = 0;
    }
}

void ch_destroy(ch_instance *h)
{
    ch_deactivate(h);
    h->plugin->destroy(h->plugin);
    free(h);
}

const char *ch_asked(const ch_instance *h) { return h->asked; }
void ch_counters(const ch_instance *h, int out[4]) { memcpy(out, h->counters, sizeof h->counters); }
uint32_t ch_channels(const ch_instance *h, int is_input) { return h->channels[is_input != 0]; }
uint32_t ch_param_count(const ch_instance *h) { return h->params ? h->params->count(h->plugin) : 0; }

int ch_param_info(const ch_instance *h, uint32_t index, uint32_t *id, char *name, double *min,
                  double *max, double *def, uint32_t *flags)
{
    clap_param_info_t info;
    if (h->params == NULL || !h->params->get_info(h->plugin, index, &info))
        return -1;
    *id = info.id;
    memcpy(name, info.name, CLAP_NAME_SIZE);
    *min = info.min_value;
    *max = info.max_value;
    *def = info.default_value;
    *flags = info.flags;
    return 0;
}

int ch_param_value(const ch_instance *h, uint32_t id, double *value)
{
    return h->params != NULL && h->params->get_value(h->plugin, id, value) ? 0 : -1;
}

int ch_latency(const ch_instance *h)
{
    return h->latency != NULL ? (int)h->latency->get(h->plugin) : -1;
}

static int set_events(ch_instance *h, const uint32_t *ids, const double *values, uint32_t n)
{
    uint32_t i;
    if (n > CH_MAX_EVENTS)
        return -1;
    for (i = 0; i < n; i++) {
        clap_event_param_value_t *e = &h->events[i];
        e->header.size = sizeof *e;
        e->header.time = 0;
        e->header.space_id = CLAP_CORE_EVENT_SPACE_ID;
        e->header.type = CLAP_EVENT_PARAM_VALUE;
        e->header.flags = 0;
        e->param_id = ids[i];
        e->cookie = NULL;
        e->note_id = -1;
        e->port_index = e->channel = e->key = -1;
        e->value = values[i];
    }
    h->n_events = n;
    return 0;
}

/* parameter values while not processing (clap.params flush) */
int ch_params_flush(ch_instance *h, const uint32_t *ids, const double *values, uint32_t n)
{
    if (h->params == NULL || h->in_process || set_events(h, ids, values, n) != 0)
        return -1;
    h->params->flush(h->plugin, &h->in_events, &h->out_events);
    h->n_events = 0;
    return 0;
}

int ch_activate(ch_instance *h, double sample_rate, uint32_t min_frames, uint32_t max_frames)
{
    ch_deactivate(h);
    if (!h->plugin->activate(h->plugin, sample_rate, min_frames, max_frames))
        return -1;
    h->active = 1;
    h->max_frames = max_frames;
    h->steady_time = 0;
    count_channels(h);
    return h->plugin->start_processing(h->plugin) ? 0 : -2;
}

/* One block: `frames` frames of channels x `stride` float32 arrays from in/out (offset frames
   in), the parameter events at its start. Returns the process status, or -1. */
static int process_block(ch_instance *h, const float *in, float *out, uint32_t stride,
                         uint32_t frames, const uint32_t *ids, const double *values, uint32_t n)
{
    clap_process_t process;
    int dir, status;
    uint32_t p, c, k;
    if (!h->active || frames > h->max_frames || set_events(h, ids, values, n) != 0)
        return -1;
    for (dir = 0; dir < 2; dir++) {
        for (k = 0; k < h->channels[dir] && k < CH_MAX_CHANNELS; k++)
            h->pointers[dir][k] = (dir ? (float *)in : out) + (size_t)k * stride;
        for (p = 0, k = 0; p < h->ports_n[dir] && p < CH_MAX_PORTS; p++) {
            clap_audio_buffer_t *b = &h->buffers[dir][p];
            memset(b, 0, sizeof *b);
            b->data32 = &h->pointers[dir][k];
            b->channel_count = h->port_channels[dir][p];
            for (c = 0; c < b->channel_count; c++, k++) {}
        }
    }
    memset(&process, 0, sizeof process);
    process.steady_time = h->steady_time;
    process.frames_count = frames;
    process.audio_inputs = h->buffers[1];
    process.audio_outputs = h->buffers[0];
    process.audio_inputs_count = h->ports_n[1];
    process.audio_outputs_count = h->ports_n[0];
    process.in_events = &h->in_events;
    process.out_events = &h->out_events;
    h->in_process = 1;
    if (counter_enable != NULL)
        counter_enable(1);
    status = h->plugin->process(h->plugin, &process);
    if (counter_enable != NULL)
        counter_enable(0);
    h->in_process = 0;
    h->n_events = 0;
    h->steady_time += frames;
    if (h->counters[1] > 0) /* a main-thread callback was asked for: give it between blocks */
        h->plugin->on_main_thread(h->plugin);
    return status;
}

int ch_process(ch_instance *h, const float *in, float *out, uint32_t frames,
               const uint32_t *ids, const double *values, uint32_t n)
{
    return process_block(h, in, out, frames, frames, ids, values, n);
}

/* A whole signal (channels x frames each way) in blocks of sizes[0], sizes[1], ... (cycling);
   event k (param ids[k] to values[k]) arrives at the start of the block at frame at[k], a block
   ending early where an event falls (at[] ascending). Returns 0, or -1. */
int ch_run(ch_instance *h, const float *in, float *out, uint32_t frames, const uint32_t *sizes,
           uint32_t n_sizes, const uint32_t *at, const uint32_t *ids, const double *values,
           uint32_t n_events)
{
    uint32_t pos = 0, block = 0, e = 0, first, n;
    if (n_sizes == 0)
        return -1;
    while (pos < frames) {
        n = sizes[block++ % n_sizes];
        if (n == 0 || n > frames - pos)
            n = frames - pos;
        for (first = e; e < n_events && at[e] <= pos; e++) {}
        if (e < n_events && at[e] - pos < n)
            n = at[e] - pos;
        if (process_block(h, in + pos, out + pos, frames, n, ids + first, values + first,
                          e - first) != CLAP_PROCESS_CONTINUE)
            return -1;
        pos += n;
    }
    return 0;
}

/* ---- state ---- */

typedef struct ch_stream {
    char *data;
    int64_t size, used, chunk;
} ch_stream;

static int64_t stream_write(const clap_ostream_t *stream, const void *buffer, uint64_t size)
{
    ch_stream *s = (ch_stream *)stream->ctx;
    int64_t room = s->size - s->used, n = (int64_t)size < room ? (int64_t)size : room;
    if (n > 0)
        memcpy(s->data + s->used, buffer, (size_t)n);
    s->used += (int64_t)size; /* all of it taken: the caller learns the size it needs */
    return (int64_t)size;
}

static int64_t stream_read(const clap_istream_t *stream, void *buffer, uint64_t size)
{
    ch_stream *s = (ch_stream *)stream->ctx;
    int64_t n = s->size - s->used;
    if ((int64_t)size < n)
        n = (int64_t)size;
    if (s->chunk > 0 && s->chunk < n)
        n = s->chunk;
    memcpy(buffer, s->data + s->used, (size_t)n);
    s->used += n;
    return n;
}

/* The state into buf (capacity bytes); returns its size (more than capacity: buf holds only
   the start, call again with room), or -1. */
int64_t ch_state_save(const ch_instance *h, void *buf, int64_t capacity)
{
    ch_stream s;
    clap_ostream_t stream;
    s.data = (char *)buf;
    s.size = capacity;
    s.used = 0;
    s.chunk = 0;
    stream.ctx = &s;
    stream.write = stream_write;
    if (h->state == NULL || !h->state->save(h->plugin, &stream))
        return -1;
    return s.used;
}

/* Load a state of `size` bytes, handed over at most `chunk` bytes a read (0: as asked). */
int ch_state_load(const ch_instance *h, const void *buf, int64_t size, int64_t chunk)
{
    ch_stream s;
    clap_istream_t stream;
    s.data = (char *)buf;
    s.size = size;
    s.used = 0;
    s.chunk = chunk;
    stream.ctx = &s;
    stream.read = stream_read;
    return h->state != NULL && h->state->load(h->plugin, &stream) ? 0 : -1;
}
