/* klon_plugin.h: the pedal as a plugin sees it, in C99: both engines, an engine switch and a
 * bypass without clicks, one latency for both. The DPF wrapper (klon_plugin.cpp) is only glue.
 *
 *   in -> circuit or neural pedal (klon_engine.h), delayed to the plugin's latency -> out
 *
 * - Latency: the larger of the two engines' at the rate (the circuit's oversampling filters,
 *   the neural pedal's rate converter); the other engine is delayed to it, so switching engines
 *   never changes what the host compensates, and the output after compensation is the exported
 *   pedal's own, sample for sample.
 * - Engine switch: the engine switched to starts from rest and runs unheard for
 *   KLON_PLUGIN_WARM_SECONDS (its input stages settle on the signal), then the two crossfade
 *   linearly over KLON_PLUGIN_FADE_SECONDS; then the other stops. Only one engine runs at rest.
 * - Bypass: the input delayed by the latency, crossfaded with the pedal over the same fade; the
 *   engine keeps running, so the pedal comes back warm.
 * - Knobs glide in the pedals (50 ms), whenever the host changes them; between activation and
 *   the first audio (a host setting up, restoring a session) every control takes its value at
 *   once.
 *
 * - NaN or Inf from the host is silence to the pedals, so the output is always finite.
 *
 * Everything is allocated by klon_plugin_new; nothing after. A rate the pedals do not run at
 * (outside 22050..192000 Hz, or not whole) passes the input through unchanged, latency 0.
 */
#ifndef KLON_PLUGIN_H
#define KLON_PLUGIN_H

#ifdef __cplusplus
extern "C" {
#endif

#define KLON_PLUGIN_MAX_CHANNELS 2
#define KLON_PLUGIN_MAX_DELAY 1024 /* a power of two above the largest latency (323 at 192 kHz) */
#define KLON_PLUGIN_PIECE 256      /* frames per pass through the pedals */
#define KLON_PLUGIN_WARM_SECONDS 0.05
#define KLON_PLUGIN_FADE_SECONDS 0.03

enum { KLON_PLUGIN_CIRCUIT = 0, KLON_PLUGIN_NEURAL = 1, KLON_PLUGIN_ENGINES = 2 };

typedef struct klon_delay { /* a fixed delay of `length` samples */
    float x[KLON_PLUGIN_MAX_DELAY];
    int length, pos;
} klon_delay;

typedef struct klon_plugin {
    int channels;
    int ready;               /* 0: a rate the pedals do not run at; the input passes through */
    int fresh;               /* 1: no audio since activation, controls take their values at once */
    double sample_rate;
    float gain, treble, level;
    int latency;             /* samples, the same for both engines */
    int engine;              /* the engine heard, or faded to */
    int previous;            /* the engine faded from (-1: none, one engine runs) */
    int warm_left;           /* samples the engine faded to runs unheard before the fade */
    double mix, mix_step;    /* the weight of `engine` against `previous` */
    double wet, wet_target, wet_step; /* the pedal's weight against the dry input (bypass) */
    const struct klon_engine *engines[KLON_PLUGIN_ENGINES]; /* the pedals at this rate */
    void *pedal[KLON_PLUGIN_ENGINES][KLON_PLUGIN_MAX_CHANNELS];
    klon_delay aligned[KLON_PLUGIN_ENGINES][KLON_PLUGIN_MAX_CHANNELS]; /* each to `latency` */
    klon_delay dry[KLON_PLUGIN_MAX_CHANNELS];
    float heard[KLON_PLUGIN_MAX_CHANNELS][KLON_PLUGIN_PIECE];
    float faded[KLON_PLUGIN_MAX_CHANNELS][KLON_PLUGIN_PIECE];
    float input[KLON_PLUGIN_MAX_CHANNELS][KLON_PLUGIN_PIECE];
    float mix_weight[KLON_PLUGIN_PIECE], wet_weight[KLON_PLUGIN_PIECE];
} klon_plugin;

/* A plugin for 1 or 2 channels, knobs at 0.5, the circuit engine, not bypassed (NULL: out of
   memory or a bad channel count). */
klon_plugin *klon_plugin_new(int channels);
void klon_plugin_free(klon_plugin *plugin);
/* Start (again) at a sample rate: every state at rest, knobs at their values. Returns 0, or
   nonzero for a rate the pedals do not run at (the plugin then passes audio through). */
int klon_plugin_activate(klon_plugin *plugin, double sample_rate);
int klon_plugin_latency(const klon_plugin *plugin);
/* Knobs 0..1 (clamped); they glide over 50 ms from where they are. */
void klon_plugin_set_knobs(klon_plugin *plugin, float gain, float treble, float level);
void klon_plugin_set_engine(klon_plugin *plugin, int engine);
void klon_plugin_set_bypass(klon_plugin *plugin, int bypass);
/* n frames, one buffer per channel each way; in and out may be the same buffers. */
void klon_plugin_process(klon_plugin *plugin, const float *const *in, float *const *out, int n);

#ifdef __cplusplus
}
#endif

#endif
