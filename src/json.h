/* json.h - a small strict JSON parser (RFC 8259) for what ACME servers send: one
 * pass without recursion, bounded depth, size and token count; values stay in the
 * input text as tokens and strings are decoded only when asked for. */
#ifndef EDGEPROXY_JSON_H
#define EDGEPROXY_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_TEXT (1024 * 1024) /* bytes of one document */
#define JSON_MAX_DEPTH 32           /* nested arrays and objects */
#define JSON_MAX_TOKENS 8192        /* values plus object keys */

enum json_type {
	JSON_NULL = 1,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

/* One value, or one object key (a JSON_STRING). Tokens are in document order: the
 * first child of a container is the token right after it; an object's children
 * alternate key, value. */
struct json_tok {
	uint8_t type;
	uint32_t start, len; /* bytes in the text; for strings, between the quotes */
	uint32_t end;        /* index of the first token after this value's subtree */
	uint32_t n;          /* arrays: elements, objects: members */
	uint32_t hash;       /* strings: hash of the decoded bytes (duplicate keys) */
};

struct json_doc {
	const char *text; /* the parsed text; not owned, must outlive the doc */
	size_t len;
	struct json_tok *toks; /* owner: the doc */
	size_t n, cap;
};

/* Parses text[0..len) (no NUL needed): exactly one value with optional whitespace
 * around it. Rejects what RFC 8259 does not allow (trailing commas, leading zeros,
 * control characters and bad escapes in strings, invalid UTF-8, unpaired
 * surrogates, a byte-order mark) and objects with the same key twice. Returns 0,
 * or -1 with "offset N: what" in err; doc then owns nothing. */
int json_parse(struct json_doc *doc, const char *text, size_t len, char *err, size_t errlen);
void json_free(struct json_doc *doc);

/* Accessors take a token index (the root is 0) and return -1 / false / NULL for an
 * index of the wrong type or out of range, so lookups chain without checks:
 * json_get(d, json_get(d, 0, "a"), "b"). */
int json_type(const struct json_doc *d, int i);
/* The value of key in object obj (a key that needs escapes is found as well). */
int json_get(const struct json_doc *d, int obj, const char *key);
/* Element idx of array arr. */
int json_at(const struct json_doc *d, int arr, size_t idx);
/* Elements of an array, members of an object; 0 for anything else. */
size_t json_count(const struct json_doc *d, int i);
/* The key token of member idx of object obj (its value is the token after it). */
int json_member_key(const struct json_doc *d, int obj, size_t idx);

/* Decodes string token i into buf (cap bytes with the NUL). Returns the length, or
 * -1 (buf then "" when cap > 0) when i is not a string, the result does not fit, or
 * it holds a NUL (\u0000). */
long json_string(const struct json_doc *d, int i, char *buf, size_t cap);
/* The decoded string as a malloc'd C string (owner: the caller), or NULL. */
char *json_strdup(const struct json_doc *d, int i);
/* String token i decodes to exactly s. */
bool json_str_eq(const struct json_doc *d, int i, const char *s);
/* A number token that is an integer (no fraction or exponent) within int64_t. */
int json_int64(const struct json_doc *d, int i, int64_t *out);

#endif
