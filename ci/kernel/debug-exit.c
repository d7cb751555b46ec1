/* debug-exit STATUS: ends the qemu guest with a status the host can read.
 * qemu's isa-debug-exit device (iobase 0xf4) exits qemu with (value << 1) | 1
 * when the guest writes value to its port. Debian's cloud kernels have no
 * /dev/port, so the write needs ioperm + outb from a process, and the initramfs
 * has no compiler: built on the host with `gcc -static`. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int value = argc > 1 ? atoi(argv[1]) : 0;
    if (ioperm(0xf4, 4, 1) != 0) {
        perror("debug-exit: ioperm");
        return 1;
    }
    outb((unsigned char)value, 0xf4);
    /* qemu ends the process asynchronously: give it time before concluding
     * that there is no isa-debug-exit device. */
    sleep(5);
    fprintf(stderr, "debug-exit: no isa-debug-exit device at 0xf4\n");
    return 1;
}
