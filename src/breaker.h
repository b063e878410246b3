/* breaker.h - the circuit_breaker middleware's state machine and its condition, a
 * subset of Traefik's expression language: NetworkErrorRatio() and
 * ResponseCodeRatio(a, b, c, d) compared with > < >= <= == != to a number, joined
 * by && and || with parentheses. Closed -> open (fallback for fallback_duration)
 * -> recovering (a growing share let through for recovery_duration) -> closed. */
#ifndef EDGEPROXY_BREAKER_H
#define EDGEPROXY_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_RECOVERING };

struct breaker;

/* Compiles expression. NULL on a bad one, with a message in err and the 1-based
 * column of the problem in *col. Owner of the result: the caller. */
struct breaker *breaker_new(const char *expression, int64_t check_period_ms, int64_t fallback_ms,
			    int64_t recovery_ms, char *err, size_t errlen, int *col);
void breaker_free(struct breaker *b);

/* Whether a request at now_ms may go on (false: answer with the fallback, 503). */
bool breaker_allow(struct breaker *b, int64_t now_ms);

/* The outcome of a request that breaker_allow let through: its status, and whether
 * it failed at the network level (no response from the upstream). Every
 * check_period the condition is evaluated over the last 10 seconds of outcomes;
 * when it holds the breaker opens. */
void breaker_observe(struct breaker *b, int status, bool network_error, int64_t now_ms);

enum breaker_state breaker_state(const struct breaker *b);

#endif
