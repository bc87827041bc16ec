/* A victim for encrypted and compressed checkpoints (dump --encrypt,
 * --compress).
 *
 * It plants a secret in its heap, built at run time from shifted bytes so
 * that the heap holds its only copy (a test greps the raw files of an
 * encrypted checkpoint for it and must not find it, while `cryo mem
 * --search` with the key must), and fills 32 MiB with a text that
 * compresses well and 8 MiB of pseudo-random bytes that do not. After the release it checks that every byte is
 * as it was, and its pid. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "victim.h"

/* "CRYO-CRYPT-SECRET-5a8c31f0", each byte minus one. */
static const char kShifted[] = "BQXN,BQXOS,RDBQDS,4`7b20e/";

#define TEXT_BYTES (32ul << 20)
#define RANDOM_BYTES (8ul << 20)

static const char kLine[] = "the quick brown fox jumps over the lazy dog, line ";

static void fill_text(char *memory, size_t bytes)
{
    size_t at = 0;
    for (unsigned long line = 0; at < bytes; ++line) {
        char text[96];
        int length = snprintf(text, sizeof(text), "%s%lu\n", kLine, line % 1000);
        size_t take = bytes - at < (size_t)length ? bytes - at : (size_t)length;
        memcpy(memory + at, text, take);
        at += take;
    }
}

static int text_intact(const char *memory, size_t bytes)
{
    char *expected = malloc(bytes);
    if (!expected)
        return 0;
    fill_text(expected, bytes);
    int same = memcmp(expected, memory, bytes) == 0;
    free(expected);
    return same;
}

/* A xorshift stream: bytes that do not compress. */
static void fill_noise(uint64_t *memory, size_t bytes)
{
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < bytes / 8; ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        memory[i] = state;
    }
}

static int noise_intact(const uint64_t *memory, size_t bytes)
{
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < bytes / 8; ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if (memory[i] != state)
            return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    size_t length = strlen(kShifted);

    char *heap = malloc(4096);
    memset(heap, 0x22, 4096);
    char *secret = heap + 100;
    for (size_t i = 0; i < length; ++i)
        secret[i] = (char)(kShifted[i] + 1);

    char *text = mmap(NULL, TEXT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *noise = mmap(NULL, RANDOM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (text == MAP_FAILED || noise == MAP_FAILED)
        return 2;
    fill_text(text, TEXT_BYTES);
    fill_noise((uint64_t *)noise, RANDOM_BYTES);

    victim_ready();
    victim_wait();

    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    int intact = 1;
    for (size_t i = 0; i < length; ++i)
        intact &= secret[i] == (char)(kShifted[i] + 1);
    victim_check(intact, "the secret changed");
    victim_check(text_intact(text, TEXT_BYTES), "the text memory changed");
    victim_check(noise_intact((const uint64_t *)noise, RANDOM_BYTES), "the random memory changed");
    free(heap);
    return victim_finish();
}
