/* Minimal Cortex-M3 start: a vector table, .data copied, .bss zeroed, main(), then an ARM
 * semihosting exit that QEMU turns into its own exit status. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;
int main(void);
void reset_handler(void);

static void fault_handler(void)
{
    semihost_write("fault\n");
    semihost_exit(1);
}

#define VEC(f) ((uintptr_t)(f))
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)&_stack_top, VEC(reset_handler), VEC(fault_handler), VEC(fault_handler), VEC(fault_handler),
    VEC(fault_handler), VEC(fault_handler), 0, 0, 0, 0, VEC(fault_handler), VEC(fault_handler), 0,
    VEC(fault_handler), VEC(fault_handler),
};

void reset_handler(void)
{
    /* The linker's section bounds are addresses, not C objects: compare them as such. */
    uint32_t *src = &_data_load, *dst = &_data_start;
    while ((uintptr_t)dst < (uintptr_t)&_data_end) *dst++ = *src++;
    for (dst = &_bss_start; (uintptr_t)dst < (uintptr_t)&_bss_end;) *dst++ = 0;
    semihost_exit(main());
}

/* ARM semihosting: SYS_WRITE0 (0x04) and SYS_EXIT (0x18) through BKPT 0xAB on M-profile. */
static int semihost_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_write(const char *text) { (void)semihost_call(0x04, text); }

void semihost_exit(int status)
{
    /* ADP_Stopped_ApplicationExit (0x20026) exits QEMU with 0; anything else (RunTimeErrorUnknown) with 1. */
    (void)semihost_call(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026 : 0x20023));
    for (;;) {
    }
}
