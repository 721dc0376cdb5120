#include <stdio.h>

#include "test_core.h"

void test_out(const char *text) { fputs(text, stdout); }

int main(void) { return test_core_run(); }
