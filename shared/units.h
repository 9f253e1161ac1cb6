/* units.h: parsing of sizes, durations and times as users write them, and the clock.
 *
 * Sizes: an integer or decimal followed by an optional unit B, KB/MB/GB/TB (powers
 * of 1000) or KiB/MiB/GiB/TiB (powers of 1024), K/M/G/T meaning KiB.. (Slurm's
 * --mem convention); "64 GiB", "512M", "1.5GiB". Durations: a sum of terms
 * "<number><unit>" with units ms, s, m|min, h, d ("30 s", "1h30m", "250ms"), or
 * Slurm's "[DD-]HH:MM:SS" / "MM:SS"; a bare number means seconds.
 * All functions are pure and thread-safe.
 */
#ifndef MOAT_UNITS_H
#define MOAT_UNITS_H

#include <stdint.h>

#include "shared/err.h"

/* units_size_parse: text -> bytes in *out. EINVAL on bad syntax or unit, ERANGE on overflow. */
int units_size_parse(const char *text, uint64_t *out, struct err *err);

/* units_duration_parse: text -> seconds (>= 0) in *out. EINVAL on bad syntax. */
int units_duration_parse(const char *text, double *out, struct err *err);

/* units_begin_parse: a --begin value -> absolute Unix time (seconds) in *out.
 * Accepts "now", "now+DUR", ISO 8601 "YYYY-MM-DDTHH:MM[:SS]" (local time) or with
 * a trailing "Z" (UTC) and "YYYY-MM-DD", and "HH:MM[:SS]" meaning the next such
 * local time after now, and sbatch's words: "today" (now), "midnight" and
 * "tomorrow" (the next 00:00), "noon" (12:00), "fika" (15:00), "teatime"
 * (16:00), each the next such local time (sbatch(1), --begin). now is the
 * reference time (Unix seconds). EINVAL on bad input. */
int units_begin_parse(const char *text, double now, double *out, struct err *err);

/* units_now: wall-clock time in Unix seconds (CLOCK_REALTIME). */
double units_now(void);

/* units_mono: monotonic seconds (CLOCK_MONOTONIC) for intervals. */
double units_mono(void);

/* units_duration_format: seconds -> "1h02m03s"-style text in buf (cap >= 16). Returns buf. */
char *units_duration_format(double seconds, char *buf, int cap);

#endif
