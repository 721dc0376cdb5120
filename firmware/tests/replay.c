/* Host tool for the differential test against simulators/device.py: each file argument holds
 * "<topic>\0<payload>"; a fresh device (fake board) handles it and the tool prints one line per
 * file: the outcome, then each publish as topic and hex payload. */
#include <stdio.h>
#include <string.h>

#include "fake_hal.h"
#include "iotc_device.h"

static char input[1 << 16];

int main(int argc, char **argv)
{
    static iotc_device dev;
    static fake_board board;
    iotc_hal hal;
    int a, i;
    if (argc < 3) { fprintf(stderr, "usage: replay DEVICE_ID FILE...\n"); return 2; }
    for (a = 2; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        size_t n, topic_len;
        const char *nul;
        int outcome;
        if (!f) { perror(argv[a]); return 2; }
        n = fread(input, 1, sizeof input, f);
        fclose(f);
        fake_hal_init(&hal, &board);
        if (iotc_device_init(&dev, &hal, argv[1], "ops@example.com")) return 2;
        nul = memchr(input, 0, n);
        topic_len = nul ? (size_t)(nul - input) : n;
        outcome = iotc_device_handle(&dev, input, topic_len, nul ? nul + 1 : "", nul ? n - topic_len - 1 : 0);
        printf("%s\t%d", argv[a], outcome);
        for (i = 0; i < board.publishes; i++) {
            size_t k;
            printf("\t%s ", board.topics[i]);
            for (k = 0; k < board.lens[i]; k++) printf("%02x", (unsigned char)board.payloads[i][k]);
        }
        printf("\n");
    }
    return 0;
}
