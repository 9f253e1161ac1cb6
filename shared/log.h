/* log.h: the daemons' and CLI's log lines on stderr. Libraries never log.
 *
 * Line format: "2026-11-29T18:06:32.123Z LEVEL component: message", one
 * line per call: control characters in the message (C0, DEL, C1) are written
 * as \xNN, so text from a peer cannot forge a line or drive a terminal.
 * Thread-safety: one line is written with a single write(2), so lines from
 * threads do not interleave; the level is a process-wide setting.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_COUNT };

/* log_level_set: lines below level are dropped. */
void log_level_set(enum log_level level);

/* log_level_parse: "debug"|"info"|"warn"|"error" -> level; -1 when unknown. */
int log_level_parse(const char *name);

/* log_msg: write one line if level is enabled. component names the module ("ctl", "wrk"). */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_msg(LOG_LEVEL_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...) log_msg(LOG_LEVEL_INFO, c, __VA_ARGS__)
#define log_warn(c, ...) log_msg(LOG_LEVEL_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_LEVEL_ERROR, c, __VA_ARGS__)

#endif
