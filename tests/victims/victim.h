/* Shared helpers for the end-to-end victims.
 *
 * A victim is started as `victim LOG [args]` with stdout and stderr on LOG
 * (O_APPEND). It sets up its state, writes "READY <pid>" and keeps running
 * until SIGUSR1 arrives; the harness checkpoints and restores it in between.
 * Then it checks every piece of its state itself, writes "PASS" or one
 * "FAIL: ..." line per broken thing, and exits 0 or 1. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <signal.h>

/* Opens the log and installs the SIGUSR1 handler. */
void victim_init(int argc, char **argv);
/* The log descriptor (O_APPEND), for victims that need its number. */
int victim_log_fd(void);
void victim_ready(void);
/* True once SIGUSR1 arrived. */
int victim_released(void);
/* Sleeps until SIGUSR1 (at most 60 s, then records a failure). */
void victim_wait(void);
/* Records a failure unless `ok`. */
void victim_check(int ok, const char *format, ...) __attribute__((format(printf, 2, 3)));
void victim_say(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* How many checks failed so far (for child processes, which exit with it
 * instead of writing PASS). */
int victim_failures(void);
/* The lines of /proc/self/fdinfo/FD that start with `prefix` (e.g. the
 * watches of an inotify fd), sorted and joined with newlines into `out`,
 * to compare a descriptor's state before and after a restore. */
void victim_fdinfo_lines(int fd, const char *prefix, char *out, size_t size);
/* A recognisable byte pattern that depends on the offset and a salt:
 * victim_fill() writes it, victim_has_pattern() checks it;
 * victim_all_zero() checks for zeros (a hole, an untouched page). */
char victim_pattern_byte(long offset, int salt);
void victim_fill(char *buffer, size_t size, long offset, int salt);
int victim_has_pattern(const char *memory, size_t size, long offset, int salt);
int victim_all_zero(const char *memory, size_t size);
/* Reads all of `size` bytes (retrying EINTR); 0 on an error or early EOF. */
int victim_read_exactly(int fd, void *buffer, size_t size);
/* The text of a (/proc) file, NUL-terminated and cut to `size`; empty if it
 * cannot be opened. */
void victim_read_text(const char *path, char *out, size_t size);
/* /proc/self/maps with the start of "[stack]" zeroed ("[stack]" grows with
 * the deepest call so far: only its end is stable). */
void victim_read_maps(char *out, size_t size);
/* Sorts `count` numbers in place, smallest first. */
void victim_sort_numbers(int *numbers, int count);
/* "FD TARGET" lines of the process's descriptors, sorted by number; with
 * `drop_inodes` "pipe:[123]" and "socket:[123]" lose the inode number (pipes
 * and sockets are new ones after a restore). */
void victim_list_fds(char *out, size_t size, int drop_inodes);
/* The start of the line where text `a` first differs from `b`, for the
 * failure message. */
const char *victim_first_difference(const char *a, const char *b);
/* Writes PASS or FAIL and returns the exit code. */
int victim_finish(void);
