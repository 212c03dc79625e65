/* kern_exit CODE [ARGS...]: exit with CODE (0..255), or with CODE -N kill
 * itself with signal N. The other arguments only make the command line
 * unique. For tests/test_kernel_linux.py. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 0;

    if (code < 0) {
        signal(-code, SIG_DFL);
        raise(-code);
        pause();
    }
    return code & 0xff;
}
