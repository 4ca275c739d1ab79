/* HTTP requests to the daemon's API (libcurl), and what their status means. */
#ifndef IPAMCTL_CLIENT_H
#define IPAMCTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* The exit statuses of ipamctl (ipamctl(1), EXIT STATUS). */
enum client_exit {
	CLIENT_EXIT_OK = 0,		/* done */
	CLIENT_EXIT_REFUSED = 1,	/* the API refused the request (4xx) */
	CLIENT_EXIT_USAGE = 2,		/* the command line or a file is wrong */
	CLIENT_EXIT_CONFLICT = 3,	/* a precondition failed (409, 412) */
	CLIENT_EXIT_UNREACHABLE = 4,	/* no daemon, or it failed (5xx) */
	CLIENT_EXIT_ACCEPTED = 5,	/* accepted, not yet applied (202) */
};

/* Where the daemon is and who asks. */
struct client {
	void		*curl;		/* CURL *, reused across requests */
	char		*base_url;	/* without a trailing '/' */
	char		*token;		/* NULL: no Authorization header */
	char		*requester;	/* NULL: no X-Requester header */
	long		 timeout;	/* seconds the daemon may send nothing */
};

/* One request. */
struct client_request {
	const char	*method;	/* GET, PUT, POST, DELETE */
	const char	*path;		/* /api/v1/..., with its query */
	const char	*body;		/* JSON, or NULL */
	const char	*accept;	/* NULL: application/json */
	const char	*if_match;	/* NULL: none */
};

/* One answer: status 0 when none came (see error). */
struct client_response {
	long		 status;
	char		*body;		/* NUL-terminated, never NULL after a reply */
	size_t		 body_length;
	char		*location;	/* the Location header, or NULL */
	char		*next_cursor;	/* Next-Cursor ("" on a last page), or NULL */
	char		*retry_after;	/* Retry-After, or NULL */
	char		 error[256];	/* why there was no answer */
};

/*
 * Sets the client up: base_url is copied, and the token is read from
 * token_file (one line; NULL for none).  A request gives up when the
 * daemon sends nothing for timeout seconds.  Returns 0, or -1 with a
 * sentence in error.
 */
int	 client_init(struct client *client, const char *base_url,
	    const char *token_file, const char *requester, long timeout,
	    char *error, size_t error_size);

/* Frees what the client holds. */
void	 client_close(struct client *client);

/*
 * Sends a request and reads the whole answer into response, which the
 * caller frees with client_response_free.  Returns 0 when an answer came
 * (any status), -1 when none did (response->error says why).
 */
int	 client_send(struct client *client, const struct client_request *request,
	    struct client_response *response);

/* Frees the body and headers of a response. */
void	 client_response_free(struct client_response *response);

/* The exit status that an HTTP status stands for. */
enum client_exit client_exit_for_status(long status);

/*
 * Reads the token in a file's first line, trailing blanks and line end
 * removed; the caller frees it.  Returns NULL with a sentence in error
 * when the file cannot be read or the line is empty.
 */
char	*client_read_token(const char *path, char *error, size_t error_size);

#endif
