/* What startup.c offers a program on the mps2-an500. */
#ifndef KLON_BOARD_H
#define KLON_BOARD_H

#include <stdint.h>

/* Start SysTick from zero on the processor clock. */
void klon_cycles_start(void);
/* SysTick ticks since klon_cycles_start (wraps counted by the SysTick interrupt). */
uint64_t klon_cycles(void);

/* Fill `bytes` of stack below the caller with a pattern ... */
void klon_stack_paint(uint32_t bytes);
/* ... and how many of them have been used since (the deepest call's reach). */
uint32_t klon_stack_used(void);

#endif
