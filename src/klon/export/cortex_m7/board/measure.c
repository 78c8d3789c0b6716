/* The Cortex-M7 measurement program: a clip from a host file through the exported C, the output
 * to a host file (newlib semihosting), and the instructions each 128-sample block took (the
 * Teensy Audio Library's block), counted by SysTick under `qemu-system-arm -icount shift=0`.
 *
 *     measure.elf IN.f32 OUT.f32 SAMPLE_RATE GAIN MOVE_AT GAIN_AFTER [TREBLE_AFTER LEVEL_AFTER]
 *
 * Built as the whole pedal (klon_pedal_*), or with -DKLON_MEASURE_GAIN_STAGE the gain stage
 * alone: the model bank, or with -DKLON_ENGINE_CIRCUIT too the circuit gain stage. At sample
 * MOVE_AT the Gain starts gliding to GAIN_AFTER (and the pedal's Treble and Level to theirs,
 * from 0.5); blocks during the glide are counted apart.
 * Prints "KLON name value" lines for klon.export.cortex_m7.measure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "board.h"
#include "unit.h"

#define MAX_FRAMES 22050 /* 0.5 s at 44.1 kHz */
#define BLOCK 128
#define CALIBRATION_LOOPS 1000000u /* two instructions each: subs, bne */

static unit_t unit;
static float x[MAX_FRAMES], y[MAX_FRAMES];

/* SysTick ticks for a loop of known length: the tick-to-instruction ratio of this QEMU */
static uint64_t calibration_ticks(void)
{
    uint64_t start;
    uint32_t n = CALIBRATION_LOOPS;
    klon_cycles_start();
    start = klon_cycles();
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return klon_cycles() - start;
}

int main(int argc, char **argv)
{
    FILE *f;
    int n, i, move_at, gliding_from = -1;
    float rate, gain, gain_after, treble_after = 0.5f, level_after = 0.5f;
    uint64_t t, steady = 0, glide = 0, worst = 0;
    int steady_samples = 0, glide_samples = 0;
    if (argc != 7 && argc != 9) {
        printf("usage: measure IN.f32 OUT.f32 SAMPLE_RATE GAIN MOVE_AT GAIN_AFTER "
               "[TREBLE_AFTER LEVEL_AFTER]\n");
        return 2;
    }
    if (argc == 9) {
        treble_after = (float)atof(argv[7]);
        level_after = (float)atof(argv[8]);
    }
    rate = (float)atof(argv[3]);
    gain = (float)atof(argv[4]);
    move_at = atoi(argv[5]);
    gain_after = (float)atof(argv[6]);
    if (!(f = fopen(argv[1], "rb"))) {
        printf("cannot open %s\n", argv[1]);
        return 3;
    }
    n = (int)fread(x, sizeof(float), MAX_FRAMES, f);
    fclose(f);
    printf("KLON calibration_ticks %llu\nKLON calibration_instructions %lu\n",
           (unsigned long long)calibration_ticks(), 2ul * CALIBRATION_LOOPS);
    if (UNIT_INIT(&unit, rate, gain) != 0) {
        printf("init refused the sample rate %g\n", (double)rate);
        return 4;
    }
    klon_stack_paint(4096);
    for (i = 0; i < n; i += BLOCK) {
        int m = n - i < BLOCK ? n - i : BLOCK;
        uint64_t start;
        klon_cycles_start();
        start = klon_cycles();
        if (i <= move_at && move_at < i + BLOCK) { /* the knob's burst counts in its block */
            UNIT_SET_KNOBS(&unit, gain_after, treble_after, level_after);
            gliding_from = i;
        }
        UNIT_PROCESS(&unit, x + i, y + i, m);
        t = klon_cycles() - start;
        /* the 50 ms glide (and the block that started it) counted apart */
        if (gliding_from >= 0 && i < gliding_from + (int)(0.05f * rate) + BLOCK) {
            glide += t;
            glide_samples += m;
        } else {
            steady += t;
            steady_samples += m;
        }
        if (t > worst)
            worst = t;
    }
    printf("KLON steady_ticks %llu\nKLON steady_samples %d\n", (unsigned long long)steady,
           steady_samples);
    printf("KLON glide_ticks %llu\nKLON glide_samples %d\n", (unsigned long long)glide,
           glide_samples);
    printf("KLON worst_block_ticks %llu\nKLON block %d\n", (unsigned long long)worst, BLOCK);
    printf("KLON state_bytes %u\nKLON stack_bytes %lu\n", (unsigned)sizeof(unit),
           (unsigned long)klon_stack_used());
    if (!(f = fopen(argv[2], "wb"))) {
        printf("cannot open %s\n", argv[2]);
        return 5;
    }
    fwrite(y, sizeof(float), (size_t)n, f);
    fclose(f);
    return 0;
}
