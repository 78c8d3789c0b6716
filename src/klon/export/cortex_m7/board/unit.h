/* What a board program runs, chosen at compile time: the whole pedal (klon_pedal_*), or with
 * -DKLON_MEASURE_GAIN_STAGE the gain stage alone: the model bank, or with -DKLON_ENGINE_CIRCUIT
 * too the circuit gain stage. unit_t is its state; the UNIT_ macros its calls. */
#ifndef KLON_UNIT_H
#define KLON_UNIT_H

#include "klon_pedal.h"

#ifdef KLON_MEASURE_GAIN_STAGE
#ifdef KLON_ENGINE_CIRCUIT
typedef klon_circuit_gain unit_t;
#define UNIT_INIT(u, rate, gain) klon_circuit_gain_init((u), (rate), (gain))
#define UNIT_SET_KNOBS(u, gain, treble, level) \
    ((void)(treble), (void)(level), klon_circuit_gain_set_gain((u), (gain)))
#define UNIT_PROCESS(u, in, out, n) klon_circuit_gain_process((u), (in), (out), (n))
#else
typedef klon_bank unit_t;
#define UNIT_INIT(u, rate, gain) klon_bank_init((u), (rate), (gain))
#define UNIT_SET_KNOBS(u, gain, treble, level) \
    ((void)(treble), (void)(level), klon_bank_set_gain((u), (gain)))
#define UNIT_PROCESS(u, in, out, n) klon_bank_process((u), (in), (out), (n))
#endif
#else
typedef klon_pedal unit_t;
#define UNIT_INIT(u, rate, gain) klon_pedal_init((u), (rate), (gain), 0.5f, 0.5f)
#define UNIT_SET_KNOBS(u, gain, treble, level) \
    klon_pedal_set_params((u), (gain), (treble), (level))
#define UNIT_PROCESS(u, in, out, n) klon_pedal_process((u), (in), (out), (n))
#endif

#endif
