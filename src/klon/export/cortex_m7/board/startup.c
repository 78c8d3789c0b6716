/* Start-up for the Cortex-M7 on QEMU's mps2-an500: the vector table, a reset handler that turns
 * the FPU on and copies .data to RAM before newlib's crt0 (_start: .bss, heap, argv through
 * semihosting, main, exit), and a SysTick handler that counts the counter's wraps.
 * klon_cycles() reads SysTick as one 64-bit count; with `qemu -icount shift=0` a tick is a fixed
 * number of instructions (the driver calibrates it against a loop of known length). */
#include <stdint.h>

#include "board.h"

extern uint32_t __stack, __data_start__, __data_end__, __data_load__;
extern void _start(void);

#define REG(address) (*(volatile uint32_t *)(address))
#define CPACR REG(0xE000ED88u)
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYSTICK_RELOAD 0xFFFFFFu /* 24 bits */

static volatile uint32_t systick_wraps;

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src = &__data_load__, *dst = &__data_start__;
    CPACR |= 0xFu << 20; /* CP10 and CP11 (the FPU): full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    while (dst < &__data_end__)
        *dst++ = *src++;
    _start();
    for (;;) {
    }
}

void Default_Handler(void)
{
    for (;;) {
    }
}

void SysTick_Handler(void)
{
    systick_wraps++;
}

void klon_cycles_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
    while (SYST_CVR == 0) { /* until the reload value is in */
    }
    systick_wraps = 0;
}

uint64_t klon_cycles(void)
{
    uint32_t wraps, value;
    do { /* a wrap between the two reads would pair an old count with a new value */
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return (uint64_t)wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
}

/* Stack high-water mark: paint the stack below the caller with a pattern, later find the
 * lowest byte that changed. */
#define PAINT 0xA5u
static uint8_t *paint_low, *paint_top;

void klon_stack_paint(uint32_t bytes)
{
    uint8_t *sp, *p;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    paint_top = sp;
    paint_low = sp - bytes;
    for (p = paint_low; p < sp - 16; p++) /* this function's own frame stays above */
        *(volatile uint8_t *)p = PAINT;
}

uint32_t klon_stack_used(void)
{
    uint8_t *p = paint_low;
    while (p < paint_top && *(volatile uint8_t *)p == PAINT)
        p++;
    return (uint32_t)(paint_top - p);
}

typedef void (*vector)(void);

__attribute__((section(".vectors"), used)) static const vector vectors[16] = {
    (vector)(uintptr_t)&__stack, /* initial stack pointer */
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};
