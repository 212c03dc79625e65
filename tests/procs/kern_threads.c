/* kern_threads N CODE: start N threads; the main thread exits alone first
 * (pthread_exit), the threads end one by one, and the last one calls
 * exit(CODE). The process is gone only then. For tests/test_kernel_linux.py. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static int code;
static int left;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
    int last;

    (void)arg;
    usleep(50000);
    pthread_mutex_lock(&lock);
    last = --left == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        exit(code);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4, i;
    pthread_t t;

    code = argc > 2 ? atoi(argv[2]) : 0;
    left = n;
    for (i = 0; i < n; i++)
        if (pthread_create(&t, NULL, worker, NULL) != 0)
            return 99;
    pthread_exit(NULL);
}
