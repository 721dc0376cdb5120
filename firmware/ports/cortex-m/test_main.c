/* The core's unit tests on the emulated MCU: output and status through semihosting. */
#include "semihost.h"
#include "test_core.h"

void test_out(const char *text) { semihost_write(text); }

int main(void)
{
    semihost_write("iotc core tests on Cortex-M3 (qemu lm3s6965evb)\n");
    return test_core_run();
}
