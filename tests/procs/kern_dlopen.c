/* kern_dlopen LIBRARY SYMBOL: dlopen the library, print the address of
 * SYMBOL in it ("symbol 0x..."), exit 0 (3 if either fails). For
 * tests/test_kernel_linux.py. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    void *h, *sym;

    if (argc < 3)
        return 2;
    h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 3;
    }
    sym = dlsym(h, argv[2]);
    if (!sym) {
        fprintf(stderr, "%s\n", dlerror());
        return 3;
    }
    printf("symbol %p\n", sym);
    return 0;
}
