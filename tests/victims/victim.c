/* See victim.h. */
#define _GNU_SOURCE
#include "victim.h"

#include <dirent.h>
#include <errno.h>
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

int victim_read_exactly(int fd, void *buffer, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t got = read(fd, (char *)buffer + done, size - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        done += (size_t)got;
    }
    return 1;
}

void victim_read_text(const char *path, char *out, size_t size)
{
    out[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t used = 0;
    ssize_t got;
    while (used + 1 < size && (got = read(fd, out + used, size - used - 1)) > 0)
        used += (size_t)got;
    out[used] = 0;
    close(fd);
}

void victim_read_maps(char *out, size_t size)
{
    victim_read_text("/proc/self/maps", out, size);
    char *stack = strstr(out, "[stack]");
    if (!stack)
        return;
    char *line = stack;
    while (line > out && line[-1] != '\n')
        --line;
    char *dash = strchr(line, '-');
    if (dash && dash < stack)
        memset(line, '0', (size_t)(dash - line));
}

void victim_sort_numbers(int *numbers, int count)
{
    for (int i = 0; i < count; ++i)
        for (int j = i + 1; j < count; ++j)
            if (numbers[j] < numbers[i]) {
                int swap = numbers[i];
                numbers[i] = numbers[j];
                numbers[j] = swap;
            }
}

void victim_list_fds(char *out, size_t size, int drop_inodes)
{
    out[0] = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return;
    int own = dirfd(dir), numbers[256], count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) && count < 256)
        if (entry->d_name[0] != '.' && atoi(entry->d_name) != own)
            numbers[count++] = atoi(entry->d_name);
    closedir(dir);
    victim_sort_numbers(numbers, count);
    for (int i = 0; i < count; ++i) {
        char path[64], target[512];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", numbers[i]);
        ssize_t length = readlink(path, target, sizeof(target) - 1);
        target[length > 0 ? length : 0] = 0;
        char *bracket = strchr(target, '[');
        if (drop_inodes && bracket && (strncmp(target, "pipe:", 5) == 0 || strncmp(target, "socket:", 7) == 0))
            *bracket = 0;
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%d %s\n", numbers[i], target);
    }
}

const char *victim_first_difference(const char *a, const char *b)
{
    const char *start = a;
    while (*a && *a == *b)
        ++a, ++b;
    while (a > start && a[-1] != '\n')
        --a;
    return a;
}
