/* A shared library for kern_dlopen to load (tests/test_kernel_linux.py). */
int kern_probe(int x);

int kern_probe(int x)
{
    return x * 3 + 1;
}
