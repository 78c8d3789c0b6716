/* klon_plugin.c: see klon_plugin.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "klon_engine.h"
#include "klon_plugin.h"

#define DELAY_MASK (KLON_PLUGIN_MAX_DELAY - 1)

/* the neural pedals, the first the default: at a rate one was trained at, that one runs
   natively, else the first inside its rate converter (as klon.neural.gain_stage.default_models) */
static const klon_engine *const neural_engines[] = {&klon_neural_engine, &klon_neural_48k_engine};
#define NEURAL_ENGINES (int)(sizeof neural_engines / sizeof neural_engines[0])

static const klon_engine *neural_for(double sample_rate)
{
    int i;
    for (i = 0; i < NEURAL_ENGINES; i++)
        if ((double)neural_engines[i]->model_rate == sample_rate)
            return neural_engines[i];
    return neural_engines[0];
}

static float knob(float value)
{
    return value > 0.0f ? (value < 1.0f ? value : 1.0f) : 0.0f; /* NaN -> 0 */
}

static void delay_start(klon_delay *d, int length)
{
    memset(d->x, 0, sizeof d->x);
    d->length = length;
    d->pos = 0;
}

static void delay_run(klon_delay *d, float *x, int n)
{
    int t;
    if (d->length == 0)
        return;
    for (t = 0; t < n; t++) {
        d->x[d->pos] = x[t];
        x[t] = d->x[(d->pos - d->length) & DELAY_MASK];
        d->pos = (d->pos + 1) & DELAY_MASK;
    }
}

klon_plugin *klon_plugin_new(int channels)
{
    klon_plugin *p;
    int e, c, i;
    size_t size[KLON_PLUGIN_ENGINES];
    if (channels < 1 || channels > KLON_PLUGIN_MAX_CHANNELS)
        return NULL;
    p = (klon_plugin *)calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->channels = channels;
    p->gain = p->treble = p->level = 0.5f;
    p->engine = KLON_PLUGIN_CIRCUIT;
    p->wet = p->wet_target = 1.0;
    p->engines[KLON_PLUGIN_CIRCUIT] = &klon_circuit_engine;
    p->engines[KLON_PLUGIN_NEURAL] = neural_engines[0];
    size[KLON_PLUGIN_CIRCUIT] = klon_circuit_engine.size;
    size[KLON_PLUGIN_NEURAL] = 0;
    for (i = 0; i < NEURAL_ENGINES; i++)
        if (neural_engines[i]->size > size[KLON_PLUGIN_NEURAL])
            size[KLON_PLUGIN_NEURAL] = neural_engines[i]->size;
    for (e = 0; e < KLON_PLUGIN_ENGINES; e++)
        for (c = 0; c < channels; c++)
            if ((p->pedal[e][c] = calloc(1, size[e])) == NULL) {
                klon_plugin_free(p);
                return NULL;
            }
    return p;
}

void klon_plugin_free(klon_plugin *p)
{
    int e, c;
    if (p == NULL)
        return;
    for (e = 0; e < KLON_PLUGIN_ENGINES; e++)
        for (c = 0; c < KLON_PLUGIN_MAX_CHANNELS; c++)
            free(p->pedal[e][c]);
    free(p);
}

int klon_plugin_activate(klon_plugin *p, double sample_rate)
{
    int e, c, latency[KLON_PLUGIN_ENGINES];
    p->sample_rate = sample_rate;
    p->engines[KLON_PLUGIN_NEURAL] = neural_for(sample_rate);
    p->ready = 1;
    p->latency = 0;
    for (e = 0; e < KLON_PLUGIN_ENGINES; e++) {
        for (c = 0; c < p->channels; c++)
            if (p->engines[e]->init(p->pedal[e][c], (float)sample_rate, p->gain, p->treble,
                                 p->level) != 0)
                p->ready = 0;
        latency[e] = p->ready ? p->engines[e]->latency(p->pedal[e][0]) : 0;
        if (latency[e] > p->latency)
            p->latency = latency[e];
    }
    if (p->latency >= KLON_PLUGIN_MAX_DELAY)
        p->ready = 0;
    if (!p->ready)
        p->latency = 0;
    for (c = 0; c < p->channels; c++) {
        for (e = 0; e < KLON_PLUGIN_ENGINES; e++)
            delay_start(&p->aligned[e][c], p->ready ? p->latency - latency[e] : 0);
        delay_start(&p->dry[c], p->latency);
    }
    p->previous = -1;
    p->warm_left = 0;
    p->mix = 1.0;
    p->mix_step = p->wet_step = 1.0 / (KLON_PLUGIN_FADE_SECONDS * sample_rate);
    p->wet = p->wet_target;
    p->fresh = 1;
    return p->ready ? 0 : -1;
}

int klon_plugin_latency(const klon_plugin *p)
{
    return p->latency;
}

void klon_plugin_set_knobs(klon_plugin *p, float gain, float treble, float level)
{
    int e, c;
    p->gain = knob(gain);
    p->treble = knob(treble);
    p->level = knob(level);
    if (!p->ready)
        return;
    for (e = 0; e < KLON_PLUGIN_ENGINES; e++)
        for (c = 0; c < p->channels; c++) {
            p->engines[e]->set_params(p->pedal[e][c], p->gain, p->treble, p->level);
            if (p->fresh) /* no audio yet: start at the values, not glide to them */
                p->engines[e]->reset(p->pedal[e][c]);
        }
}

void klon_plugin_set_engine(klon_plugin *p, int engine)
{
    int c;
    engine = engine == KLON_PLUGIN_NEURAL ? KLON_PLUGIN_NEURAL : KLON_PLUGIN_CIRCUIT;
    if (engine == p->engine)
        return;
    if (p->fresh) { /* no audio yet: nothing to fade */
        p->engine = engine;
        p->previous = -1;
        p->mix = 1.0;
        return;
    }
    if (engine == p->previous) { /* back to the engine still running: the fade turns round */
        p->previous = p->engine;
        p->engine = engine;
        p->mix = p->warm_left > 0 ? 1.0 : 1.0 - p->mix;
        p->warm_left = 0;
        if (p->mix >= 1.0)
            p->previous = -1;
        return;
    }
    p->previous = p->engine;
    p->engine = engine;
    p->mix = 0.0;
    p->warm_left = p->ready ? (int)(KLON_PLUGIN_WARM_SECONDS * p->sample_rate) : 0;
    if (!p->ready)
        return;
    for (c = 0; c < p->channels; c++) {
        p->engines[engine]->reset(p->pedal[engine][c]);
        delay_start(&p->aligned[engine][c], p->aligned[engine][c].length);
    }
}

void klon_plugin_set_bypass(klon_plugin *p, int bypass)
{
    p->wet_target = bypass ? 0.0 : 1.0;
    if (p->fresh)
        p->wet = p->wet_target;
}

/* the weights of one piece, sample by sample: the engine faded to, the pedal against dry */
static void advance_weights(klon_plugin *p, int n)
{
    int t;
    for (t = 0; t < n; t++) {
        if (p->previous >= 0) {
            if (p->warm_left > 0)
                p->warm_left--;
            else if ((p->mix += p->mix_step) >= 1.0) {
                p->mix = 1.0;
                p->previous = -1; /* from the next piece on, one engine runs */
            }
        }
        p->mix_weight[t] = (float)p->mix;
        if (p->wet < p->wet_target)
            p->wet = p->wet + p->wet_step < p->wet_target ? p->wet + p->wet_step : p->wet_target;
        else if (p->wet > p->wet_target)
            p->wet = p->wet - p->wet_step > p->wet_target ? p->wet - p->wet_step : p->wet_target;
        p->wet_weight[t] = (float)p->wet;
    }
}

/* one engine on every channel (two side by side, klon_engine's process_pair); a pedal whose
   output is not finite (it never should be: its input is finite, and clamped where it enters
   the pedal) restarts from rest, silent for that piece */
static void run_engine(klon_plugin *p, int e, float out[][KLON_PLUGIN_PIECE], int n)
{
    int c, t, finite;
    if (p->channels == 2)
        p->engines[e]->process_pair(p->pedal[e][0], p->pedal[e][1], p->input[0], p->input[1],
                                    out[0], out[1], n);
    else
        p->engines[e]->process(p->pedal[e][0], p->input[0], out[0], n);
    for (c = 0; c < p->channels; c++) {
        for (t = 0, finite = 1; t < n; t++)
            finite &= isfinite(out[c][t]) != 0;
        if (!finite) {
            p->engines[e]->reset(p->pedal[e][c]);
            memset(out[c], 0, (size_t)n * sizeof(float));
        }
        delay_run(&p->aligned[e][c], out[c], n);
    }
}

static void process_piece(klon_plugin *p, const float *const *in, float *const *out, int start,
                          int n)
{
    int c, t;
    const int previous = p->previous, fading = previous >= 0;
    int wet_moves = p->wet != p->wet_target;
    advance_weights(p, n);
    for (c = 0; c < p->channels; c++) /* a host's NaN or Inf is silence to the pedal */
        for (t = 0; t < n; t++)
            p->input[c][t] = isfinite(in[c][start + t]) ? in[c][start + t] : 0.0f;
    run_engine(p, p->engine, p->heard, n);
    if (fading)
        run_engine(p, previous, p->faded, n);
    for (c = 0; c < p->channels; c++) {
        float *heard = p->heard[c], *input = p->input[c];
        if (fading)
            for (t = 0; t < n; t++)
                heard[t] = p->mix_weight[t] * heard[t]
                           + (1.0f - p->mix_weight[t]) * p->faded[c][t];
        delay_run(&p->dry[c], input, n);
        if (wet_moves || p->wet != 1.0)
            for (t = 0; t < n; t++)
                heard[t] = p->wet_weight[t] * heard[t] + (1.0f - p->wet_weight[t]) * input[t];
        memcpy(out[c] + start, heard, (size_t)n * sizeof(float));
    }
}

void klon_plugin_process(klon_plugin *p, const float *const *in, float *const *out, int n)
{
    int start, m, c;
    if (!p->ready) {
        for (c = 0; c < p->channels; c++)
            if (out[c] != in[c])
                memmove(out[c], in[c], (size_t)n * sizeof(float));
        return;
    }
    p->fresh = p->fresh && n == 0;
    for (start = 0; start < n; start += m) {
        m = n - start < KLON_PLUGIN_PIECE ? n - start : KLON_PLUGIN_PIECE;
        process_piece(p, in, out, start, m);
    }
}
