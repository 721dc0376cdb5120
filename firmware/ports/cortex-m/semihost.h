#ifndef IOTC_SEMIHOST_H
#define IOTC_SEMIHOST_H
void semihost_write(const char *text);
void semihost_exit(int status) __attribute__((noreturn));
#endif
