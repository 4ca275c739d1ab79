/* Logging: one line per call on stderr, with journald priority prefixes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"

/* The log level is the one process-wide setting: every subsystem logs. */
static enum log_level log_level = LOG_LEVEL_INFO;

/* Sets the most verbose level that is written. */
void
log_set_level(enum log_level level)
{
	log_level = level;
}

/* Returns the current level. */
enum log_level
log_get_level(void)
{
	return log_level;
}

/* Parses a level name. */
int
log_level_parse(const char *text, enum log_level *out)
{
	static const struct {
		const char	*name;
		enum log_level	 level;
	} names[] = {
		{ "error", LOG_LEVEL_ERR },
		{ "warning", LOG_LEVEL_WARNING },
		{ "notice", LOG_LEVEL_NOTICE },
		{ "info", LOG_LEVEL_INFO },
		{ "debug", LOG_LEVEL_DEBUG },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(text, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -1;
}

/*
 * Writes one line.  Newlines inside the message are replaced so that one
 * call is always one journal entry, and the line goes out in one write().
 */
void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char line[4096];
	int prefix, n;
	size_t len, i;

	if (level > log_level)
		return;
	prefix = snprintf(line, sizeof(line), "<%d>", (int)level);
	n = vsnprintf(line + prefix, sizeof(line) - prefix - 1, fmt, ap);
	if (n < 0)
		return;
	len = strlen(line);
	for (i = prefix; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

/* Writes one line at a level. */
void
log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

/* Formats a message and appends strerror of the saved errno. */
static void
log_with_errno(enum log_level level, int saved_errno, const char *fmt,
    va_list ap)
{
	char message[3072];

	vsnprintf(message, sizeof(message), fmt, ap);
	log_write(level, "%s: %s", message, strerror(saved_errno));
}

/* A warning followed by strerror(errno). */
void
log_warn(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	log_with_errno(LOG_LEVEL_WARNING, saved_errno, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

/* A warning as given. */
void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARNING, fmt, ap);
	va_end(ap);
}

/* An error as given. */
void
log_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
}

/* An informational message. */
void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

/* A debug message. */
void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_DEBUG, fmt, ap);
	va_end(ap);
}

/* Logs an error with strerror(errno) and exits. */
void
fatal(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	log_with_errno(LOG_LEVEL_ERR, saved_errno, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Logs an error and exits. */
void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
