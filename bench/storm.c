// Syscall storm for bench_bpf_storm.py: `storm openat|getpid RATE SECONDS` (RATE 0 = flat out).
// Prints "<ops> <seconds> <cpu seconds>"; openat mode opens and closes one file per op. The CPU
// time (user + system, this process) includes what the kernel's probes cost it, and not the
// time other processes on a shared machine take from it: ops per CPU-second is the steadier
// figure.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    int openat_mode = strcmp(argv[1], "openat") == 0;
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    double start = now(), elapsed = 0;
    long ops = 0;
    while (elapsed < seconds) {
        for (int i = 0; i < 256; i++) {
            if (openat_mode) {
                int fd = openat(AT_FDCWD, "/etc/hostname", O_RDONLY);
                if (fd >= 0)
                    close(fd);
            } else {
                syscall(SYS_getpid);
            }
        }
        ops += 256;
        elapsed = now() - start;
        if (rate > 0 && ops / rate > elapsed) {
            double ahead = ops / rate - elapsed;
            struct timespec pause = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
            nanosleep(&pause, NULL);
            elapsed = now() - start;
        }
    }
    printf("%ld %.6f %.6f\n", ops, elapsed, clock_s(CLOCK_PROCESS_CPUTIME_ID));
    return 0;
}
