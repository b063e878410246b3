/* http_parse.h - strict HTTP/1.1 message-head parsing (RFC 9112) and the chunked
 * body decoder. Pure functions over bytes: no I/O, no allocation. */
#ifndef EDGEPROXY_HTTP_PARSE_H
#define EDGEPROXY_HTTP_PARSE_H

#include <stdint.h>
#include <sys/types.h>

#include "slice.h"

#define HTTP_MAX_FIELDS 100

/* Results of http_parse_request / http_parse_response. A positive value is the
 * length of the complete head in bytes (including the final CRLF CRLF). */
enum http_parse_result {
	HTTP_INCOMPLETE = 0,        /* need more bytes */
	HTTP_ERR_BAD = -1,          /* malformed: 400 and close */
	HTTP_ERR_HEAD_TOO_LARGE = -2, /* head exceeds max_head: 431 */
	HTTP_ERR_VERSION = -3,      /* HTTP/2.0, HTTP/3 ... : 505 */
	HTTP_ERR_TE = -4,           /* unsupported transfer coding: 501 */
	HTTP_ERR_TOO_MANY_FIELDS = -5, /* more than HTTP_MAX_FIELDS: 431 */
};

/* How the message body is delimited (RFC 9112 §6.3). */
enum http_body_kind {
	HTTP_BODY_NONE,    /* no body */
	HTTP_BODY_LENGTH,  /* Content-Length bytes */
	HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
	HTTP_BODY_EOF,     /* responses only: read until the server closes */
};

struct http_request {
	struct slice method;
	struct slice target;  /* request-target as sent */
	struct slice path;    /* origin-form path (before '?'), or "*" for OPTIONS * */
	struct slice query;   /* after '?', without it; empty if none */
	int minor;            /* HTTP/1.x minor version: 0 or 1 */
	struct slice host;    /* Host field value (trimmed); empty if absent */
	struct http_field fields[HTTP_MAX_FIELDS];
	size_t nfields;
	enum http_body_kind body;
	uint64_t content_length; /* valid when body == HTTP_BODY_LENGTH */
	bool keep_alive;      /* after Connection / version rules */
	bool expect_continue; /* Expect: 100-continue */
	bool upgrade;         /* Connection: upgrade with an Upgrade field */
};

struct http_response {
	int status;
	int minor;
	struct slice reason;
	struct http_field fields[HTTP_MAX_FIELDS];
	size_t nfields;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive;
};

/* Parses a request head from buf[0..len). Returns the head length (> 0) once the
 * head is complete, HTTP_INCOMPLETE when more bytes are needed, or an error.
 * Slices in *req point into buf (path may be a static "/" for an absolute-form
 * target without one). max_head bounds the head size (431 past it); up to 16
 * empty lines before the request line are skipped and counted in the length. */
int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req);

/* Parses a response head. request_method tells whether the response to it has a
 * body (HEAD, CONNECT 2xx); 1xx, 204 and 304 never have one. */
int http_parse_response(const char *buf, size_t len, size_t max_head, struct slice request_method,
			struct http_response *resp);

/* Same as above, for a head that arrives in pieces: *scan (0 for a new head, kept
 * by the caller between calls while buf still starts at that head) records how far
 * the search for the end of the head got, so each byte is examined once in total. */
int http_parse_request_resume(const char *buf, size_t len, size_t max_head, size_t *scan,
			      struct http_request *req);
int http_parse_response_resume(const char *buf, size_t len, size_t max_head, size_t *scan,
			       struct slice request_method, struct http_response *resp);

/* Finds a field by name (case-insensitive); NULL if absent. */
const struct http_field *http_find_field(const struct http_field *fields, size_t n, struct slice name);

/* True if a comma-separated field value contains token (case-insensitive),
 * e.g. Connection: keep-alive, Upgrade. */
bool http_token_list_has(struct slice value, struct slice token);

/* Incremental chunked-body decoder (RFC 9112 §7.1). Chunk extensions are parsed
 * and ignored; trailer fields are parsed and dropped. */
enum http_chunked_state {
	CHUNK_SIZE, CHUNK_SIZE_EXT, CHUNK_SIZE_LF, CHUNK_DATA, CHUNK_DATA_CR, CHUNK_DATA_LF,
	CHUNK_TRAILER_START, CHUNK_TRAILER_LINE, CHUNK_TRAILER_LF, CHUNK_FINAL_LF,
	CHUNK_DONE, CHUNK_ERROR,
};

struct http_chunked {
	enum http_chunked_state state;
	uint64_t remaining;   /* bytes left in the current chunk */
	unsigned size_digits; /* hex digits seen in the size line */
	size_t line_len;      /* bytes in the current extension line / the trailer section */
	unsigned char sub;    /* syntax position inside an extension or trailer line */
};

void http_chunked_init(struct http_chunked *c);

/* Consumes bytes from in[0..len). Returns the number of bytes consumed (> 0 unless
 * len == 0 or the body is already done), or -1 on a malformed body (and -1 from
 * then on). When body data is found, *data_off and *data_len tell where it is
 * within in[] and decoding stops right after it, so call again with the rest.
 * Done when c->state == CHUNK_DONE; bytes after that belong to the next message. */
ssize_t http_chunked_feed(struct http_chunked *c, const char *in, size_t len, size_t *data_off,
			  size_t *data_len);

#endif
