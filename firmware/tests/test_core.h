#ifndef TEST_CORE_H
#define TEST_CORE_H
/* Provided by the runner (host: stdout; Cortex-M: semihosting). */
void test_out(const char *text);
int test_core_run(void);
#endif
