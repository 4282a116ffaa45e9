// SPDX-License-Identifier: MIT
//
// What a program that only allocates does, for tools/hottext.sh: small and
// large objects through malloc, calloc, realloc, the aligned family,
// malloc_usable_size and strdup, from the main thread and from threads
// that exit, and a fork. The functions of libgomem.so this runs are the
// ones src/libgomem_hot.ld places together.
//
//   hottext               the whole run
//   hottext --text-rss    one thread's part, then prints the resident and
//                         whole size of libgomem's text mapping in KiB
//                         (override_test checks that little is resident)
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *work(void *keep)
{
    char *p[400];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 400; i++) {
            size_t n = (size_t)(1 + (i * 7919) % 3000) << (i % 7 == 0 ? 6 : 0); // up to 192 KB
            p[i] = (i & 1) ? calloc(1, n) : malloc(n);
            if (p[i] == NULL)
                abort();
            memset(p[i], 1, n < 64 ? n : 64);
        }
        for (int i = 0; i < 400; i += 3)
            if ((p[i] = realloc(p[i], 1 + (size_t)(i * 31) % 5000)) == NULL)
                abort();
        for (int i = 0; i < 400; i++) {
            if (malloc_usable_size(p[i]) == 0)
                abort();
            free(p[i]);
        }
    }
    void *eight[64]; // 5-8 bytes: their own free list (free.c, "8-byte objects")
    for (int i = 0; i < 64; i++)
        eight[i] = malloc(5 + i % 4);
    for (int i = 0; i < 64; i++)
        free(eight[i]);
    for (int i = 0; i < 64; i++)
        free(malloc(8));
    char *big = malloc(4 << 20); // freed back to the OS (mheap.c, "bigAlloc")
    if (big != NULL)
        memset(big, 1, 4 << 20);
    free(big);
    void *a;
    if (posix_memalign(&a, 64, 100) == 0)
        free(a);
    free(aligned_alloc(4096, 8192));
    free(memalign(32, 33));
    free(strdup("a string"));
    free(keep); // from another thread
    return NULL;
}

// "RSS SIZE" of the executable mapping of a file named libgomem*, in KiB.
static int textRss(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false;
    unsigned long lo, hi, rss;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strchr(line, '/') != NULL)
            in = strcmp(perms, "r-xp") == 0 && strstr(strrchr(line, '/'), "libgomem") != NULL;
        else if (in && sscanf(line, "Rss: %lu kB", &rss) == 1) {
            printf("%lu %lu\n", rss, (hi - lo) / 1024);
            return 0;
        }
    }
    printf("no libgomem text mapping\n");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--text-rss") == 0) {
        work(malloc(10));
        return textRss();
    }
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, work, malloc(100)) != 0)
            return 1;
    work(malloc(50));
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pid_t pid = fork();
    if (pid == 0) {
        free(malloc(10));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return 0;
}
