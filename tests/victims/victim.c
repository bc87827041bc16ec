/* See victim.h. */
#define _GNU_SOURCE
#include "victim.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int failures;
static volatile sig_atomic_t released;

static void on_usr1(int signal)
{
    (void)signal;
    released = 1;
}

void victim_init(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s LOG\n", argv[0]);
        exit(2);
    }
    log_fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0)
        exit(2);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_usr1;
    sigaction(SIGUSR1, &action, NULL);
}

int victim_log_fd(void) { return log_fd; }

void victim_say(const char *format, ...)
{
    char line[1024];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof(line) - 1, format, args);
    va_end(args);
    if (length < 0)
        return;
    if (length > (int)sizeof(line) - 2)
        length = sizeof(line) - 2;
    line[length++] = '\n';
    if (write(log_fd, line, (size_t)length) < 0)
        _exit(3);
}

void victim_ready(void) { victim_say("READY %d", getpid()); }

int victim_released(void) { return released; }

void victim_wait(void)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!released) {
        usleep(10000);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 120) {
            victim_check(0, "no SIGUSR1 within 120 s");
            return;
        }
    }
}

void victim_check(int ok, const char *format, ...)
{
    if (ok)
        return;
    char line[900];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    victim_say("FAIL: %s (pid %d)", line, getpid());
    failures++;
}

int victim_failures(void) { return failures; }

int victim_finish(void)
{
    if (failures == 0)
        victim_say("PASS");
    return failures == 0 ? 0 : 1;
}

void victim_fdinfo_lines(int fd, const char *prefix, char *out, size_t size)
{
    char path[64], text[16384];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    out[0] = 0;
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0)
        return;
    ssize_t length = read(file, text, sizeof(text) - 1);
    close(file);
    if (length <= 0)
        return;
    text[length] = 0;
    char *lines[64];
    int count = 0;
    size_t prefix_length = strlen(prefix);
    for (char *line = strtok(text, "\n"); line && count < 64; line = strtok(NULL, "\n"))
        if (strncmp(line, prefix, prefix_length) == 0)
            lines[count++] = line;
    for (int i = 0; i < count; ++i)
        for (int j = i + 1; j < count; ++j)
            if (strcmp(lines[j], lines[i]) < 0) {
                char *swap = lines[i];
                lines[i] = lines[j];
                lines[j] = swap;
            }
    for (int i = 0; i < count; ++i) {
        strncat(out, lines[i], size - strlen(out) - 2);
        strncat(out, "\n", size - strlen(out) - 1);
    }
}

char victim_pattern_byte(long offset, int salt) { return (char)('A' + (offset / 7 + salt) % 26); }

void victim_fill(char *buffer, size_t size, long offset, int salt)
{
    for (size_t i = 0; i < size; ++i)
        buffer[i] = victim_pattern_byte(offset + (long)i, salt);
}

int victim_has_pattern(const char *memory, size_t size, long offset, int salt)
{
    for (size_t i = 0; i < size; ++i)
        if (memory[i] != victim_pattern_byte(offset + (long)i, salt))
            return 0;
    return 1;
}

int victim_all_zero(const char *memory, size_t size)
{
    for (size_t i = 0; i < size; ++i)
        if (memory[i])
            return 0;
    return 1;
}
