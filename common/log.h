/* Logging: one line per call on stderr, with journald priority prefixes. */
#ifndef IPAM_COMMON_LOG_H
#define IPAM_COMMON_LOG_H

#include <stdbool.h>
#include <stdarg.h>

/* Syslog priorities, as journald reads them from a "<N>" prefix. */
enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Sets the most verbose level that is written (LOG_LEVEL_INFO by default). */
void	log_set_level(enum log_level level);

/* Returns the current level. */
enum log_level log_get_level(void);

/* Parses "error", "warning", "notice", "info" or "debug"; returns 0 or -1. */
int	log_level_parse(const char *text, enum log_level *out);

/* Our level of a syslog-style level (librdkafka's logs: 0-7). */
enum log_level log_level_of_syslog(int level);

/*
 * Writes one line at a level; the line is cut, never split, when too
 * long, and control characters and invalid UTF-8 in it are written as
 * \xNN escapes.
 */
void	log_write(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_vwrite(enum log_level level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));

/* A warning followed by ": " and strerror(errno). */
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warning as given. */
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An error as given (not fatal). */
void	log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs an error with strerror(errno) and exits with status 1. */
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
/* Logs an error and exits with status 1. */
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
