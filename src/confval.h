/* confval.h - parsers for INI value syntaxes: durations, sizes, booleans, integers
 * and listen addresses. Each returns 0 on success, -1 on a bad value. */
#ifndef EDGEPROXY_CONFVAL_H
#define EDGEPROXY_CONFVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* "500ms", "10s", "5m", "72h", "30d", sums like "1m30s"; a bare number is seconds. */
int confval_duration(const char *text, int64_t *ms);
/* "512", "16k", "4m", "1g" (binary multiples). */
int confval_size(const char *text, uint64_t *bytes);
/* on/off, true/false, yes/no, 1/0. */
int confval_bool(const char *text, bool *value);
/* Decimal integer within [min, max]. */
int confval_int(const char *text, int64_t min, int64_t max, int64_t *value);
/* ":80" (all addresses, IPv6 and IPv4), "0.0.0.0:8080", "127.0.0.1:8443",
 * "[::]:443", "localhost:8080" (127.0.0.1; no resolver needed in an empty root). */
int confval_listen(const char *text, struct sockaddr_storage *addr, socklen_t *len);

/* Status lists like "200-399" or "200,204,300-399" (statuses 100-599). */
int confval_status_list(const char *text);
/* Whether status is in a list that confval_status_list accepted. */
bool confval_status_in(const char *list, int status);

#endif
