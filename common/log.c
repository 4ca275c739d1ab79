/* Logging: one line per call on stderr, with journald priority prefixes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"

/* Longest line written, with its priority prefix and newline. */
#define LOG_LINE_MAX	4096

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
 * Length of the printable UTF-8 character at p (at most len bytes), or 0
 * when the byte there must be escaped: a C0 or C1 control character,
 * DEL, or a byte that does not begin a valid UTF-8 sequence.
 */
static size_t
log_printable(const unsigned char *p, size_t len)
{
	size_t		need, i;
	uint32_t	cp;

	if (p[0] < 0x80)
		return p[0] >= 0x20 && p[0] != 0x7f;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		need = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (len < need)
		return 0;
	cp = p[0] & (0x7fu >> need);
	for (i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* C1 controls, overlong forms, surrogates, past U+10FFFF. */
	if (cp < 0xa0 || (need == 3 && cp < 0x800) ||
	    (need == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
	    cp > 0x10ffff)
		return 0;
	return need;
}

/*
 * Copies text into buf (room bytes, no NUL added) with every byte that
 * log_printable refuses written as \xNN, stopping before a character or
 * an escape that would not fit whole; returns the bytes written.
 */
static size_t
log_escape(const char *text, char *buf, size_t room)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)text;
	size_t			 len = strlen(text), used = 0, n;

	while (len > 0) {
		if ((n = log_printable(p, len)) > 0) {
			if (used + n > room)
				break;
			memcpy(buf + used, p, n);
			used += n;
		} else {
			if (used + 4 > room)
				break;
			buf[used++] = '\\';
			buf[used++] = 'x';
			buf[used++] = hex[*p >> 4];
			buf[used++] = hex[*p & 0xf];
			n = 1;
		}
		p += n;
		len -= n;
	}
	return used;
}

/*
 * Writes one line.  Control characters and invalid UTF-8 in the message
 * are escaped (\x1b), so that text from the wire can neither end the line
 * (one call is always one journal entry) nor send a terminal escape; the
 * line goes out in one write().
 */
void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char	message[LOG_LINE_MAX], line[LOG_LINE_MAX];
	size_t	len;

	if (level > log_level)
		return;
	if (vsnprintf(message, sizeof(message), fmt, ap) < 0)
		return;
	len = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	/* Room is kept for the newline. */
	len += log_escape(message, line + len, sizeof(line) - len - 1);
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

/* Our level of a syslog-style level (librdkafka's logs: 0-7). */
enum log_level
log_level_of_syslog(int level)
{
	return level <= 3 ? LOG_LEVEL_ERR : level == 4 ? LOG_LEVEL_WARNING :
	    level <= 6 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
}
