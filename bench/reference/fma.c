/* FMA-throughput reference in C: what a compiler with intrinsics reaches, to compare
 * the harness's llvmlite kernel (kernels/fma.py) against.
 *
 *   fma ISA DTYPE [SECONDS] [ITERATIONS]
 *     ISA    scalar | sse (128-bit _mm_fmadd) | avx2 (256-bit) | avx512 (512-bit)
 *     DTYPE  float32 | float64
 *   threads: OpenMP (OMP_NUM_THREADS; pin with OMP_PLACES=cores OMP_PROC_BIND=close)
 *
 * Each thread runs ACC independent accumulators, acc = acc * a + b with a = 1 and
 * b = 2^-20 passed through a volatile (so nothing folds), for ITERATIONS steps per
 * repetition; repetitions continue for SECONDS; the fastest (gflops) and the median
 * (median_gflops) are printed.
 * ACC is the probe's count (kernels/fma.py: accumulators): 16 at avx512, whose 32 zmm
 * registers hold them beside the two operands, and 12 at scalar, sse and avx2, which have
 * 16 registers (16 accumulators + a + b spilled there on CPUs without AVX-512: 55 GFLOP/s
 * on Zen 3 where the probe reads 91).
 * Prints key=value lines; gflops = threads * iterations * ACC * lanes * 2 / best time.
 * Build: gcc -O3 -march=native -fopenmp fma.c -lm (bench/reference/build.py does this).
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Accumulators per level: 16 where the level has 32 vector registers, 12 where it has 16. */
#define ACC_NARROW 12
#define ACC_WIDE 16

static volatile double one_v = 1.0, step_v = 0x1p-20;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Scalar: fmaf/fma compile to one vfmadd..ss/sd each; the vectoriser is off for this
 * function so the scalar chains are not packed into vectors. */
__attribute__((optimize("no-tree-vectorize", "no-tree-slp-vectorize")))
static double scalar_f32(long n) {
    float a = one_v, b = step_v, c[ACC_NARROW];
    for (int k = 0; k < ACC_NARROW; k++) c[k] = (k + 1) * b;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < ACC_NARROW; k++) c[k] = fmaf(c[k], a, b);
    double s = 0;
    for (int k = 0; k < ACC_NARROW; k++) s += c[k];
    return s;
}

__attribute__((optimize("no-tree-vectorize", "no-tree-slp-vectorize")))
static double scalar_f64(long n) {
    double a = one_v, b = step_v, c[ACC_NARROW];
    for (int k = 0; k < ACC_NARROW; k++) c[k] = (k + 1) * b;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < ACC_NARROW; k++) c[k] = fma(c[k], a, b);
    double s = 0;
    for (int k = 0; k < ACC_NARROW; k++) s += c[k];
    return s;
}

/* One vector kernel per width/dtype: V vector type, SET1 broadcast, FMADD, STORE to
 * memory; ACC accumulators of LANES lanes of T. */
#define VECTOR_KERNEL(NAME, V, SET1, FMADD, STORE, T, LANES, ACC)               \
    static double NAME(long n) {                                                \
        V a = SET1(one_v), b = SET1(step_v), c[ACC];                            \
        for (int k = 0; k < ACC; k++) c[k] = SET1((k + 1) * step_v);            \
        for (long i = 0; i < n; i++)                                            \
            for (int k = 0; k < ACC; k++) c[k] = FMADD(c[k], a, b);             \
        double s = 0;                                                           \
        T tmp[LANES];                                                           \
        for (int k = 0; k < ACC; k++) {                                         \
            STORE(tmp, c[k]);                                                   \
            for (int l = 0; l < LANES; l++) s += tmp[l];                        \
        }                                                                       \
        return s;                                                               \
    }

VECTOR_KERNEL(sse_f32, __m128, _mm_set1_ps, _mm_fmadd_ps, _mm_storeu_ps, float, 4, ACC_NARROW)
VECTOR_KERNEL(sse_f64, __m128d, _mm_set1_pd, _mm_fmadd_pd, _mm_storeu_pd, double, 2, ACC_NARROW)
VECTOR_KERNEL(avx2_f32, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps, float, 8, ACC_NARROW)
VECTOR_KERNEL(avx2_f64, __m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_storeu_pd, double, 4, ACC_NARROW)
#ifdef __AVX512F__
VECTOR_KERNEL(avx512_f32, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps, float, 16, ACC_WIDE)
VECTOR_KERNEL(avx512_f64, __m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_storeu_pd, double, 8, ACC_WIDE)
#endif

typedef double (*kernel_fn)(long);

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s scalar|sse|avx2|avx512 float32|float64 [seconds] [iterations]\n", argv[0]);
        return 2;
    }
    const char *isa = argv[1], *dtype = argv[2];
    double seconds = argc > 3 ? atof(argv[3]) : 1.0;
    long iterations = argc > 4 ? atol(argv[4]) : 1000000;
    int f32 = strcmp(dtype, "float32") == 0, lanes = 0, acc = ACC_NARROW;
    kernel_fn kernel = NULL;
    if (!strcmp(isa, "scalar")) { kernel = f32 ? scalar_f32 : scalar_f64; lanes = 1; }
    else if (!strcmp(isa, "sse")) { kernel = f32 ? sse_f32 : sse_f64; lanes = f32 ? 4 : 2; }
    else if (!strcmp(isa, "avx2")) { kernel = f32 ? avx2_f32 : avx2_f64; lanes = f32 ? 8 : 4; }
#ifdef __AVX512F__
    else if (!strcmp(isa, "avx512")) { kernel = f32 ? avx512_f32 : avx512_f64; lanes = f32 ? 16 : 8; acc = ACC_WIDE; }
#endif
    if (!kernel || (!f32 && strcmp(dtype, "float64"))) {
        fprintf(stderr, "unsupported isa/dtype: %s %s\n", isa, dtype);
        return 2;
    }

    int threads = omp_get_max_threads();
    double best = 1e30, sum = 0;
    double start = now();
    int reps = 0, cap = 1024;
    double *times = malloc(cap * sizeof(double));
    while (now() - start < seconds || reps < 3) {
        double t0, t1, s = 0;
#pragma omp parallel reduction(+ : s)
        {
#pragma omp barrier
#pragma omp master
            t0 = now();
#pragma omp barrier
            s += kernel(iterations);
        }
        t1 = now();
        sum = s;
        if (t1 - t0 < best) best = t1 - t0;
        if (reps == cap) times = realloc(times, (cap *= 2) * sizeof(double));
        times[reps++] = t1 - t0;
    }
    qsort(times, reps, sizeof(double), cmp_double);
    double median = times[reps / 2];
    /* Each lane ends at (k + 1 + n) * b: the sum tells whether all the work was done. */
    double expect = (double)threads * lanes * (acc * (acc + 1) / 2.0 + (double)acc * iterations) * step_v;
    double flops = (double)threads * iterations * acc * lanes * 2.0;
    printf("isa=%s\ndtype=%s\nthreads=%d\naccumulators=%d\nlanes=%d\niterations=%ld\n",
           isa, dtype, threads, acc, lanes, iterations);
    printf("repetitions=%d\nbest_seconds=%.9f\nmedian_seconds=%.9f\ngflops=%.3f\nmedian_gflops=%.3f\ncheck=%s\n",
           reps, best, median, flops / best / 1e9, flops / median / 1e9,
           fabs(sum - expect) <= 1e-9 * expect ? "ok" : "WRONG");
    return 0;
}
