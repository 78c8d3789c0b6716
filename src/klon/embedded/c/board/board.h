/* What startup.c offers a program on the mps2-an500. */
#ifndef KLON_BOARD_H
#define KLON_BOARD_H

#include <stdint.h>

/* Start SysTick from zero on the processor clock. */
void klon_cycles_start(void);
/* SysTick ticks since klon_cycles_start (wraps counted by the SysTick interrupt). */
uint64_t klon_cycles(void);

#endif
