/* Frozen in the middle of a floating-point loop: every pass of the loop
 * must give bit-identical results, with SSE/AVX registers live and a
 * non-default rounding mode (MXCSR and x87 control word) that must survive,
 * as must the MXCSR flush-to-zero and denormals-are-zero bits. */
#define _GNU_SOURCE
#include <fenv.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

static uint16_t x87_control_word(void)
{
    uint16_t word = 0;
    __asm__ volatile("fnstcw %0" : "=m"(word));
    return word;
}

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

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
    /* FTZ and DAZ: no denormals in the loop, so they do not change results. */
    _mm_setcsr(_mm_getcsr() | _MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON);
    const unsigned mxcsr_control = _mm_getcsr() & ~0x3fu;   /* without the exception flags */
    const uint16_t x87_control = x87_control_word();
    const long iterations = 60000000;   /* 50-100 ms a pass: the checkpoint lands inside one */
    double reference[LANES], result[LANES];
    double start = seconds();
    pass(reference, iterations);
    victim_say("one pass takes %.0f ms", (seconds() - start) * 1000);
    victim_ready();
    long passes = 0, mismatches = 0;
    double ready = seconds();
    while (!victim_released()) {
        if (seconds() - ready > 120) {
            victim_check(0, "no SIGUSR1 within 120 s");
            break;
        }
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
    victim_check((_mm_getcsr() & ~0x3fu) == mxcsr_control, "MXCSR control bits %#x, expected %#x", _mm_getcsr() & ~0x3fu,
                 mxcsr_control);
    victim_check(x87_control_word() == x87_control, "x87 control word %#x, expected %#x", x87_control_word(), x87_control);
    return victim_finish();
}
