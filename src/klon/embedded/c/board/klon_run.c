/* klon_run: raw float32 samples from a file through the exported C library into another file,
 * built for the host (gcc) or for the Cortex-M7 on QEMU (with -DKLON_BOARD: files through
 * semihosting, SysTick counts instructions under `qemu -icount shift=0`).
 *
 *   klon_run MODE IN OUT BLOCK GAIN TREBLE LEVEL [AT GAIN TREBLE LEVEL]...
 *
 * MODE: pedal (the whole pedal), gain (the gain stage alone: the bank, or with
 * -DKLON_ENGINE_CIRCUIT the circuit gain stage) or model:K (model K of the bank alone, from rest).
 * BLOCK: samples per process call. Each AT G T L moves the knobs before sample AT (in pedal and
 * gain modes). Prints "KLON <name> <value>" lines: samples, process_ticks (SysTick ticks spent
 * in process calls), set_params_ticks, calibration_ticks for calibration_instructions
 * instructions of a known loop, state_bytes and stack_bytes (the deepest stack the library used).
 * Exit status: 0 ok, 2 bad arguments, 3 file trouble, 4 the library refused a setting.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klon_pedal.h"

#ifdef KLON_BOARD
#include "board.h"
#define CALIBRATION_LOOPS 1000000u

/* exactly two instructions per iteration (subs, bne) */
static void known_loop(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}
#else
static void klon_cycles_start(void) {}
static uint64_t klon_cycles(void) { return 0; }
static void klon_stack_paint(uint32_t bytes) { (void)bytes; }
static uint32_t klon_stack_used(void) { return 0; }
#endif

#define STACK_PAINT_BYTES 16384u

#ifdef KLON_ENGINE_CIRCUIT
typedef klon_circuit_gain gain_stage;
#define GAIN_INIT(st, rate, g) klon_circuit_gain_init((st), (rate), (g))
#define GAIN_SET(st, g) (klon_circuit_gain_set_gain((st), (g)), 0)
#define GAIN_PROCESS klon_circuit_gain_process
#else
typedef klon_bank gain_stage;
#define GAIN_INIT(st, rate, g) klon_bank_init((st), (rate), (g))
#define GAIN_SET(st, g) klon_bank_set_gain((st), (g))
#define GAIN_PROCESS klon_bank_process
#endif

enum { PEDAL, GAIN, MODEL };

typedef union {
    klon_pedal pedal;
    gain_stage gain;
    float model[KLON_STATE_SIZE];
} engine_state;

static float *read_floats(const char *path, long *count)
{
    FILE *f = fopen(path, "rb");
    float *x;
    long bytes;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (bytes = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    *count = bytes / (long)sizeof(float);
    x = malloc((size_t)(*count > 0 ? *count : 1) * sizeof(float));
    if (x != NULL && fread(x, sizeof(float), (size_t)*count, f) != (size_t)*count) {
        free(x);
        x = NULL;
    }
    fclose(f);
    return x;
}

static int set_knobs(int mode, engine_state *st, const float *knobs)
{
    if (mode == PEDAL)
        return klon_pedal_set_params(&st->pedal, knobs[0], knobs[1], knobs[2]);
    if (mode == GAIN)
        return GAIN_SET(&st->gain, knobs[0]);
    return 0;
}

static void run(int mode, int model, engine_state *st, const float *in, float *out, int n)
{
    if (mode == PEDAL)
        klon_pedal_process(&st->pedal, in, out, n);
    else if (mode == GAIN)
        GAIN_PROCESS(&st->gain, in, out, n);
    else
        klon_model_run(model, st->model, in, out, n);
}

int main(int argc, char **argv)
{
    static engine_state st; /* the driver's; the library itself keeps no globals */
    int mode, model = 0, block, events, e, init;
    long n = 0, t = 0, stop;
    float *x, *y, knobs[3];
    uint64_t start, set_ticks = 0, calibration = 0;
    uint32_t stack;
    FILE *f;

    if (argc < 8 || (argc - 8) % 4 != 0) {
        fprintf(stderr, "usage: klon_run pedal|gain|model:K IN OUT BLOCK GAIN TREBLE LEVEL "
                        "[AT GAIN TREBLE LEVEL]...\n");
        return 2;
    }
    if (strcmp(argv[1], "pedal") == 0)
        mode = PEDAL;
    else if (strcmp(argv[1], "gain") == 0)
        mode = GAIN;
    else if (strncmp(argv[1], "model:", 6) == 0 && (model = atoi(argv[1] + 6)) >= 0 &&
             model < KLON_MODELS)
        mode = MODEL;
    else {
        fprintf(stderr, "klon_run: unknown mode %s\n", argv[1]);
        return 2;
    }
    block = atoi(argv[4]);
    events = (argc - 8) / 4;
    if (block < 1) {
        fprintf(stderr, "klon_run: BLOCK must be at least 1\n");
        return 2;
    }
    x = read_floats(argv[2], &n);
    y = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (x == NULL || y == NULL) {
        fprintf(stderr, "klon_run: cannot read %s\n", argv[2]);
        return 3;
    }
    for (e = 0; e < 3; e++)
        knobs[e] = (float)atof(argv[5 + e]);
    if (mode == PEDAL)
        init = klon_pedal_init(&st.pedal, KLON_SAMPLE_RATE, knobs[0], knobs[1], knobs[2]);
    else if (mode == GAIN)
        init = GAIN_INIT(&st.gain, KLON_SAMPLE_RATE, knobs[0]);
    else {
        klon_model_rest(model, st.model);
        init = 0;
    }
    if (init != 0) {
        fprintf(stderr, "klon_run: the library refused the settings\n");
        return 4;
    }

#ifdef KLON_BOARD
    klon_cycles_start();
    start = klon_cycles();
    known_loop(CALIBRATION_LOOPS);
    calibration = klon_cycles() - start;
#endif
    klon_stack_paint(STACK_PAINT_BYTES);
    klon_cycles_start();
    start = klon_cycles();
    e = 0;
    while (t < n) {
        if (e < events && atol(argv[8 + 4 * e]) <= t) {
            uint64_t before = klon_cycles();
            float moved[3];
            int i;
            for (i = 0; i < 3; i++)
                moved[i] = (float)atof(argv[9 + 4 * e + i]);
            if (set_knobs(mode, &st, moved) != 0)
                return 4;
            set_ticks += klon_cycles() - before;
            e++;
            continue;
        }
        stop = t + block < n ? t + block : n;
        if (e < events && atol(argv[8 + 4 * e]) < stop)
            stop = atol(argv[8 + 4 * e]);
        run(mode, model, &st, x + t, y + t, (int)(stop - t));
        t = stop;
    }
    start = klon_cycles() - start;
    stack = klon_stack_used();

    f = fopen(argv[3], "wb");
    if (f == NULL || fwrite(y, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "klon_run: cannot write %s\n", argv[3]);
        return 3;
    }
    printf("KLON samples %ld\n", n);
    printf("KLON process_ticks %llu\n", (unsigned long long)(start - set_ticks));
    printf("KLON set_params_ticks %llu\n", (unsigned long long)set_ticks);
#ifdef KLON_BOARD
    printf("KLON calibration_ticks %llu\n", (unsigned long long)calibration);
    printf("KLON calibration_instructions %lu\n", 2ul * CALIBRATION_LOOPS);
#else
    (void)calibration;
#endif
    printf("KLON state_bytes %lu\n", (unsigned long)(mode == PEDAL ? sizeof(klon_pedal)
                                                     : mode == GAIN ? sizeof(gain_stage)
                                                     : sizeof(st.model)));
    printf("KLON stack_bytes %lu\n", (unsigned long)stack);
    free(x);
    free(y);
    return 0;
}
