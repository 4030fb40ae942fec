/* Working-set sweep reference in C: read (sum), write (fill) and triad at one working-set
 * size, to compare the harness's Numba kernels (kernels/sweep.py, kind probe.sweep) against.
 *
 *   sweep OP KBYTES [SECONDS] [CALL_BYTES_PER_THREAD]
 *     OP       read | write | triad
 *     KBYTES   working set in KiB (1024 B): all arrays of the op together, all threads
 *              together (the probe's `kbytes`)
 *     SECONDS  how long to keep timing calls (default 0.5; at least 11 calls)
 *     CALL_BYTES_PER_THREAD  bytes one call moves per thread (default 50e6, the probe's
 *              SWEEP_CALL_BYTES_PER_THREAD)
 *   threads: OpenMP (OMP_NUM_THREADS; pin with OMP_PLACES=cores OMP_PROC_BIND=close)
 *
 * The probe's layout and accounting: float64 arrays of n = KBYTES*1024 / (8 * arrays)
 * elements (read, write: 1 array; triad: 3), each thread owning one block with interior
 * bounds on whole 64-byte lines, first-touched by its own thread; arrays aligned (2 MiB
 * with MADV_HUGEPAGE from 2 MiB up, as NumPy does; else 4 KiB) and staggered by 64 B.
 * One call is one parallel region in which every thread repeats the op over its block
 * `repeats` = ceil(CALL_BYTES_PER_THREAD * threads / bytes per repeat) times. Bytes are
 * STREAM's count, arrays x 8 x n per repeat (no write-allocate).
 *
 *   read   sum of the block in ACC vector accumulators (16 zmm with AVX-512: 32 registers;
 *          12 ymm with AVX/AVX2, 12 xmm with SSE2 only: 16 registers), half of them on each
 *          half of the block (two streams, as the probe reads), kept across repeats and
 *          reduced once per call, so the loads are the only limit
 *   write  block[i] = value + r in repeat r (a different value each repeat; a compiler
 *          barrier after each repeat so none is a dead store)
 *   triad  repeats alternate a = b + s*c and b = a + s*c (s = 3), as the probe does
 *
 * Prints key=value lines: op, threads, kbytes, working_set_bytes, arrays, n, repeats,
 * bytes_per_call, vector_bits, accumulators, calls, best_seconds, median_seconds,
 * best_gbs, median_gbs, worst_gbs, check (ok when the result equals the closed form).
 * Build: gcc -O3 -march=native -fopenmp sweep.c (bench/reference/build.py does this);
 * -march=haswell for the AVX2 build.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE (2UL << 20)
#define SCALAR 3.0
#define WRITE_VALUE 1.25

#if defined(__AVX512F__)
#define VBITS 512
#define ACC 16
typedef __m512d vec;
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VADD(x, y) _mm512_add_pd(x, y)
#define VMUL(x, y) _mm512_mul_pd(x, y)
#define VSET1(x) _mm512_set1_pd(x)
#elif defined(__AVX__)
#define VBITS 256
#define ACC 12
typedef __m256d vec;
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VADD(x, y) _mm256_add_pd(x, y)
#define VMUL(x, y) _mm256_mul_pd(x, y)
#define VSET1(x) _mm256_set1_pd(x)
#else
#define VBITS 128
#define ACC 12
typedef __m128d vec;
#define VZERO() _mm_setzero_pd()
#define VLOAD(p) _mm_loadu_pd(p)
#define VSTORE(p, v) _mm_storeu_pd(p, v)
#define VADD(x, y) _mm_add_pd(x, y)
#define VMUL(x, y) _mm_mul_pd(x, y)
#define VSET1(x) _mm_set1_pd(x)
#endif
#define LANES (VBITS / 64)

/* Keeps the compiler from merging or dropping stores across repeats. */
#define BARRIER() __asm__ volatile("" ::: "memory")

static double *alloc_array(size_t n, size_t offset) {
    size_t bytes = n * sizeof(double) + offset;
    size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : 4096;
    bytes = (bytes + align - 1) / align * align;
    char *p = aligned_alloc(align, bytes);
    if (!p) {
        fprintf(stderr, "cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    if (align == HUGE_PAGE) madvise(p, bytes, MADV_HUGEPAGE);
    return (double *)(p + offset);
}

/* The sum of p[0:m], `repeats` times. Like the probe, the two halves of the block are read
 * at once (two streams: with ymm, one stream read DRAM 20% slower here, 14.9 against 18.9
 * GB/s), ACC / 2 vector accumulators each; unlike it, the accumulators stay in registers
 * across repeats and are reduced once per call. What is left past the halves (under two
 * steps) goes through two of the chains in pairs of vectors, then a scalar chain (the probe
 * does the same). */
static double read_block(const double *restrict p, size_t m, long repeats) {
    enum { H = ACC / 2 };
    vec acc[ACC];
    for (int k = 0; k < ACC; k++) acc[k] = VZERO();
    const size_t step = (size_t)H * LANES, half = m / (2 * step) * step;
    const double *restrict q = p + half;
    double tail = 0.0;
    for (long r = 0; r < repeats; r++) {
        for (size_t i = 0; i < half; i += step) {
#pragma GCC unroll 16
            for (int k = 0; k < H; k++) {
                acc[k] = VADD(acc[k], VLOAD(p + i + (size_t)k * LANES));
                acc[H + k] = VADD(acc[H + k], VLOAD(q + i + (size_t)k * LANES));
            }
        }
        size_t i = 2 * half;
        for (; i + 2 * LANES <= m; i += 2 * LANES) {
            acc[0] = VADD(acc[0], VLOAD(p + i));
            acc[H] = VADD(acc[H], VLOAD(p + i + LANES));
        }
        for (; i < m; i++) tail += p[i];
    }
    for (int k = 1; k < ACC; k++) acc[0] = VADD(acc[0], acc[k]);
    double lanes[LANES], s = tail;
    memcpy(lanes, &acc[0], sizeof lanes);
    for (int l = 0; l < LANES; l++) s += lanes[l];
    return s;
}

static void write_block(double *restrict p, size_t m, long repeats) {
    const size_t step = 4 * LANES, main_end = m / step * step;
    for (long r = 0; r < repeats; r++) {
        const double value = WRITE_VALUE + r;
        const vec v = VSET1(value);
        for (size_t i = 0; i < main_end; i += step) {
            VSTORE(p + i, v);
            VSTORE(p + i + LANES, v);
            VSTORE(p + i + 2 * LANES, v);
            VSTORE(p + i + 3 * LANES, v);
        }
        for (size_t i = main_end; i < m; i++) p[i] = value;
        BARRIER();
    }
}

/* out = x + s*c, 4 vectors a step (gcc contracts the multiply and add into one FMA). */
static void triad_pass(double *restrict out, const double *restrict x, const double *restrict c, size_t m) {
    const vec s = VSET1(SCALAR);
    const size_t step = 4 * LANES, main_end = m / step * step;
    for (size_t i = 0; i < main_end; i += step) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const size_t j = i + (size_t)k * LANES;
            VSTORE(out + j, VADD(VLOAD(x + j), VMUL(s, VLOAD(c + j))));
        }
    }
    for (size_t i = main_end; i < m; i++) out[i] = x[i] + SCALAR * c[i];
}

static void triad_block(double *a, double *b, const double *c, size_t m, long repeats) {
    for (long r = 0; r < repeats; r++) {
        if (r % 2 == 0) triad_pass(a, b, c, m);
        else triad_pass(b, a, c, m);
        BARRIER();
    }
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s read|write|triad KBYTES [SECONDS] [CALL_BYTES_PER_THREAD]\n", argv[0]);
        return 2;
    }
    const char *op = argv[1];
    const double kbytes = atof(argv[2]);
    const double seconds = argc > 3 ? atof(argv[3]) : 0.5;
    const double call_bytes = argc > 4 ? atof(argv[4]) : 50e6;
    const int is_read = !strcmp(op, "read"), is_write = !strcmp(op, "write"), is_triad = !strcmp(op, "triad");
    if (!(is_read || is_write || is_triad)) {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    const int narrays = is_triad ? 3 : 1;
    const size_t n = (size_t)llround(kbytes * 1024) / (8 * narrays);
    int threads = omp_get_max_threads();
    if (n < (size_t)8 * threads) {
        fprintf(stderr, "%g KiB leaves fewer than one 64-byte line per thread per array\n", kbytes);
        return 2;
    }
    /* The probe's thread_blocks: equal shares, interior bounds on whole lines. */
    size_t *bounds = malloc((threads + 1) * sizeof(size_t));
    for (int t = 0; t < threads; t++) bounds[t] = (n * t / threads) / 8 * 8;
    bounds[threads] = n;
    const double bytes_per_repeat = (double)narrays * 8 * n;
    const long repeats = (long)fmax(1.0, ceil(call_bytes * threads / bytes_per_repeat));

    double *a = alloc_array(n, 0), *b = is_triad ? alloc_array(n, 64) : NULL,
           *c = is_triad ? alloc_array(n, 128) : NULL;
    double *partial = calloc(threads, sizeof(double));

#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        for (size_t i = bounds[t]; i < bounds[t + 1]; i++) {
            if (is_read) a[i] = 1.0 + (double)(i % 8);  /* the probe's values: exact sums */
            else a[i] = 1.0;
            if (is_triad) { b[i] = 2.0; c[i] = 3.0; }
        }
    }

    size_t cap = 1024, calls = 0;
    double *times = malloc(cap * sizeof(double));
    const double start = omp_get_wtime();
    int warm = 1;
    for (;;) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num();
            size_t lo = bounds[t], m = bounds[t + 1] - lo;
            if (is_read) partial[t] = read_block(a + lo, m, repeats);
            else if (is_write) write_block(a + lo, m, repeats);
            else triad_block(a + lo, b + lo, c + lo, m, repeats);
        }
        double t1 = omp_get_wtime();
        if (warm) {  /* 0.1 s of untimed calls first: clocks up, pages in, caches warm */
            if (t1 - start >= 0.1) warm = 0;
            continue;
        }
        if (calls == cap) times = realloc(times, (cap *= 2) * sizeof(double));
        times[calls++] = t1 - t0;
        if (t1 - start >= 0.1 + seconds && calls >= 11) break;
    }

    /* Check the last call against the closed form. */
    int ok = 1;
    if (is_read) {
        double got = 0, block_sum = 0;
        for (int t = 0; t < threads; t++) got += partial[t];
        for (size_t i = 0; i < n; i++) block_sum += a[i];
        ok = got == block_sum * repeats;
    } else if (is_write) {
        const double want = WRITE_VALUE + repeats - 1;
        for (size_t i = 0; i < n && ok; i++) ok = a[i] == want;
    } else {
        /* Every call starts where the last left off: run one more from a known state. */
        for (size_t i = 0; i < n; i++) { a[i] = NAN; b[i] = 2.0; }
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num();
            size_t lo = bounds[t];
            triad_block(a + lo, b + lo, c + lo, bounds[t + 1] - lo, repeats);
        }
        const double step = SCALAR * 3.0, last = 2.0 + repeats * step, before = 2.0 + (repeats - 1) * step;
        const double want_a = repeats % 2 ? last : before, want_b = repeats % 2 ? before : last;
        for (size_t i = 0; i < n && ok; i++) ok = a[i] == want_a && b[i] == want_b && c[i] == 3.0;
    }

    qsort(times, calls, sizeof(double), cmp_double);
    const double best = times[0], median = times[calls / 2], worst = times[calls - 1];
    const double bytes = bytes_per_repeat * repeats;
    printf("op=%s\nthreads=%d\nkbytes=%g\nworking_set_bytes=%.0f\narrays=%d\nn=%zu\nrepeats=%ld\n",
           op, threads, kbytes, bytes_per_repeat, narrays, n, repeats);
    printf("bytes_per_call=%.0f\nvector_bits=%d\naccumulators=%d\ncalls=%zu\n", bytes, VBITS,
           is_read ? ACC : 0, calls);
    printf("best_seconds=%.9f\nmedian_seconds=%.9f\nbest_gbs=%.3f\nmedian_gbs=%.3f\nworst_gbs=%.3f\ncheck=%s\n",
           best, median, bytes / best / 1e9, bytes / median / 1e9, bytes / worst / 1e9, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
