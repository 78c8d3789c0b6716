/* klon_size: the least firmware that runs what unit.h selects (init, a knob move, two blocks),
 * linked without semihosting or stdio: its arm-none-eabi-size is what the library costs in flash
 * with the libm code it pulls in (tan). Built with -DKLON_SIZE_BASELINE it runs nothing, for the
 * start-up code's share. */
#include "unit.h"

#define BLOCK 32

int main(void)
{
#ifdef KLON_SIZE_BASELINE
    return 0;
#else
    static unit_t unit; /* the caller's state */
    static float block[BLOCK];
    volatile float sink;
    if (UNIT_INIT(&unit, KLON_SAMPLE_RATE, 0.5f) != 0)
        return 1;
    UNIT_PROCESS(&unit, block, block, BLOCK);
    UNIT_SET_KNOBS(&unit, 0.7f, 0.6f, 0.4f);
    UNIT_PROCESS(&unit, block, block, BLOCK);
    sink = block[BLOCK - 1];
    (void)sink;
    return 0;
#endif
}
