/* JSON read in place: checked as jansson would, members found without a tree. */
#ifndef IPAM_CONSUMERS_DECODE_SCAN_H
#define IPAM_CONSUMERS_DECODE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting accepted, as jansson's JSON_PARSER_MAX_DEPTH. */
#define SCAN_MAX_DEPTH	2048

enum scan_kind {
	SCAN_ABSENT,	/* no such member */
	SCAN_NULL,
	SCAN_FALSE,
	SCAN_TRUE,
	SCAN_INTEGER,
	SCAN_REAL,
	SCAN_STRING,
	SCAN_ARRAY,
	SCAN_OBJECT,
	SCAN_NUMBER_BIG,	/* beyond a 64-bit integer or a double */
};

/* Where one object or array of a checked text starts and ends. */
struct scan_tape_entry {
	uint32_t	start;		/* offset of its bracket */
	uint32_t	end;		/* offset past its closing bracket */
};

/*
 * Where every object and array of a checked text ends, noted by the
 * check, so that reading the text steps over them at once.  The room is
 * the caller's; a text with more containers than it holds is read
 * without the tape.
 */
struct scan_tape {
	const char		*text;
	struct scan_tape_entry	*entries;
	size_t			 count;
	size_t			 capacity;
	bool			 complete;	/* every container is noted */
};

/*
 * One value of a checked JSON text: its kind and its bytes as written
 * (a string's quotes included).  Values point into the text (and tape),
 * which must outlive them.
 */
struct scan_value {
	enum scan_kind		 kind;
	const char		*start;
	size_t			 len;
	const struct scan_tape	*tape;		/* NULL: none */
};

/* Sets up a tape over the caller's room for capacity containers. */
void	scan_tape_init(struct scan_tape *tape, struct scan_tape_entry *entries,
	    size_t capacity);

/*
 * Checks that bytes hold one JSON value, as jansson's json_loadb() with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY would accept it: the grammar,
 * UTF-8, escapes (no \u0000, surrogates paired), no repeated member name,
 * at most SCAN_MAX_DEPTH levels.  Unlike jansson it takes numbers of any
 * size: an integer beyond 64 bits or a real beyond a double is valid JSON
 * (a numeric column, say), of kind SCAN_NUMBER_BIG, refused only by what
 * reads it.  Returns 0 with the value in *top, or -1 with a reason and its
 * byte offset in reason.
 */
int	scan_check(const void *text, size_t len, struct scan_value *top,
	    char *reason, size_t reasonlen);

/*
 * Checks as scan_check() does, notes the ends of the text's containers
 * on tape (NULL: none), and finds members of a top-level object on the
 * way (no second pass skips what comes before them): found[k] is the
 * member called names[k], or SCAN_ABSENT when there is none or the value
 * is no object; *members is how many members the object has.
 */
int	scan_check_find(const void *text, size_t len, struct scan_tape *tape,
	    const char *const *names, size_t count, struct scan_value *found,
	    size_t *members, struct scan_value *top, char *reason,
	    size_t reasonlen);

/*
 * Checks as scan_check_find() does a value that sits at level depth of a
 * larger text (1: the top), so that the levels it may still nest are
 * those left to it there: checked alone, it gets the verdict it would get
 * inside the whole.
 */
int	scan_check_nested(const void *text, size_t len, int depth,
	    struct scan_tape *tape, const char *const *names, size_t count,
	    struct scan_value *found, size_t *members, struct scan_value *top,
	    char *reason, size_t reasonlen);

/*
 * Finds the member called name (compared after escapes are resolved) of
 * a checked object; kind SCAN_ABSENT when there is none or object is not
 * an object.
 */
void	scan_member(const struct scan_value *object, const char *name,
	    struct scan_value *member);

/*
 * Finds several members of a checked object in one pass: found[k] is
 * the member called names[k], or SCAN_ABSENT (always, for a NULL name).
 * Returns how many members the object has (0 when it is not an object).
 */
size_t	scan_find(const struct scan_value *object, const char *const *names,
	    size_t count, struct scan_value *found);

/* The bytes of a checked string once its escapes are resolved. */
size_t	scan_string_length(const struct scan_value *string);

/*
 * Writes a checked string's bytes, escapes resolved, into buf, which
 * must hold scan_string_length() + 1 bytes; the result is NUL-terminated.
 */
void	scan_string_copy(const struct scan_value *string, char *buf);

/* Reads a checked integer (scan_check() made sure it fits). */
int64_t	scan_integer(const struct scan_value *integer);

#endif
