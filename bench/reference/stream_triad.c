/* STREAM-style triad in C with OpenMP: what a compiler reaches, to compare the harness's
 * Numba triad (kernels/stream.py, kind probe.stream) against.
 *
 *   stream_triad N [NTIMES] [HUGEPAGES]
 *     N          elements per array (float64); STREAM's rule: each array >= 4x the LLC
 *     NTIMES     timed repetitions (default 20); the first is dropped, as STREAM does
 *     HUGEPAGES  1 (default): madvise(MADV_HUGEPAGE), as NumPy does for its large arrays,
 *                so the comparison with NumPy-allocated buffers is like for like; 0: off
 *   threads: OpenMP (OMP_NUM_THREADS; pin with OMP_PLACES=cores OMP_PROC_BIND=close)
 *
 * a[i] = b[i] + 3.0 * c[i], schedule(static) for the first touch and the kernel alike, so
 * each thread works on the pages it faulted in. Bytes per repetition are STREAM's count,
 * 3 x 8 x N (no write-allocate). best_gbs is STREAM's figure (fastest repetition);
 * median_gbs is the median repetition, the statistic the harness reports.
 * Prints key=value lines: threads, n, array_bytes, bytes, ntimes, best_gbs, median_gbs,
 * worst_gbs, hugepages, check.
 * Build: gcc -O3 -march=native -fopenmp stream_triad.c (bench/reference/build.py does this).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE (2UL << 20)

static double *alloc_array(size_t n, size_t offset, int huge) {
    /* 2 MiB aligned so huge pages cover it; `offset` staggers the arrays by cache lines
     * (STREAM's OFFSET) so they do not alias within a 4 KiB page. */
    size_t bytes = (n * sizeof(double) + offset + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    char *p = aligned_alloc(HUGE_PAGE, bytes);
    if (!p) {
        fprintf(stderr, "cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    if (huge) madvise(p, bytes, MADV_HUGEPAGE);
    return (double *)(p + offset);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [NTIMES] [HUGEPAGES]\n", argv[0]);
        return 2;
    }
    size_t n = strtoull(argv[1], NULL, 10);
    int ntimes = argc > 2 ? atoi(argv[2]) : 20;
    int huge = argc > 3 ? atoi(argv[3]) : 1;
    if (ntimes < 2) ntimes = 2;
    const double scalar = 3.0;

    double *a = alloc_array(n, 0, huge), *b = alloc_array(n, 64, huge), *c = alloc_array(n, 128, huge);
    int threads = 1;

#pragma omp parallel
    {
#pragma omp single
        threads = omp_get_num_threads();
    }

    /* Parallel first touch with the kernel's schedule. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.5;
    }

    double *times = malloc(ntimes * sizeof(double));
    for (int k = 0; k < ntimes; k++) {
        double t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + scalar * c[i];
        times[k] = omp_get_wtime() - t0;
    }

    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) wrong += a[i] != 3.5;

    qsort(times + 1, ntimes - 1, sizeof(double), cmp_double); /* the first run is dropped */
    int m = ntimes - 1;
    double median = m % 2 ? times[1 + m / 2] : 0.5 * (times[m / 2] + times[1 + m / 2]);
    double bytes = 3.0 * sizeof(double) * n;

    printf("threads=%d\n", threads);
    printf("n=%zu\n", n);
    printf("array_bytes=%zu\n", n * sizeof(double));
    printf("bytes=%.0f\n", bytes);
    printf("ntimes=%d\n", ntimes);
    printf("best_gbs=%.3f\n", bytes / times[1] / 1e9);
    printf("median_gbs=%.3f\n", bytes / median / 1e9);
    printf("worst_gbs=%.3f\n", bytes / times[ntimes - 1] / 1e9);
    printf("hugepages=%d\n", huge);
    printf("check=%s\n", wrong ? "wrong" : "ok");
    return wrong != 0;
}
