/* Frozen in the middle of a floating-point loop: every pass of the loop
 * must give bit-identical results, with SSE/AVX registers live and a
 * non-default rounding mode (MXCSR and x87 control word) that must survive. */
#define _GNU_SOURCE
#include <fenv.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "victim.h"

#define LANES 8

__attribute__((target("avx2,fma"))) static void pass_avx(double out[LANES], long iterations)
{
    __m256d a = _mm256_set_pd(1.1, 1.3, 1.7, 1.9);
    __m256d b = _mm256_set_pd(0.3, 0.5, 0.7, 0.9);
    __m256d scale = _mm256_set1_pd(0.999999);
    __m256d add = _mm256_set1_pd(1e-7);
    for (long i = 0; i < iterations; ++i) {
        a = _mm256_fmadd_pd(a, scale, add);
        b = _mm256_add_pd(_mm256_mul_pd(b, scale), _mm256_div_pd(add, a));
    }
    _mm256_storeu_pd(out, a);
    _mm256_storeu_pd(out + 4, b);
}

static void pass_sse(double out[LANES], long iterations)
{
    double x[LANES] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8 };
    for (long i = 0; i < iterations; ++i)
        for (int lane = 0; lane < LANES; ++lane)
            x[lane] = x[lane] * 1.0000001 + sqrt(x[lane] + 1.0) * 1e-9;
    memcpy(out, x, sizeof(x));
}

static void pass(double out[LANES], long iterations)
{
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        pass_avx(out, iterations);
    else
        pass_sse(out, iterations);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    fesetround(FE_TOWARDZERO);
    const long iterations = 20000000;
    double reference[LANES], result[LANES];
    pass(reference, iterations);
    victim_ready();
    long passes = 0, mismatches = 0;
    while (!victim_released()) {
        pass(result, iterations);
        passes++;
        if (memcmp(result, reference, sizeof(result)) != 0)
            mismatches++;
    }
    pass(result, iterations);
    if (memcmp(result, reference, sizeof(result)) != 0)
        mismatches++;
    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(mismatches == 0, "%ld of %ld passes differ", mismatches, passes + 1);
    victim_check(fegetround() == FE_TOWARDZERO, "rounding mode changed to %d", fegetround());
    return victim_finish();
}
