/* Unit tests of the log: one line per call, whatever the message holds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "test_support.h"

/* A message and the line it must give at LOG_LEVEL_INFO. */
struct line_row {
	const char	*label;
	const char	*message;
	const char	*line;
};

static const struct line_row line_rows[] = {
	{ "plain text", "consumer: 3 partitions assigned",
	    "<6>consumer: 3 partitions assigned\n" },
	{ "a newline cannot start a second entry", "key 42\n<3>forged",
	    "<6>key 42\\x0a<3>forged\n" },
	{ "a carriage return", "a\rb", "<6>a\\x0db\n" },
	{ "a terminal escape", "\x1b[2J\x1b]0;title\x07",
	    "<6>\\x1b[2J\\x1b]0;title\\x07\n" },
	{ "a tab", "a\tb", "<6>a\\x09b\n" },
	{ "DEL", "a\x7f", "<6>a\\x7f\n" },
	{ "a C1 control (CSI) in UTF-8", "a\xc2\x9b" "31m",
	    "<6>a\\xc2\\x9b31m\n" },
	{ "UTF-8 text stays", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	    "<6>caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n" },
	{ "no-break space stays", "a\xc2\xa0" "b", "<6>a\xc2\xa0" "b\n" },
	{ "invalid UTF-8", "bad \xff\xfe and \xc3", "<6>bad \\xff\\xfe and "
	    "\\xc3\n" },
	{ "a lone C1 byte", "a\x9b" "b", "<6>a\\x9bb\n" },
	{ "an overlong slash", "\xc0\xaf", "<6>\\xc0\\xaf\n" },
	{ "a surrogate", "\xed\xa0\x80", "<6>\\xed\\xa0\\x80\n" },
	{ "empty", "", "<6>\n" },
};

/*
 * Runs fn with stderr sent to a file, and returns what was written
 * there; the caller frees it.
 */
static char *
capture(void (*fn)(const void *), const void *arg, size_t *len)
{
	char	 path[] = "/tmp/test_log.XXXXXX", *text;
	int	 fd, saved;

	if ((fd = mkstemp(path)) == -1 || (saved = dup(STDERR_FILENO)) == -1)
		fail_msg("cannot capture stderr: %s", strerror(errno));
	unlink(path);
	if (dup2(fd, STDERR_FILENO) == -1)
		fail_msg("dup2: %s", strerror(errno));
	fn(arg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if ((text = malloc(65536)) == NULL)
		abort();
	*len = (size_t)pread(fd, text, 65535, 0);
	text[*len] = '\0';
	close(fd);
	return text;
}

/* Logs one message at info. */
static void
log_message(const void *message)
{
	log_info("%s", (const char *)message);
}

/* Each message gives exactly its line. */
static void
test_line(void **state)
{
	const struct line_row	*row = *state;
	char			*text;
	size_t			 len;

	log_set_level(LOG_LEVEL_INFO);
	text = capture(log_message, row->message, &len);
	assert_string_equal(text, row->line);
	free(text);
}

/* Tells whether text is one line: a single newline, at its end. */
static bool
one_line(const char *text, size_t len)
{
	return len > 0 && text[len - 1] == '\n' && strchr(text, '\n') ==
	    text + len - 1;
}

/*
 * A long message is cut to one line of at most 4096 bytes, never in the
 * middle of an escape or of a UTF-8 character.
 */
static void
test_long(void **state)
{
	static const char *const	 units[] = { "a", "\x1b", "\xc3\xa9",
	    "\xf0\x9f\x98\x80" };
	char				*message, *text;
	size_t				 i, j, len, ulen;

	(void)state;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		ulen = strlen(units[i]);
		if ((message = malloc(5000 * ulen + 1)) == NULL)
			abort();
		for (j = 0; j < 5000; j++)
			memcpy(message + j * ulen, units[i], ulen);
		message[5000 * ulen] = '\0';
		text = capture(log_message, message, &len);
		assert_true(one_line(text, len));
		assert_true(len <= 4096);
		assert_true(len > 4096 - 8);
		/* What comes before the newline is whole units. */
		if (*units[i] == '\x1b')
			assert_memory_equal(text + len - 5, "\\x1b\n", 5);
		else
			assert_memory_equal(text + len - 1 - ulen, units[i],
			    ulen);
		free(text);
		free(message);
	}
}

/* Logs a warning with errno set to ENOENT. */
static void
log_enoent(const void *arg)
{
	errno = ENOENT;
	log_warn("open %s", (const char *)arg);
}

/* Logs at debug. */
static void
log_at_debug(const void *arg)
{
	log_debug("%s", (const char *)arg);
}

/* log_warn adds strerror and escapes the whole line; debug waits for its level. */
static void
test_misc(void **state)
{
	char	*text;
	size_t	 len;

	(void)state;
	log_set_level(LOG_LEVEL_INFO);
	text = capture(log_enoent, "/etc/x\ny", &len);
	assert_string_equal(text, "<4>open /etc/x\\x0ay: No such file or "
	    "directory\n");
	free(text);
	text = capture(log_at_debug, "hidden", &len);
	assert_int_equal(len, 0);
	free(text);
	log_set_level(LOG_LEVEL_DEBUG);
	text = capture(log_at_debug, "shown", &len);
	assert_string_equal(text, "<7>shown\n");
	free(text);
	log_set_level(LOG_LEVEL_INFO);
}

/* Runs the log's tables; exits non-zero on a failure. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_long),
		cmocka_unit_test(test_misc),
	};
	int			failed = 0;

	failed += support_run_rows("log_line", test_line, line_rows,
	    sizeof(line_rows[0]), ROWS(line_rows));
	failed += cmocka_run_group_tests_name("log_misc", single, NULL, NULL);
	return failed != 0;
}
