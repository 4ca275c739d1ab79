/* JSON read in place: checked as jansson would, members found without a tree. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/decode_fields.h"
#include "consumers/decode_scan.h"

/* Member names of the objects open while checking, kept on the stack first. */
#define SCAN_KEYS_ON_STACK	256

/* Names scan_find() looks for in one pass; more take several. */
#define SCAN_FIND_MAX		16

/* Objects with more members than this have their names sorted to compare. */
#define SCAN_KEYS_PAIRWISE	16

/* A member name: the bytes between its quotes, as written. */
struct scan_key {
	const unsigned char	*start;
	size_t			 len;
	bool			 escaped;	/* holds a backslash */
};

/* Where a check stands: the text, the position, the names of open objects. */
struct scan_state {
	const unsigned char	*p;
	size_t			 len;
	size_t			 i;
	struct scan_key		*keys;
	size_t			 key_count;
	size_t			 key_capacity;
	bool			 keys_on_heap;
	struct scan_tape	*tape;		/* NULL: none */
	const char *const	*names;		/* of the top object, to find */
	size_t			 name_count;
	struct scan_value	*found;
	size_t			 top_members;
	char			*reason;
	size_t			 reasonlen;
};

/* Reads the decoded bytes of a string one at a time. */
struct scan_cursor {
	const unsigned char	*p;
	size_t			 i;
	size_t			 end;
	bool			 escaped;	/* backslashes start escapes */
	unsigned char		 pending[4];
	size_t			 pending_len;
	size_t			 pending_at;
};

/* Says what is wrong and where; returns -1. */
static int
scan_fail(struct scan_state *st, const char *what)
{
	if (st->reasonlen > 0)
		snprintf(st->reason, st->reasonlen, "%s at byte %zu", what,
		    st->i);
	return -1;
}

/* Skips white space. */
static void
scan_space(struct scan_state *st)
{
	while (st->i < st->len && (st->p[st->i] == ' ' ||
	    st->p[st->i] == '\t' || st->p[st->i] == '\n' ||
	    st->p[st->i] == '\r'))
		st->i++;
}

/* The value of one hex digit, or -1. */
static int
scan_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the four hex digits of a \u escape at p[i]; -1 when they are not. */
static long
scan_hex4(const unsigned char *p, size_t len, size_t i)
{
	long	value = 0;
	int	digit;
	size_t	k;

	if (i + 4 > len)
		return -1;
	for (k = 0; k < 4; k++) {
		if ((digit = scan_hex_digit(p[i + k])) < 0)
			return -1;
		value = value * 16 + digit;
	}
	return value;
}

/*
 * Checks the escape after a backslash at st->i (which points past it)
 * and moves past it: \u0000 and unpaired surrogates are refused, as
 * jansson refuses them.
 */
static int
scan_escape(struct scan_state *st)
{
	long	unit, low;

	if (st->i >= st->len)
		return scan_fail(st, "a string is not closed");
	if (strchr("\"\\/bfnrt", st->p[st->i]) != NULL &&
	    st->p[st->i] != '\0') {
		st->i++;
		return 0;
	}
	if (st->p[st->i] != 'u')
		return scan_fail(st, "invalid escape in a string");
	if ((unit = scan_hex4(st->p, st->len, st->i + 1)) < 0)
		return scan_fail(st, "invalid \\u escape in a string");
	st->i += 5;
	if (unit == 0)
		return scan_fail(st, "\\u0000 in a string");
	if (unit >= 0xdc00 && unit <= 0xdfff)
		return scan_fail(st, "a lone low surrogate in a string");
	if (unit < 0xd800 || unit > 0xdbff)
		return 0;
	if (st->i + 1 >= st->len || st->p[st->i] != '\\' ||
	    st->p[st->i + 1] != 'u' ||
	    (low = scan_hex4(st->p, st->len, st->i + 2)) < 0xdc00 ||
	    low > 0xdfff)
		return scan_fail(st, "a high surrogate without its low one "
		    "in a string");
	st->i += 6;
	return 0;
}

/* Eight bytes at a time: each byte's high bit, and one in each byte. */
#define SCAN_HIGHS	0x8080808080808080ULL
#define SCAN_ONES	0x0101010101010101ULL

/*
 * The high bit of every byte of w equal to c, and maybe of bytes above
 * one that is (a borrow): a "no" is sure, a "yes" asks for a closer look.
 */
static uint64_t
scan_equal8(uint64_t w, unsigned char c)
{
	uint64_t	x = w ^ (SCAN_ONES * c);

	return (x - SCAN_ONES) & ~x & SCAN_HIGHS;
}

/* The same for bytes below c (ASCII bytes only; c at most 0x80). */
static uint64_t
scan_below8(uint64_t w, unsigned char c)
{
	return (w - SCAN_ONES * c) & ~w & SCAN_HIGHS;
}

/*
 * Tells whether eight bytes are all plain string bytes: ASCII from 0x20,
 * neither a quote nor a backslash.  A false "no" only sends the caller
 * to its byte-by-byte loop.
 */
static bool
scan_plain8(const unsigned char *p)
{
	uint64_t	w;

	memcpy(&w, p, sizeof(w));
	return ((w | scan_below8(w, 0x20) | scan_equal8(w, '"') |
	    scan_equal8(w, '\\')) & SCAN_HIGHS) == 0;
}

/*
 * Checks the string whose opening quote is at st->i and moves past it;
 * key, when not NULL, gets its bytes.
 */
static int
scan_string(struct scan_state *st, struct scan_key *key)
{
	const unsigned char	*p = st->p;
	size_t			 start = st->i + 1, n;
	bool			 escaped = false;

	st->i = start;
	for (;;) {
		/* Most bytes are plain ASCII: eight at a time, then one. */
		while (st->i + 8 <= st->len && scan_plain8(p + st->i))
			st->i += 8;
		while (st->i < st->len && p[st->i] >= 0x20 &&
		    p[st->i] < 0x80 && p[st->i] != '"' && p[st->i] != '\\')
			st->i++;
		if (st->i >= st->len)
			return scan_fail(st, "a string is not closed");
		if (p[st->i] == '"')
			break;
		if (p[st->i] == '\\') {
			escaped = true;
			st->i++;
			if (scan_escape(st) == -1)
				return -1;
		} else if (p[st->i] < 0x20)
			return scan_fail(st, "a control character in a string");
		else if ((n = fields_utf8_sequence(p + st->i,
		    st->len - st->i)) == 0)
			return scan_fail(st, "invalid UTF-8");
		else
			st->i += n;
	}
	if (key != NULL) {
		key->start = p + start;
		key->len = st->i - start;
		key->escaped = escaped;
	}
	st->i++;
	return 0;
}

/* Tells whether the digits of an integer (no sign) fit in 64 bits. */
static bool
scan_integer_fits(const unsigned char *digits, size_t n, bool negative)
{
	const char	*limit = negative ? "9223372036854775808" :
	    "9223372036854775807";

	if (n != strlen(limit))
		return n < strlen(limit);
	return memcmp(digits, limit, n) <= 0;
}

/* Tells whether a real's text overflows a double, as jansson refuses. */
static bool
scan_real_overflows(const unsigned char *text, size_t n)
{
	char	 small[64], *copy = small;
	double	 value;
	bool	 overflows;

	if (n >= sizeof(small) && (copy = malloc(n + 1)) == NULL)
		return true;
	memcpy(copy, text, n);
	copy[n] = '\0';
	errno = 0;
	value = strtod(copy, NULL);
	overflows = errno == ERANGE && isinf(value);
	if (copy != small)
		free(copy);
	return overflows;
}

/* Checks the number at st->i and moves past it; *kind says which. */
static int
scan_number(struct scan_state *st, enum scan_kind *kind)
{
	const unsigned char	*p = st->p;
	size_t			 start = st->i, digits;
	bool			 negative = false;

	if (p[st->i] == '-') {
		negative = true;
		st->i++;
	}
	digits = st->i;
	if (st->i < st->len && p[st->i] == '0')
		st->i++;
	else if (st->i < st->len && p[st->i] >= '1' && p[st->i] <= '9') {
		while (st->i < st->len && p[st->i] >= '0' && p[st->i] <= '9')
			st->i++;
	} else
		return scan_fail(st, "invalid token");
	*kind = SCAN_INTEGER;
	if (st->i < st->len && p[st->i] == '.') {
		*kind = SCAN_REAL;
		if (++st->i >= st->len || p[st->i] < '0' || p[st->i] > '9')
			return scan_fail(st, "invalid number");
		while (st->i < st->len && p[st->i] >= '0' && p[st->i] <= '9')
			st->i++;
	}
	if (st->i < st->len && (p[st->i] == 'e' || p[st->i] == 'E')) {
		*kind = SCAN_REAL;
		st->i++;
		if (st->i < st->len && (p[st->i] == '+' || p[st->i] == '-'))
			st->i++;
		if (st->i >= st->len || p[st->i] < '0' || p[st->i] > '9')
			return scan_fail(st, "invalid number");
		while (st->i < st->len && p[st->i] >= '0' && p[st->i] <= '9')
			st->i++;
	}
	if ((*kind == SCAN_INTEGER && !scan_integer_fits(p + digits,
	    st->i - digits, negative)) || (*kind == SCAN_REAL &&
	    scan_real_overflows(p + start, st->i - start)))
		*kind = SCAN_NUMBER_BIG;
	return 0;
}

/* Checks the word true, false or null at st->i and moves past it. */
static int
scan_word(struct scan_state *st, enum scan_kind *kind)
{
	static const struct {
		const char	*word;
		enum scan_kind	 kind;
	} words[] = {
		{ "true", SCAN_TRUE }, { "false", SCAN_FALSE },
		{ "null", SCAN_NULL },
	};
	size_t	k, n;

	for (k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
		n = strlen(words[k].word);
		if (st->i + n <= st->len &&
		    memcmp(st->p + st->i, words[k].word, n) == 0) {
			st->i += n;
			*kind = words[k].kind;
			return 0;
		}
	}
	return scan_fail(st, "invalid token");
}

/*
 * Starts reading the decoded bytes of a string's content; when it is not
 * escaped (a name given by the caller), its bytes are read as they are.
 */
static void
scan_cursor_init(struct scan_cursor *c, const unsigned char *content,
    size_t len, bool escaped)
{
	memset(c, 0, sizeof(*c));
	c->p = content;
	c->end = len;
	c->escaped = escaped;
}

/* Writes code point cp as UTF-8 into out; returns its length. */
static size_t
scan_utf8_encode(unsigned long cp, unsigned char out[4])
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | cp >> 18);
	out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The next decoded byte of a checked string, or -1 at its end. */
static int
scan_cursor_next(struct scan_cursor *c)
{
	static const char	 from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	unsigned long		 cp, low;
	const char		*which;

	if (c->pending_at < c->pending_len)
		return c->pending[c->pending_at++];
	if (c->i >= c->end)
		return -1;
	if (c->p[c->i] != '\\' || !c->escaped)
		return c->p[c->i++];
	c->i++;
	if (c->p[c->i] != 'u') {
		which = strchr(from, c->p[c->i++]);
		return (unsigned char)to[which - from];
	}
	cp = (unsigned long)scan_hex4(c->p, c->end, c->i + 1);
	c->i += 5;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		low = (unsigned long)scan_hex4(c->p, c->end, c->i + 2);
		c->i += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
	}
	c->pending_len = scan_utf8_encode(cp, c->pending);
	c->pending_at = 1;
	return c->pending[0];
}

/* Orders two member names by their decoded bytes. */
static int
scan_key_compare(const void *a, const void *b)
{
	const struct scan_key	*ka = a, *kb = b;
	struct scan_cursor	 ca, cb;
	int			 x, y, cmp;

	if (!ka->escaped && !kb->escaped) {
		cmp = memcmp(ka->start, kb->start, ka->len < kb->len ?
		    ka->len : kb->len);
		if (cmp != 0)
			return cmp;
		return ka->len < kb->len ? -1 : ka->len > kb->len;
	}
	scan_cursor_init(&ca, ka->start, ka->len, ka->escaped);
	scan_cursor_init(&cb, kb->start, kb->len, kb->escaped);
	do {
		x = scan_cursor_next(&ca);
		y = scan_cursor_next(&cb);
	} while (x == y && x != -1);
	return x < y ? -1 : x > y;
}

/* Tells whether two member names are the same once decoded. */
static bool
scan_key_equal(const struct scan_key *a, const struct scan_key *b)
{
	/* Most names hold no escape: their lengths differ, or one memcmp. */
	if (!a->escaped && !b->escaped)
		return a->len == b->len && (a->len == 0 ||
		    (a->start[0] == b->start[0] &&
		    memcmp(a->start, b->start, a->len) == 0));
	return scan_key_compare(a, b) == 0;
}

/*
 * Keeps the value of a member of the top object when its name is one
 * the caller looks for.
 */
static void
scan_note_top(struct scan_state *st, const struct scan_key *key,
    size_t start, enum scan_kind kind)
{
	struct scan_key	name;
	size_t		k;

	st->top_members++;
	for (k = 0; k < st->name_count; k++) {
		name.start = (const unsigned char *)st->names[k];
		name.len = strlen(st->names[k]);
		name.escaped = false;
		if (scan_key_equal(key, &name)) {
			st->found[k].start = (const char *)st->p + start;
			st->found[k].len = st->i - start;
			st->found[k].kind = kind;
			return;
		}
	}
}

/*
 * Makes room for one more member name of an open object, which the
 * caller writes at st->keys[st->key_count]; -1 when out of memory.
 */
static int
scan_room_for_key(struct scan_state *st)
{
	struct scan_key	*grown;
	size_t		 capacity;

	if (st->key_count == st->key_capacity) {
		capacity = st->key_capacity * 2;
		if ((grown = malloc(capacity * sizeof(*grown))) == NULL)
			return scan_fail(st, "out of memory");
		memcpy(grown, st->keys, st->key_count * sizeof(*grown));
		if (st->keys_on_heap)
			free(st->keys);
		st->keys = grown;
		st->key_capacity = capacity;
		st->keys_on_heap = true;
	}
	return 0;
}

/*
 * Refuses an object whose names (keys[base] onwards) repeat one: a few
 * are compared pairwise, many are sorted first.
 */
static int
scan_unique_keys(struct scan_state *st, size_t base)
{
	struct scan_key	*keys = st->keys + base;
	size_t		 n = st->key_count - base, a, b;

	if (n <= SCAN_KEYS_PAIRWISE) {
		for (a = 1; a < n; a++)
			for (b = 0; b < a; b++)
				if (scan_key_equal(&keys[a], &keys[b]))
					return scan_fail(st,
					    "duplicate object key");
		return 0;
	}
	qsort(keys, n, sizeof(*keys), scan_key_compare);
	for (a = 1; a < n; a++)
		if (scan_key_equal(&keys[a - 1], &keys[a]))
			return scan_fail(st, "duplicate object key");
	return 0;
}

static int scan_any(struct scan_state *, int, enum scan_kind *);

/* Checks the object or array whose bracket is at st->i. */
static int
scan_container(struct scan_state *st, int depth, enum scan_kind *kind)
{
	unsigned char	close = st->p[st->i] == '{' ? '}' : ']';
	enum scan_kind	member_kind;
	size_t		base = st->key_count, start, slot = 0, entry = SIZE_MAX;

	*kind = close == '}' ? SCAN_OBJECT : SCAN_ARRAY;
	if (st->tape != NULL && st->tape->count < st->tape->capacity) {
		entry = st->tape->count++;
		st->tape->entries[entry].start = (uint32_t)st->i;
	} else if (st->tape != NULL)
		st->tape->complete = false;
	st->i++;
	scan_space(st);
	if (st->i < st->len && st->p[st->i] == close) {
		st->i++;
		if (entry != SIZE_MAX)
			st->tape->entries[entry].end = (uint32_t)st->i;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			if (st->i >= st->len || st->p[st->i] != '"')
				return scan_fail(st, "a member name was "
				    "expected");
			/* The name is written where it is kept: no copy. */
			if (scan_room_for_key(st) == -1)
				return -1;
			slot = st->key_count;
			if (scan_string(st, &st->keys[slot]) == -1)
				return -1;
			st->key_count++;
			scan_space(st);
			if (st->i >= st->len || st->p[st->i] != ':')
				return scan_fail(st, "':' was expected");
			st->i++;
		}
		scan_space(st);
		start = st->i;
		if (scan_any(st, depth + 1, &member_kind) == -1)
			return -1;
		if (depth == 1 && close == '}')
			scan_note_top(st, &st->keys[slot], start,
			    member_kind);
		scan_space(st);
		if (st->i < st->len && st->p[st->i] == close)
			break;
		if (st->i >= st->len || st->p[st->i] != ',')
			return scan_fail(st, close == '}' ? "',' or '}' was "
			    "expected" : "',' or ']' was expected");
		st->i++;
		scan_space(st);
	}
	st->i++;
	if (entry != SIZE_MAX)
		st->tape->entries[entry].end = (uint32_t)st->i;
	if (close == '}' && scan_unique_keys(st, base) == -1)
		return -1;
	st->key_count = base;
	return 0;
}

/* Checks one value at st->i (white space first) and moves past it. */
static int
scan_any(struct scan_state *st, int depth, enum scan_kind *kind)
{
	unsigned char	c;

	if (depth > SCAN_MAX_DEPTH)
		return scan_fail(st, "nested too deep");
	scan_space(st);
	if (st->i >= st->len)
		return scan_fail(st, "a value was expected");
	c = st->p[st->i];
	if (c == '{' || c == '[')
		return scan_container(st, depth, kind);
	if (c == '"') {
		*kind = SCAN_STRING;
		return scan_string(st, NULL);
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return scan_number(st, kind);
	return scan_word(st, kind);
}

/*
 * Checks that bytes hold one JSON value as jansson would accept it
 * (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY); 0 with the value in *top,
 * or -1 with a reason.
 */
int
scan_check(const void *text, size_t len, struct scan_value *top,
    char *reason, size_t reasonlen)
{
	size_t	members;

	return scan_check_find(text, len, NULL, NULL, 0, NULL, &members, top,
	    reason, reasonlen);
}

/* Sets up a tape over the caller's room for capacity containers. */
void
scan_tape_init(struct scan_tape *tape, struct scan_tape_entry *entries,
    size_t capacity)
{
	memset(tape, 0, sizeof(*tape));
	tape->entries = entries;
	tape->capacity = capacity;
}

/*
 * Checks as scan_check() does, and finds members of a top-level object
 * on the way, so that no second pass skips what comes before them.
 */
int
scan_check_find(const void *text, size_t len, struct scan_tape *tape,
    const char *const *names, size_t count, struct scan_value *found,
    size_t *members, struct scan_value *top, char *reason, size_t reasonlen)
{
	return scan_check_nested(text, len, 1, tape, names, count, found,
	    members, top, reason, reasonlen);
}

int
scan_check_nested(const void *text, size_t len, int depth,
    struct scan_tape *tape, const char *const *names, size_t count,
    struct scan_value *found, size_t *members, struct scan_value *top,
    char *reason, size_t reasonlen)
{
	struct scan_key		keys[SCAN_KEYS_ON_STACK];
	struct scan_state	st;
	size_t			start, k;
	int			rc;

	memset(&st, 0, sizeof(st));
	st.p = text;
	st.len = len;
	st.keys = keys;
	st.key_capacity = SCAN_KEYS_ON_STACK;
	/* Offsets on the tape are 32 bits: a longer text goes without. */
	if (tape != NULL && len <= UINT32_MAX) {
		st.tape = tape;
		tape->text = text;
		tape->count = 0;
		tape->complete = true;
	} else if (tape != NULL)
		tape->complete = false;
	st.names = names;
	st.name_count = count;
	st.found = found;
	st.reason = reason;
	st.reasonlen = reasonlen;
	if (count > 0)
		memset(found, 0, count * sizeof(*found));
	*members = 0;
	memset(top, 0, sizeof(*top));
	scan_space(&st);
	start = st.i;
	rc = scan_any(&st, depth, &top->kind);
	if (rc == 0) {
		top->start = (const char *)text + start;
		top->len = st.i - start;
		scan_space(&st);
		if (st.i != len)
			rc = scan_fail(&st, "bytes after the value");
	}
	if (st.keys_on_heap)
		free(st.keys);
	if (rc == -1) {
		memset(top, 0, sizeof(*top));
		if (count > 0)
			memset(found, 0, count * sizeof(*found));
	} else {
		*members = st.top_members;
		if (tape != NULL && tape->complete) {
			top->tape = tape;
			for (k = 0; k < count; k++)
				found[k].tape = tape;
		}
	}
	return rc;
}

/* Bytes that open or close a string, an object or an array. */
static const bool scan_structural[256] = {
	['"'] = true, ['{'] = true, ['}'] = true, ['['] = true, [']'] = true,
};

/*
 * Moves past the checked string whose opening quote is at i; *escaped
 * tells whether it holds a backslash.
 */
static size_t
scan_skip_string(const unsigned char *p, size_t len, size_t i,
    bool *escaped)
{
	uint64_t	w;

	*escaped = false;
	for (i++;; i++) {
		/* Eight bytes at a time while none is a quote or backslash. */
		for (; i + 8 <= len; i += 8) {
			memcpy(&w, p + i, sizeof(w));
			if ((scan_equal8(w, '"') | scan_equal8(w, '\\')) != 0)
				break;
		}
		while (p[i] != '"' && p[i] != '\\')
			i++;
		if (p[i] == '"')
			return i + 1;
		*escaped = true;
		i++;
	}
}

/*
 * Finds where the container whose bracket is at p + i ends, from the
 * tape; 0 when the tape does not know it.
 */
static size_t
scan_tape_end(const struct scan_tape *tape, const unsigned char *p, size_t i)
{
	size_t	offset = (size_t)((const char *)p - tape->text) + i;
	size_t	low = 0, high = tape->count, mid;

	/* Containers are noted as they open: their starts are in order. */
	while (low < high) {
		mid = low + (high - low) / 2;
		if (tape->entries[mid].start < offset)
			low = mid + 1;
		else
			high = mid;
	}
	if (low == tape->count || tape->entries[low].start != offset)
		return 0;
	return i + (tape->entries[low].end - offset);
}

/*
 * Moves past the checked value at i (no white space before it); only
 * strings and brackets are looked at, the check came first, and a
 * container is stepped over at once when the tape knows its end.
 */
static size_t
scan_skip(const unsigned char *p, size_t len, size_t i,
    const struct scan_tape *tape)
{
	size_t	depth = 0, end;
	bool	escaped;

	if (tape != NULL && (p[i] == '{' || p[i] == '[') &&
	    (end = scan_tape_end(tape, p, i)) != 0)
		return end;
	if (p[i] != '"' && p[i] != '{' && p[i] != '[') {
		/* A number or a word ends at a delimiter. */
		while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']' &&
		    p[i] != ' ' && p[i] != '\t' && p[i] != '\n' &&
		    p[i] != '\r')
			i++;
		return i;
	}
	do {
		while (!scan_structural[p[i]])
			i++;
		if (p[i] == '"')
			i = scan_skip_string(p, len, i, &escaped);
		else {
			depth += p[i] == '{' || p[i] == '[' ? 1 : -1;
			i++;
		}
	} while (depth > 0);
	return i;
}

/* Skips white space of a checked text. */
static size_t
scan_skip_space(const unsigned char *p, size_t len, size_t i)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
	    p[i] == '\r'))
		i++;
	return i;
}

/* The kind of the checked value whose bytes are p[0, len). */
static enum scan_kind
scan_kind_of(const unsigned char *p, size_t len)
{
	switch (p[0]) {
	case '{':
		return SCAN_OBJECT;
	case '[':
		return SCAN_ARRAY;
	case '"':
		return SCAN_STRING;
	case 't':
		return SCAN_TRUE;
	case 'f':
		return SCAN_FALSE;
	case 'n':
		return SCAN_NULL;
	}
	return memchr(p, '.', len) != NULL || memchr(p, 'e', len) != NULL ||
	    memchr(p, 'E', len) != NULL ? SCAN_REAL : SCAN_INTEGER;
}

/*
 * The kind of a number handed out, its range checked: SCAN_NUMBER_BIG
 * beyond a 64-bit integer or a double (only the values wanted pay).
 */
static enum scan_kind
scan_kind_ranged(const struct scan_value *value)
{
	const unsigned char	*p = (const unsigned char *)value->start;
	bool			 negative = p[0] == '-';

	if (value->kind == SCAN_INTEGER && !scan_integer_fits(p + negative,
	    value->len - negative, negative))
		return SCAN_NUMBER_BIG;
	if (value->kind == SCAN_REAL && scan_real_overflows(p, value->len))
		return SCAN_NUMBER_BIG;
	return value->kind;
}

/*
 * Walks the members of a checked object: calls visit with each name and
 * value until it returns true; returns how many members were visited.
 */
static size_t
scan_members(const struct scan_value *object,
    bool (*visit)(const struct scan_key *, const struct scan_value *, void *),
    void *arg)
{
	const unsigned char	*p = (const unsigned char *)object->start;
	size_t			 len = object->len, i, count = 0, end;
	struct scan_key		 key;
	struct scan_value	 value;

	if (object->kind != SCAN_OBJECT)
		return 0;
	i = scan_skip_space(p, len, 1);
	while (p[i] == '"') {
		end = scan_skip_string(p, len, i, &key.escaped);
		key.start = p + i + 1;
		key.len = end - i - 2;
		i = scan_skip_space(p, len, end);
		i = scan_skip_space(p, len, i + 1);	/* the ':' */
		end = scan_skip(p, len, i, object->tape);
		value.start = (const char *)p + i;
		value.tape = object->tape;
		value.len = end - i;
		value.kind = scan_kind_of(p + i, value.len);
		count++;
		if (visit != NULL && visit(&key, &value, arg))
			break;
		i = scan_skip_space(p, len, end);
		if (p[i] == ',')
			i = scan_skip_space(p, len, i + 1);
	}
	return count;
}

/* The names scan_find() looks for and what it found. */
struct scan_wanted {
	const struct scan_key	*names;		/* start NULL: not wanted */
	size_t			 count;
	struct scan_value	*found;
	size_t			 left;		/* names not found yet */
	bool			 all;		/* count every member */
};

/* Keeps a member if it is one of the names wanted; true to stop. */
static bool
scan_is_wanted(const struct scan_key *key, const struct scan_value *value,
    void *arg)
{
	struct scan_wanted	*wanted = arg;
	size_t			 k;

	for (k = 0; k < wanted->count && wanted->left > 0; k++) {
		if (wanted->names[k].start == NULL ||
		    wanted->found[k].kind != SCAN_ABSENT)
			continue;
		if (scan_key_equal(key, &wanted->names[k])) {
			wanted->found[k] = *value;
			wanted->found[k].kind = scan_kind_ranged(value);
			wanted->left--;
			break;
		}
	}
	return wanted->left == 0 && !wanted->all;
}

/*
 * Finds several members of a checked object in one pass: found[k] is
 * the member called names[k], or SCAN_ABSENT.  Returns how many members
 * the object has.
 */
size_t
scan_find(const struct scan_value *object, const char *const *names,
    size_t count, struct scan_value *found)
{
	struct scan_key		keys[SCAN_FIND_MAX];
	struct scan_wanted	wanted;
	size_t			k;

	/* A long list is found a part at a time. */
	if (count > SCAN_FIND_MAX) {
		scan_find(object, names + SCAN_FIND_MAX, count - SCAN_FIND_MAX,
		    found + SCAN_FIND_MAX);
		count = SCAN_FIND_MAX;
	}
	if (count > 0)
		memset(found, 0, count * sizeof(*found));
	wanted.left = 0;
	for (k = 0; k < count; k++) {
		keys[k].start = (const unsigned char *)names[k];
		keys[k].len = names[k] != NULL ? strlen(names[k]) : 0;
		keys[k].escaped = false;
		if (names[k] != NULL)
			wanted.left++;
	}
	wanted.names = keys;
	wanted.count = count;
	wanted.found = found;
	wanted.all = true;
	return scan_members(object, scan_is_wanted, &wanted);
}

/* Finds the member called name of a checked object, or SCAN_ABSENT. */
void
scan_member(const struct scan_value *object, const char *name,
    struct scan_value *member)
{
	struct scan_key		key;
	struct scan_wanted	wanted;

	memset(member, 0, sizeof(*member));
	key.start = (const unsigned char *)name;
	key.len = strlen(name);
	key.escaped = false;
	wanted.names = &key;
	wanted.count = 1;
	wanted.found = member;
	wanted.left = 1;
	wanted.all = false;
	scan_members(object, scan_is_wanted, &wanted);
}

/* The bytes of a checked string once its escapes are resolved. */
size_t
scan_string_length(const struct scan_value *string)
{
	struct scan_cursor	c;
	size_t			n = 0;

	if (memchr(string->start + 1, '\\', string->len - 2) == NULL)
		return string->len - 2;
	scan_cursor_init(&c, (const unsigned char *)string->start + 1,
	    string->len - 2, true);
	while (scan_cursor_next(&c) != -1)
		n++;
	return n;
}

/*
 * Writes a checked string's bytes, escapes resolved, into buf (room for
 * scan_string_length() + 1 bytes), NUL-terminated.
 */
void
scan_string_copy(const struct scan_value *string, char *buf)
{
	struct scan_cursor	c;
	size_t			n = 0;
	int			byte;

	if (memchr(string->start + 1, '\\', string->len - 2) == NULL) {
		memcpy(buf, string->start + 1, string->len - 2);
		buf[string->len - 2] = '\0';
		return;
	}
	scan_cursor_init(&c, (const unsigned char *)string->start + 1,
	    string->len - 2, true);
	while ((byte = scan_cursor_next(&c)) != -1)
		buf[n++] = (char)byte;
	buf[n] = '\0';
}

/* Reads a checked integer (scan_check() made sure it fits). */
int64_t
scan_integer(const struct scan_value *integer)
{
	const char	*p = integer->start;
	uint64_t	 magnitude = 0;
	size_t		 i = p[0] == '-';

	for (; i < integer->len; i++)
		magnitude = magnitude * 10 + (uint64_t)(p[i] - '0');
	if (p[0] == '-')
		return magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN :
		    -(int64_t)magnitude;
	return (int64_t)magnitude;
}
