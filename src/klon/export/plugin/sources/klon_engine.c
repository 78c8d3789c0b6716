/* klon_engine.c: klon_pedal.c (and with -DKLON_ENGINE_CIRCUIT klon_circuit_gain.c) as one
 * klon_engine (klon_engine.h), its functions private to this object file. Compiled once per
 * engine, with -DKLON_ENGINE_NAME=<its table> and -I<the folder of its export>. */
/* inline: the build's functions nothing here calls raise no unused-function warning */
#define KLON_API static inline
#include "klon_pedal.c"
#ifdef KLON_ENGINE_CIRCUIT
#include "klon_circuit_gain.c"
#endif
#include "klon_engine.h"

static int engine_init(void *pedal, float sample_rate, float gain, float treble, float level)
{
    return klon_pedal_init((klon_pedal *)pedal, sample_rate, gain, treble, level);
}

static int engine_latency(const void *pedal)
{
    return klon_pedal_latency((const klon_pedal *)pedal);
}

static int engine_set_params(void *pedal, float gain, float treble, float level)
{
    return klon_pedal_set_params((klon_pedal *)pedal, gain, treble, level);
}

static void engine_process(void *pedal, const float *in, float *out, int n)
{
    klon_pedal_process((klon_pedal *)pedal, in, out, n);
}

static void engine_process_pair(void *a, void *b, const float *in_a, const float *in_b,
                                float *out_a, float *out_b, int n)
{
    klon_pedal_process_pair((klon_pedal *)a, (klon_pedal *)b, in_a, in_b, out_a, out_b, n);
}

static void engine_reset(void *pedal)
{
    klon_pedal_reset((klon_pedal *)pedal);
}

/* KLON_ENGINE_NAME: the table's name, one of klon_engine.h's */
const klon_engine KLON_ENGINE_NAME = {
#ifdef KLON_ENGINE_CIRCUIT
    0, /* any rate */
#else
    KLON_MODEL_RATE,
#endif
    sizeof(klon_pedal), engine_init, engine_latency, engine_set_params, engine_process,
    engine_process_pair, engine_reset,
};
