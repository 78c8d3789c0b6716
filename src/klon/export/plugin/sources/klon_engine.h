/* klon_engine.h: one exported pedal (klon_pedal.c, the circuit or the neural build) behind a
 * table of functions, so the plugin links both builds side by side.
 *
 * klon_engine.c is compiled once per engine: with -DKLON_ENGINE_CIRCUIT for the circuit pedal,
 * without it for a neural pedal (a model set's export), each with KLON_API static so that the
 * builds' functions and tables stay private to their object file.
 */
#ifndef KLON_ENGINE_H
#define KLON_ENGINE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klon_engine { /* named, so klon_plugin.h can point to one */
    long model_rate; /* the rate its models were trained at (0: the circuit, any rate) */
    size_t size; /* bytes of one channel's state (a klon_pedal) */
    int (*init)(void *pedal, float sample_rate, float gain, float treble, float level);
    int (*latency)(const void *pedal);
    int (*set_params)(void *pedal, float gain, float treble, float level);
    void (*process)(void *pedal, const float *in, float *out, int n);
    /* two channels' pedals side by side: what two process calls give, for less */
    void (*process_pair)(void *a, void *b, const float *in_a, const float *in_b, float *out_a,
                         float *out_b, int n);
    void (*reset)(void *pedal);
} klon_engine;

extern const klon_engine klon_circuit_engine;
extern const klon_engine klon_neural_engine;     /* the shipped 'circuit' set, 44.1 kHz */
extern const klon_engine klon_neural_48k_engine; /* 'circuit-48k', the neural engine at 48 kHz */

#ifdef __cplusplus
}
#endif

#endif
