/* breaker.c - circuit breaker: the condition compiler (recursive descent into a
 * small node array), a sliding window of ten one-second buckets of outcome counts,
 * and the closed/open/recovering state machine with the linear recovery ramp that
 * Traefik (vulcand/oxy) uses: during recovery the share of requests let through
 * follows 0.5 * elapsed / recovery_duration. */
#include "breaker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 32
#define MAX_RANGES 16
#define MAX_DEPTH 16
#define WINDOW_BUCKETS 10
#define BUCKET_MS 1000

enum node_kind { N_OR, N_AND, N_CMP };
enum metric { M_NETWORK_ERROR_RATIO, M_RESPONSE_CODE_RATIO };
enum cmp_op { OP_GT, OP_LT, OP_GE, OP_LE, OP_EQ, OP_NE };

struct node {
	enum node_kind kind;
	int left, right;    /* N_OR, N_AND: operand nodes */
	enum metric metric; /* N_CMP */
	int num, den;       /* M_RESPONSE_CODE_RATIO: ranges counted above and below the line */
	enum cmp_op op;
	double threshold;
};

struct code_range {
	int lo, hi; /* [lo, hi) */
};

struct window_bucket {
	int64_t second; /* which second it counts; INT64_MIN when unused */
	uint32_t total, network_errors;
	uint32_t in_range[MAX_RANGES];
};

struct breaker {
	struct node nodes[MAX_NODES];
	int n_nodes, root;
	struct code_range ranges[MAX_RANGES];
	int n_ranges;
	int64_t check_ms, fallback_ms, recovery_ms;
	enum breaker_state state;
	int64_t until_ms;          /* open: end of the fallback; recovering: end of recovery */
	int64_t recovery_start_ms;
	uint64_t allowed, denied;  /* recovering: requests let through and refused so far */
	int64_t next_check_ms;
	struct window_bucket window[WINDOW_BUCKETS];
};

/* ---- the window ------------------------------------------------------------- */

static int64_t second_of(int64_t ms)
{
	return ms >= 0 ? ms / BUCKET_MS : -((-ms + BUCKET_MS - 1) / BUCKET_MS);
}

static void window_reset(struct breaker *b)
{
	memset(b->window, 0, sizeof(b->window));
	for (int i = 0; i < WINDOW_BUCKETS; i++)
		b->window[i].second = INT64_MIN;
}

static void window_add(struct breaker *b, int status, bool network_error, int64_t now_ms)
{
	int64_t s = second_of(now_ms);
	struct window_bucket *w = &b->window[((s % WINDOW_BUCKETS) + WINDOW_BUCKETS) % WINDOW_BUCKETS];
	if (w->second != s) {
		memset(w, 0, sizeof(*w));
		w->second = s;
	}
	w->total++;
	if (network_error)
		w->network_errors++;
	for (int i = 0; i < b->n_ranges; i++)
		if (status >= b->ranges[i].lo && status < b->ranges[i].hi)
			w->in_range[i]++;
}

struct totals {
	uint64_t total, network_errors;
	uint64_t in_range[MAX_RANGES];
};

static void window_sum(const struct breaker *b, int64_t now_ms, struct totals *t)
{
	int64_t s = second_of(now_ms);
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < WINDOW_BUCKETS; i++) {
		const struct window_bucket *w = &b->window[i];
		if (w->second == INT64_MIN || w->second > s || w->second <= s - WINDOW_BUCKETS)
			continue;
		t->total += w->total;
		t->network_errors += w->network_errors;
		for (int r = 0; r < b->n_ranges; r++)
			t->in_range[r] += w->in_range[r];
	}
}

static double ratio(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : 0.0;
}

static bool eval(const struct breaker *b, int id, const struct totals *t)
{
	const struct node *n = &b->nodes[id];
	switch (n->kind) {
	case N_OR:
		return eval(b, n->left, t) || eval(b, n->right, t);
	case N_AND:
		return eval(b, n->left, t) && eval(b, n->right, t);
	case N_CMP:
		break;
	}
	double v = n->metric == M_NETWORK_ERROR_RATIO ? ratio(t->network_errors, t->total)
						     : ratio(t->in_range[n->num], t->in_range[n->den]);
	switch (n->op) {
	case OP_GT: return v > n->threshold;
	case OP_LT: return v < n->threshold;
	case OP_GE: return v >= n->threshold;
	case OP_LE: return v <= n->threshold;
	case OP_EQ: return v == n->threshold;
	case OP_NE: return v != n->threshold;
	}
	return false;
}

/* ---- the condition ---------------------------------------------------------- */

struct parser {
	const char *text, *p;
	struct breaker *b;
	char *err;
	size_t errlen;
	int col;
	int depth;
};

static int fail(struct parser *ps, const char *at, const char *msg)
{
	if (ps->col == 0) {
		snprintf(ps->err, ps->errlen, "%s", msg);
		ps->col = (int)(at - ps->text) + 1;
	}
	return -1;
}

static void skip_blanks(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t')
		ps->p++;
}

static bool accept(struct parser *ps, const char *tok)
{
	skip_blanks(ps);
	size_t n = strlen(tok);
	if (strncmp(ps->p, tok, n) != 0)
		return false;
	ps->p += n;
	return true;
}

/* A decimal number: digits with an optional fraction. */
static int parse_number(struct parser *ps, double *out)
{
	skip_blanks(ps);
	const char *start = ps->p;
	double v = 0, scale = 1;
	int digits = 0;
	while (*ps->p >= '0' && *ps->p <= '9' && digits < 15) {
		v = v * 10 + (*ps->p++ - '0');
		digits++;
	}
	if (*ps->p == '.') {
		ps->p++;
		while (*ps->p >= '0' && *ps->p <= '9' && digits < 15) {
			scale /= 10;
			v += (*ps->p++ - '0') * scale;
			digits++;
		}
	}
	if (digits == 0 || (*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.')
		return fail(ps, start, "expected a number (up to 15 digits)");
	*out = v;
	return 0;
}

static int parse_code(struct parser *ps, int *out)
{
	const char *at = ps->p;
	double v;
	if (parse_number(ps, &v) < 0)
		return -1;
	if (v != (double)(int)v || v < 0 || v > 1000)
		return fail(ps, at, "a status code bound is a whole number from 0 to 1000");
	*out = (int)v;
	return 0;
}

static int add_range(struct parser *ps, const char *at, int lo, int hi)
{
	struct breaker *b = ps->b;
	if (lo >= hi)
		return fail(ps, at, "a status range needs its start below its end");
	for (int i = 0; i < b->n_ranges; i++)
		if (b->ranges[i].lo == lo && b->ranges[i].hi == hi)
			return i;
	if (b->n_ranges == MAX_RANGES)
		return fail(ps, at, "too many distinct status ranges");
	b->ranges[b->n_ranges] = (struct code_range){ lo, hi };
	return b->n_ranges++;
}

static int new_node(struct parser *ps, const char *at)
{
	if (ps->b->n_nodes == MAX_NODES)
		return fail(ps, at, "expression too long");
	memset(&ps->b->nodes[ps->b->n_nodes], 0, sizeof(ps->b->nodes[0]));
	return ps->b->n_nodes++;
}

static int parse_metric(struct parser *ps, struct node *n)
{
	skip_blanks(ps);
	const char *at = ps->p;
	if (accept(ps, "NetworkErrorRatio")) {
		if (!accept(ps, "(") || !accept(ps, ")"))
			return fail(ps, ps->p, "expected NetworkErrorRatio()");
		n->metric = M_NETWORK_ERROR_RATIO;
		return 0;
	}
	if (accept(ps, "ResponseCodeRatio")) {
		int c[4];
		if (!accept(ps, "("))
			return fail(ps, ps->p, "expected '('");
		for (int i = 0; i < 4; i++) {
			if (i > 0 && !accept(ps, ","))
				return fail(ps, ps->p, "ResponseCodeRatio takes four status bounds");
			skip_blanks(ps);
			if (parse_code(ps, &c[i]) < 0)
				return -1;
		}
		if (!accept(ps, ")"))
			return fail(ps, ps->p, "expected ')'");
		n->metric = M_RESPONSE_CODE_RATIO;
		if ((n->num = add_range(ps, at, c[0], c[1])) < 0 || (n->den = add_range(ps, at, c[2], c[3])) < 0)
			return -1;
		return 0;
	}
	if (accept(ps, "LatencyAtQuantileMS"))
		return fail(ps, at, "LatencyAtQuantileMS() is not supported in this build (no latency histogram)");
	return fail(ps, at, "expected NetworkErrorRatio() or ResponseCodeRatio(a, b, c, d)");
}

static int parse_or(struct parser *ps);

static int parse_primary(struct parser *ps)
{
	skip_blanks(ps);
	const char *at = ps->p;
	if (accept(ps, "(")) {
		if (++ps->depth > MAX_DEPTH)
			return fail(ps, at, "parentheses nested too deep");
		int inner = parse_or(ps);
		ps->depth--;
		if (inner < 0)
			return -1;
		if (!accept(ps, ")"))
			return fail(ps, ps->p, "expected ')'");
		return inner;
	}
	int id = new_node(ps, at);
	if (id < 0)
		return -1;
	struct node n = { .kind = N_CMP };
	if (parse_metric(ps, &n) < 0)
		return -1;
	static const struct {
		const char *tok;
		enum cmp_op op;
	} ops[] = {
		{ ">=", OP_GE }, { "<=", OP_LE }, { "==", OP_EQ }, { "!=", OP_NE }, { ">", OP_GT }, { "<", OP_LT },
	};
	size_t i = 0;
	while (i < sizeof(ops) / sizeof(ops[0]) && !accept(ps, ops[i].tok))
		i++;
	if (i == sizeof(ops) / sizeof(ops[0]))
		return fail(ps, ps->p, "expected a comparison (> < >= <= == !=)");
	n.op = ops[i].op;
	if (parse_number(ps, &n.threshold) < 0)
		return -1;
	ps->b->nodes[id] = n;
	return id;
}

static int parse_and(struct parser *ps)
{
	int left = parse_primary(ps);
	while (left >= 0 && accept(ps, "&&")) {
		const char *at = ps->p;
		int right = parse_primary(ps);
		if (right < 0)
			return -1;
		int id = new_node(ps, at);
		if (id < 0)
			return -1;
		ps->b->nodes[id] = (struct node){ .kind = N_AND, .left = left, .right = right };
		left = id;
	}
	return left;
}

static int parse_or(struct parser *ps)
{
	int left = parse_and(ps);
	while (left >= 0 && accept(ps, "||")) {
		const char *at = ps->p;
		int right = parse_and(ps);
		if (right < 0)
			return -1;
		int id = new_node(ps, at);
		if (id < 0)
			return -1;
		ps->b->nodes[id] = (struct node){ .kind = N_OR, .left = left, .right = right };
		left = id;
	}
	return left;
}

struct breaker *breaker_new(const char *expression, int64_t check_period_ms, int64_t fallback_ms,
			    int64_t recovery_ms, char *err, size_t errlen, int *col)
{
	struct breaker *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		*col = 1;
		return NULL;
	}
	struct parser ps = { expression, expression, b, err, errlen, 0, 0 };
	b->root = parse_or(&ps);
	skip_blanks(&ps);
	if (b->root >= 0 && *ps.p != '\0')
		fail(&ps, ps.p, "unexpected text (join conditions with && or ||)");
	if (ps.col != 0) {
		*col = ps.col;
		free(b);
		return NULL;
	}
	b->check_ms = check_period_ms > 0 ? check_period_ms : 1;
	b->fallback_ms = fallback_ms;
	b->recovery_ms = recovery_ms;
	b->state = BREAKER_CLOSED;
	window_reset(b);
	return b;
}

void breaker_free(struct breaker *b)
{
	free(b);
}

/* ---- the state machine ------------------------------------------------------ */

static void trip(struct breaker *b, int64_t now_ms)
{
	b->state = BREAKER_OPEN;
	b->until_ms = now_ms + b->fallback_ms;
	window_reset(b);
}

bool breaker_allow(struct breaker *b, int64_t now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now_ms < b->until_ms)
			return false;
		b->state = BREAKER_RECOVERING;
		b->recovery_start_ms = now_ms;
		b->until_ms = now_ms + b->recovery_ms;
		b->allowed = b->denied = 0;
		break;
	case BREAKER_RECOVERING:
		break;
	}
	if (now_ms >= b->until_ms) {
		b->state = BREAKER_CLOSED;
		return true;
	}
	/* Let this one through if that keeps the share let through below the target. */
	double target = 0.5 * (double)(now_ms - b->recovery_start_ms) / (double)b->recovery_ms;
	double share = (double)(b->allowed + 1) / (double)(b->allowed + 1 + b->denied);
	if (share < target) {
		b->allowed++;
		return true;
	}
	b->denied++;
	return false;
}

void breaker_observe(struct breaker *b, int status, bool network_error, int64_t now_ms)
{
	window_add(b, status, network_error, now_ms);
	if (now_ms < b->next_check_ms)
		return;
	b->next_check_ms = now_ms + b->check_ms;
	if (b->state == BREAKER_OPEN)
		return;
	struct totals t;
	window_sum(b, now_ms, &t);
	if (eval(b, b->root, &t))
		trip(b, now_ms);
}

enum breaker_state breaker_state(const struct breaker *b)
{
	return b->state;
}
