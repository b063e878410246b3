/* regexp.c - regular expressions: a recursive-descent parser to a small tree, a
 * compiler from the tree to instructions, and a Pike VM that runs them over the
 * subject once, keeping every live thread in step (Thompson's construction with
 * Pike's captures, as RE2 and Go do). Time is O(subject x program) for every
 * pattern; nothing backtracks, so no request can make a rule slow.
 *
 * Syntax, Go's RE2 on bytes (not UTF-8 code points):
 *   xy  x|y  (x)  (?:x)  x* x+ x? x{n} x{n,} x{n,m}, each with a trailing ? for
 *   the non-greedy form; n, m <= 255; a '{' that opens no such count is a '{'
 *   .  any byte (the newline too, as in POSIX)   ^ $ \A \z  start, end of subject
 *   \b \B  ASCII word boundary, and not    \d \D \w \W \s \S  ASCII classes
 *   [abc] [^a-z] [[:alpha:]] [[:^digit:]] [\d_]    \n \t \r \f \v
 *   \ before ASCII punctuation: that character
 * Refused with a message: back-references (\1), flags and named groups ((?i),
 * (?P<n>)), other escapes, a repetition of a repetition (a**), and patterns
 * beyond the limits in regexp.h. Matching is leftmost-first, as in Go (so in
 * Traefik): of the matches starting leftmost, the one the greedy/non-greedy
 * operators and the order of alternatives prefer; POSIX would take the longest. */
#include "regexp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the tree --------------------------------------------------------------- */

enum node_type { N_EMPTY, N_BYTE, N_CLASS, N_ANY, N_ASSERT, N_CAT, N_ALT, N_REPEAT, N_GROUP };
enum assertion { A_BEGIN, A_END, A_WORD, A_NOT_WORD };

#define REPEAT_INF 0xffff

struct node {
	unsigned char type;
	bool greedy;            /* N_REPEAT */
	unsigned short min, max; /* N_REPEAT; max REPEAT_INF: no bound */
	int val;  /* N_BYTE: the byte; N_CLASS: class index; N_ASSERT: enum assertion;
		   * N_GROUP: capture number, or -1 for (?:...) */
	int kid;  /* N_CAT, N_ALT: first of the list; N_REPEAT, N_GROUP: the operand */
	int next; /* the next one in a N_CAT/N_ALT list, or -1 */
};

struct parser {
	const char *p;
	size_t len, pos;
	struct node *nodes; /* owner: this parser */
	int nnodes, capnodes;
	unsigned char (*cls)[32]; /* byte sets, 256 bits each; owner: this parser, then the regexp */
	int ncls, capcls;
	int ngroups; /* capturing groups so far */
	int depth;   /* groups open */
	const char *err;
};

static int fail(struct parser *ps, const char *msg)
{
	if (!ps->err)
		ps->err = msg;
	return -1;
}

static int new_node(struct parser *ps, int type, int val)
{
	if (ps->nnodes == ps->capnodes) {
		int cap = ps->capnodes ? ps->capnodes * 2 : 32;
		struct node *v = realloc(ps->nodes, (size_t)cap * sizeof(*v));
		if (!v)
			return fail(ps, "out of memory");
		ps->nodes = v;
		ps->capnodes = cap;
	}
	struct node *n = &ps->nodes[ps->nnodes];
	*n = (struct node){ .type = (unsigned char)type, .val = val, .kid = -1, .next = -1 };
	return ps->nnodes++;
}

static int new_class(struct parser *ps, const unsigned char set[32])
{
	if (ps->ncls == ps->capcls) {
		int cap = ps->capcls ? ps->capcls * 2 : 8;
		unsigned char(*v)[32] = realloc(ps->cls, (size_t)cap * sizeof(*v));
		if (!v)
			return fail(ps, "out of memory");
		ps->cls = v;
		ps->capcls = cap;
	}
	memcpy(ps->cls[ps->ncls], set, 32);
	return new_node(ps, N_CLASS, ps->ncls++);
}

static bool more(const struct parser *ps)
{
	return ps->pos < ps->len;
}

static char peek(const struct parser *ps)
{
	return ps->p[ps->pos];
}

/* ---- byte sets ----------------------------------------------------------------- */

static void set_add(unsigned char set[32], unsigned c)
{
	set[c >> 3] |= (unsigned char)(1u << (c & 7));
}

static bool is_digit(unsigned c)
{
	return c >= '0' && c <= '9';
}

static bool is_upper(unsigned c)
{
	return c >= 'A' && c <= 'Z';
}

static bool is_lower(unsigned c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_word(unsigned c)
{
	return is_digit(c) || is_upper(c) || is_lower(c) || c == '_';
}

static bool is_punct(unsigned c)
{
	return c > ' ' && c < 0x7f && !is_word(c);
}

/* The ASCII classes: POSIX names, plus RE2's "word" and "ascii". */
static const char *const class_names[] = { "alpha", "digit", "alnum", "upper", "lower", "space",
					   "blank", "punct", "print", "graph", "cntrl", "xdigit",
					   "word", "ascii" };

static bool class_has(int k, unsigned c)
{
	switch (k) {
	case 0: return is_upper(c) || is_lower(c);
	case 1: return is_digit(c);
	case 2: return is_digit(c) || is_upper(c) || is_lower(c);
	case 3: return is_upper(c);
	case 4: return is_lower(c);
	case 5: return c == ' ' || (c >= '\t' && c <= '\r');
	case 6: return c == ' ' || c == '\t';
	case 7: return is_punct(c) || c == '_';
	case 8: return c >= ' ' && c < 0x7f;
	case 9: return c > ' ' && c < 0x7f;
	case 10: return c < ' ' || c == 0x7f;
	case 11: return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	case 12: return is_word(c);
	default: return c < 0x80;
	}
}

static void set_add_class(unsigned char set[32], int k, bool negate)
{
	for (unsigned c = 0; c < 256; c++)
		if (class_has(k, c) != negate)
			set_add(set, c);
}

/* \d \w \s and their negations, as Go defines them (\s is [\t\n\f\r ]). */
static bool shorthand(unsigned char set[32], char e)
{
	switch (e) {
	case 'd': case 'D': set_add_class(set, 1, e == 'D'); return true;
	case 'w': case 'W': set_add_class(set, 12, e == 'W'); return true;
	case 's': case 'S':
		for (unsigned c = 0; c < 256; c++)
			if ((c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r') == (e == 's'))
				set_add(set, c);
		return true;
	default: return false;
	}
}

/* The byte an escape \e stands for outside the classes: a control character or
 * punctuation taken literally; -1 for anything else. */
static int escaped_byte(char e)
{
	switch (e) {
	case 'n': return '\n';
	case 't': return '\t';
	case 'r': return '\r';
	case 'f': return '\f';
	case 'v': return '\v';
	default: return is_punct((unsigned char)e) ? (unsigned char)e : -1;
	}
}

/* ---- the parser ---------------------------------------------------------------- */

static int parse_alt(struct parser *ps);

/* "{n}", "{n,}" or "{n,m}" at the current position: its length (0 when there is
 * none: the '{' is then a plain byte), with the bounds in *min, *max. */
static size_t parse_count(struct parser *ps, unsigned *min, unsigned *max)
{
	size_t i = ps->pos + 1;
	unsigned n = 0, m;

	if (i >= ps->len || !is_digit((unsigned char)ps->p[i]))
		return 0;
	for (; i < ps->len && is_digit((unsigned char)ps->p[i]); i++)
		n = n > 1000 ? n : n * 10 + (unsigned)(ps->p[i] - '0');
	m = n;
	if (i < ps->len && ps->p[i] == ',') {
		m = REPEAT_INF;
		if (i + 1 < ps->len && is_digit((unsigned char)ps->p[i + 1]))
			for (m = 0, i++; i < ps->len && is_digit((unsigned char)ps->p[i]); i++)
				m = m > 1000 ? m : m * 10 + (unsigned)(ps->p[i] - '0');
		else
			i++;
	}
	if (i >= ps->len || ps->p[i] != '}')
		return 0;
	if (n > REGEXP_MAX_REPEAT || (m != REPEAT_INF && m > REGEXP_MAX_REPEAT)) {
		fail(ps, "repetition count above 255");
		return 0;
	}
	if (m < n) {
		fail(ps, "bad repetition range {n,m}: m below n");
		return 0;
	}
	*min = n;
	*max = m;
	return i + 1 - ps->pos;
}

static int parse_bracket(struct parser *ps)
{
	unsigned char set[32] = { 0 };
	bool negate = false, first = true;

	ps->pos++; /* '[' */
	if (more(ps) && peek(ps) == '^') {
		negate = true;
		ps->pos++;
	}
	for (;;) {
		if (!more(ps))
			return fail(ps, "missing ']'");
		char c = peek(ps);
		if (c == ']' && !first) {
			ps->pos++;
			break;
		}
		first = false;
		int lo;
		if (c == '[' && ps->pos + 1 < ps->len && ps->p[ps->pos + 1] == ':') {
			/* [:name:] or [:^name:] */
			size_t start = ps->pos + 2, end = start;
			while (end + 1 < ps->len && !(ps->p[end] == ':' && ps->p[end + 1] == ']'))
				end++;
			if (end + 1 >= ps->len)
				return fail(ps, "missing ']'");
			ps->pos = end + 2;
			bool neg = start < end && ps->p[start] == '^';
			start += neg;
			size_t k = 0, nk = sizeof(class_names) / sizeof(class_names[0]);
			while (k < nk && !(strlen(class_names[k]) == end - start &&
					   memcmp(class_names[k], ps->p + start, end - start) == 0))
				k++;
			if (k == nk)
				return fail(ps, "unknown character class name");
			set_add_class(set, (int)k, neg);
			continue;
		} else if (c == '\\') {
			if (++ps->pos >= ps->len)
				return fail(ps, "trailing backslash");
			char e = ps->p[ps->pos++];
			if (shorthand(set, e))
				continue;
			if ((lo = escaped_byte(e)) < 0)
				return fail(ps, "unknown escape sequence");
		} else {
			lo = (unsigned char)c;
			ps->pos++;
		}
		int hi = lo;
		if (ps->pos + 1 < ps->len && peek(ps) == '-' && ps->p[ps->pos + 1] != ']') {
			ps->pos++;
			hi = (unsigned char)ps->p[ps->pos++];
			if (hi == '\\') {
				if (!more(ps))
					return fail(ps, "trailing backslash");
				hi = escaped_byte(ps->p[ps->pos++]);
			}
			if (hi < lo)
				return fail(ps, "bad character range");
		}
		for (int k = lo; k <= hi; k++)
			set_add(set, (unsigned)k);
	}
	if (negate)
		for (int k = 0; k < 32; k++)
			set[k] = (unsigned char)~set[k];
	return new_class(ps, set);
}

static int parse_escape(struct parser *ps)
{
	unsigned char set[32] = { 0 };

	if (++ps->pos >= ps->len)
		return fail(ps, "trailing backslash");
	char e = ps->p[ps->pos++];
	if (shorthand(set, e))
		return new_class(ps, set);
	switch (e) {
	case 'A': return new_node(ps, N_ASSERT, A_BEGIN);
	case 'z': return new_node(ps, N_ASSERT, A_END);
	case 'b': return new_node(ps, N_ASSERT, A_WORD);
	case 'B': return new_node(ps, N_ASSERT, A_NOT_WORD);
	default: break;
	}
	if (e >= '1' && e <= '9')
		return fail(ps, "back-references are not supported");
	int b = escaped_byte(e);
	return b < 0 ? fail(ps, "unknown escape sequence") : new_node(ps, N_BYTE, b);
}

static int parse_group(struct parser *ps)
{
	int cap = -1;

	ps->pos++; /* '(' */
	if (more(ps) && peek(ps) == '?') {
		if (ps->pos + 1 >= ps->len || ps->p[ps->pos + 1] != ':')
			return fail(ps, "flags and named groups (?...) are not supported");
		ps->pos += 2;
	} else {
		cap = ++ps->ngroups;
	}
	if (++ps->depth > REGEXP_MAX_DEPTH)
		return fail(ps, "groups nested too deeply");
	int kid = parse_alt(ps);
	if (kid < 0)
		return -1;
	if (!more(ps) || peek(ps) != ')')
		return fail(ps, "missing ')'");
	ps->pos++;
	ps->depth--;
	int g = new_node(ps, N_GROUP, cap);
	if (g >= 0)
		ps->nodes[g].kid = kid;
	return g;
}

static int parse_atom(struct parser *ps)
{
	unsigned min, max;

	switch (peek(ps)) {
	case '(': return parse_group(ps);
	case '[': return parse_bracket(ps);
	case '\\': return parse_escape(ps);
	case '.': ps->pos++; return new_node(ps, N_ANY, 0);
	case '^': ps->pos++; return new_node(ps, N_ASSERT, A_BEGIN);
	case '$': ps->pos++; return new_node(ps, N_ASSERT, A_END);
	case '*':
	case '+':
	case '?': return fail(ps, "missing argument to repetition operator");
	case '{':
		if (parse_count(ps, &min, &max) > 0)
			return fail(ps, "missing argument to repetition operator");
		if (ps->err)
			return -1;
		break;
	default: break;
	}
	return new_node(ps, N_BYTE, (unsigned char)ps->p[ps->pos++]);
}

static int parse_repeat(struct parser *ps)
{
	int atom = parse_atom(ps);
	bool repeated = false;

	while (atom >= 0 && more(ps)) {
		unsigned min = 0, max = REPEAT_INF;
		size_t n = 1;
		char c = peek(ps);
		if (c == '+')
			min = 1;
		else if (c == '?')
			max = 1;
		else if (c != '*' && (c != '{' || (n = parse_count(ps, &min, &max)) == 0))
			return ps->err ? -1 : atom;
		if (repeated)
			return fail(ps, "stacked repetition operators (use a group)");
		repeated = true;
		ps->pos += n;
		bool greedy = !(more(ps) && peek(ps) == '?');
		if (!greedy)
			ps->pos++;
		int r = new_node(ps, N_REPEAT, 0);
		if (r >= 0) {
			struct node *nr = &ps->nodes[r];
			nr->kid = atom;
			nr->min = (unsigned short)min;
			nr->max = (unsigned short)max;
			nr->greedy = greedy;
		}
		atom = r;
	}
	return atom;
}

/* A list of nodes of type (N_CAT or N_ALT) from the items item() parses while
 * more(ps) and peek(ps) is not one of stop; one item stands for itself. */
static int parse_cat(struct parser *ps)
{
	int first = -1, last = -1, count = 0;

	while (more(ps) && peek(ps) != '|' && peek(ps) != ')') {
		int x = parse_repeat(ps);
		if (x < 0)
			return -1;
		if (last < 0)
			first = x;
		else
			ps->nodes[last].next = x;
		last = x;
		count++;
	}
	if (count <= 1)
		return count ? first : new_node(ps, N_EMPTY, 0);
	int cat = new_node(ps, N_CAT, 0);
	if (cat >= 0)
		ps->nodes[cat].kid = first;
	return cat;
}

static int parse_alt(struct parser *ps)
{
	int first = parse_cat(ps), last = first;

	if (first < 0 || !more(ps) || peek(ps) != '|')
		return first;
	int alt = new_node(ps, N_ALT, 0);
	if (alt < 0)
		return -1;
	ps->nodes[alt].kid = first;
	while (more(ps) && peek(ps) == '|') {
		ps->pos++;
		int b = parse_cat(ps);
		if (b < 0)
			return -1;
		ps->nodes[last].next = b;
		last = b;
	}
	return alt;
}

/* Bytes matched by node n once repetitions are expanded, saturating just above
 * REGEXP_MAX_ATOMS. */
static unsigned long atoms(const struct parser *ps, int n)
{
	const struct node *x = &ps->nodes[n];
	unsigned long sum = 0, a, copies;

	switch (x->type) {
	case N_BYTE:
	case N_CLASS:
	case N_ANY: return 1;
	case N_CAT:
	case N_ALT:
		for (int k = x->kid; k >= 0 && sum <= REGEXP_MAX_ATOMS; k = ps->nodes[k].next)
			sum += atoms(ps, k);
		return sum;
	case N_GROUP: return atoms(ps, x->kid);
	case N_REPEAT:
		a = atoms(ps, x->kid);
		copies = x->max != REPEAT_INF ? x->max : x->min ? x->min : 1;
		return a && copies > (REGEXP_MAX_ATOMS + 1) / a ? REGEXP_MAX_ATOMS + 1 : a * copies;
	default: return 0;
	}
}

/* ---- instructions -------------------------------------------------------------- */

enum op { I_BYTE, I_CLASS, I_ANY, I_MATCH, I_SPLIT, I_JMP, I_SAVE, I_ASSERT };

/* The VM only ever waits on the first four: they become threads. */
#define CONSUMES(op) ((op) <= I_MATCH)

/* Instructions a program may have (their indexes are 16 bits), and the target of
 * a jump not yet known. */
#define MAX_CODE (REGEXP_MAX_ATOMS * 8)
#define PATCH 0xffff

struct inst {
	unsigned char op;
	unsigned char c;      /* I_BYTE: the byte; I_ASSERT: enum assertion */
	unsigned short x, y;  /* I_SPLIT: preferred, other; I_JMP: target; I_CLASS:
				 class; I_SAVE: capture slot */
};

struct emitter {
	const struct parser *ps;
	struct inst *code; /* owner: this emitter, then the regexp */
	unsigned n, cap;
	unsigned nslots; /* capture slots recorded: 2 per reported group */
	const char *err;
};

static unsigned add(struct emitter *e, unsigned op, unsigned x, unsigned y)
{
	if (e->err)
		return 0;
	if (e->n == MAX_CODE) {
		e->err = "too large once its repetitions are expanded";
		return 0;
	}
	if (e->n == e->cap) {
		unsigned cap = e->cap ? e->cap * 2 : 64;
		struct inst *v = realloc(e->code, cap * sizeof(*v));
		if (!v) {
			e->err = "out of memory";
			return 0;
		}
		e->code = v;
		e->cap = cap;
	}
	e->code[e->n] = (struct inst){ (unsigned char)op, (unsigned char)x, (unsigned short)x,
				       (unsigned short)y };
	return e->n++;
}

/* Points the split at i to body and out, in the order greedy asks for. */
static void set_split(struct emitter *e, unsigned i, unsigned body, unsigned out, bool greedy)
{
	if (e->err)
		return;
	e->code[i].x = (unsigned short)(greedy ? body : out);
	e->code[i].y = (unsigned short)(greedy ? out : body);
}

static void emit(struct emitter *e, int n);

/* Whether node n can match the empty string. */
static bool nullable(const struct parser *ps, int n)
{
	const struct node *x = &ps->nodes[n];
	bool any = false;

	switch (x->type) {
	case N_BYTE:
	case N_CLASS:
	case N_ANY: return false;
	case N_CAT:
		for (int k = x->kid; k >= 0; k = ps->nodes[k].next)
			if (!nullable(ps, k))
				return false;
		return true;
	case N_ALT:
		for (int k = x->kid; k >= 0 && !any; k = ps->nodes[k].next)
			any = nullable(ps, k);
		return any;
	case N_GROUP: return nullable(ps, x->kid);
	case N_REPEAT: return x->min == 0 || nullable(ps, x->kid);
	default: return true;
	}
}

static void emit_repeat(struct emitter *e, const struct node *x)
{
	unsigned min = x->min, i;

	if (x->max == REPEAT_INF) {
		if (min == 0 && nullable(e->ps, x->kid)) {
			/* x* as (x+)?, as Go compiles it when x can be empty: an empty
			 * first round is then taken (and its groups recorded) before the
			 * loop gives up, which is the order Go's matches come in */
			unsigned quest = add(e, I_SPLIT, PATCH, PATCH), body = e->n;
			emit(e, x->kid);
			unsigned loop = add(e, I_SPLIT, PATCH, PATCH);
			set_split(e, quest, body, e->n, x->greedy);
			set_split(e, loop, body, e->n, x->greedy);
			return;
		}
		if (min == 0) { /* x*: L: split body, out; body: x; jmp L; out: */
			unsigned split = add(e, I_SPLIT, PATCH, PATCH);
			emit(e, x->kid);
			add(e, I_JMP, split, 0);
			set_split(e, split, split + 1, e->n, x->greedy);
			return;
		}
		for (i = 1; i < min; i++) /* x{n,}: n-1 copies, then x+ */
			emit(e, x->kid);
		unsigned body = e->n;
		emit(e, x->kid);
		unsigned split = add(e, I_SPLIT, PATCH, PATCH);
		set_split(e, split, body, split + 1, x->greedy);
		return;
	}
	for (i = 0; i < min; i++)
		emit(e, x->kid);
	/* x{n,m}: m-n optional copies, each skipping to the end: x(x(x)?)? */
	unsigned first = e->n;
	for (i = min; i < x->max && !e->err; i++) {
		add(e, I_SPLIT, PATCH, PATCH);
		emit(e, x->kid);
	}
	for (unsigned k = first; k < e->n && !e->err; k++)
		if (e->code[k].op == I_SPLIT && e->code[k].x == PATCH)
			set_split(e, k, k + 1, e->n, x->greedy);
}

static void emit(struct emitter *e, int n)
{
	const struct node *x = &e->ps->nodes[n];

	switch (x->type) {
	case N_EMPTY: break;
	case N_BYTE: add(e, I_BYTE, (unsigned)x->val, 0); break;
	case N_CLASS: add(e, I_CLASS, (unsigned)x->val, 0); break;
	case N_ANY: add(e, I_ANY, 0, 0); break;
	case N_ASSERT: add(e, I_ASSERT, (unsigned)x->val, 0); break;
	case N_CAT:
		for (int k = x->kid; k >= 0; k = e->ps->nodes[k].next)
			emit(e, k);
		break;
	case N_ALT: {
		/* split L1, next; L1: a; jmp out; next: split L2, next2; ... last: z; out: */
		unsigned first = e->n;
		for (int k = x->kid; k >= 0 && !e->err; k = e->ps->nodes[k].next) {
			if (e->ps->nodes[k].next < 0) {
				emit(e, k);
				break;
			}
			unsigned split = add(e, I_SPLIT, PATCH, PATCH);
			emit(e, k);
			add(e, I_JMP, PATCH, 0); /* to out, patched below */
			set_split(e, split, split + 1, e->n, true);
		}
		for (unsigned k = first; k < e->n && !e->err; k++)
			if (e->code[k].op == I_JMP && e->code[k].x == PATCH)
				e->code[k].x = (unsigned short)e->n;
		break;
	}
	case N_GROUP:
		if (x->val >= 0 && 2 * (unsigned)x->val + 1 < e->nslots) {
			add(e, I_SAVE, 2 * (unsigned)x->val, 0);
			emit(e, x->kid);
			add(e, I_SAVE, 2 * (unsigned)x->val + 1, 0);
		} else {
			emit(e, x->kid);
		}
		break;
	case N_REPEAT: emit_repeat(e, x); break;
	default: break;
	}
}

/* ---- the compiled form and the VM ------------------------------------------------ */

/* Threads waiting at one position, in priority order, and the set of every
 * instruction the position's closure has visited (so each is visited once). */
struct threads {
	unsigned n, nvisited;
	unsigned short *pc;      /* [nwait]: the waiting instructions */
	int *slots;              /* [nwait * nslots]: their capture slots */
	unsigned short *visited; /* [ncode], dense */
	unsigned short *where;   /* [ncode], sparse index into visited */
};

/* One step of the closure walk: follow pc, or (slot >= 0) put a slot back. */
struct frame {
	unsigned short pc;
	short slot;
	int old;
};

struct regexp {
	struct inst *code; /* owner: this */
	unsigned ncode;
	unsigned char (*cls)[32]; /* owner: this */
	unsigned nslots;
	/* The matcher's work space, sized for this program (owner: this). */
	struct threads *q;       /* [2]: this position's threads, the next one's */
	int *cur, *best, *unset; /* [nslots] each */
	struct frame *stack;     /* [2 * ncode + 2] */
};

void regexp_free(struct regexp *re)
{
	if (!re)
		return;
	for (int i = 0; re->q && i < 2; i++) {
		free(re->q[i].pc);
		free(re->q[i].slots);
		free(re->q[i].visited);
		free(re->q[i].where);
	}
	free(re->q);
	free(re->cur);
	free(re->best);
	free(re->unset);
	free(re->stack);
	free(re->code);
	free(re->cls);
	free(re);
}

static bool alloc_work(struct regexp *re)
{
	unsigned nwait = 0, s = re->nslots ? re->nslots : 1;
	for (unsigned i = 0; i < re->ncode; i++)
		nwait += CONSUMES(re->code[i].op);
	if (!(re->q = calloc(2, sizeof(*re->q))))
		return false;
	for (int i = 0; i < 2; i++) {
		struct threads *q = &re->q[i];
		q->pc = calloc(nwait, sizeof(*q->pc));
		q->slots = calloc((size_t)nwait * s, sizeof(*q->slots));
		q->visited = calloc(re->ncode, sizeof(*q->visited));
		q->where = calloc(re->ncode, sizeof(*q->where));
		if (!q->pc || !q->slots || !q->visited || !q->where)
			return false;
	}
	re->cur = calloc(s, sizeof(int));
	re->best = calloc(s, sizeof(int));
	re->unset = malloc(s * sizeof(int));
	re->stack = calloc(2 * (size_t)re->ncode + 2, sizeof(*re->stack));
	if (!re->cur || !re->best || !re->unset || !re->stack)
		return false;
	for (unsigned i = 0; i < s; i++)
		re->unset[i] = -1;
	return true;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

struct regexp *regexp_compile(const char *pattern, size_t len, unsigned ncap, char *err,
			      size_t errlen)
{
	struct parser ps = { .p = pattern, .len = len };
	struct emitter e = { .ps = &ps };
	struct regexp *re = NULL;

	int root = parse_alt(&ps);
	if (root >= 0 && more(&ps))
		fail(&ps, "unexpected ')'");
	if (!ps.err && atoms(&ps, root) > REGEXP_MAX_ATOMS)
		fail(&ps, "too large once its repetitions are expanded");
	if (ps.err) {
		set_err(err, errlen, ps.err);
		goto out;
	}
	/* [save 0] pattern [save 1] match */
	e.nslots = 2 * (ncap < 1000 ? ncap : 1000);
	if (e.nslots)
		add(&e, I_SAVE, 0, 0);
	emit(&e, root);
	if (e.nslots)
		add(&e, I_SAVE, 1, 0);
	add(&e, I_MATCH, 0, 0);
	re = calloc(1, sizeof(*re));
	if (!e.err && !re)
		e.err = "out of memory";
	if (e.err) {
		set_err(err, errlen, e.err);
		goto out;
	}
	re->code = e.code;
	re->ncode = e.n;
	re->cls = ps.cls;
	re->nslots = e.nslots;
	e.code = NULL;
	ps.cls = NULL;
	if (!alloc_work(re)) {
		set_err(err, errlen, "out of memory");
		regexp_free(re);
		re = NULL;
	}
out:
	if (!re)
		free(e.code);
	free(ps.cls);
	free(ps.nodes);
	return re;
}

static unsigned char byte_at(struct slice s, size_t i, bool fold)
{
	unsigned char c = (unsigned char)s.p[i];
	return fold && is_upper(c) ? (unsigned char)(c + 32) : c;
}

static bool assertion_holds(unsigned kind, struct slice s, size_t pos, bool fold)
{
	switch (kind) {
	case A_BEGIN: return pos == 0;
	case A_END: return pos == s.len;
	default: {
		bool before = pos > 0 && is_word(byte_at(s, pos - 1, fold));
		bool after = pos < s.len && is_word(byte_at(s, pos, fold));
		return (before != after) == (kind == A_WORD);
	}
	}
}

/* Adds to q the threads that instruction pc leads to at position pos without
 * consuming a byte, highest priority first, each with its capture slots: those
 * of from, updated by the saves on the way. Iterative, on re->stack: a pattern's
 * depth is not the C stack's business. */
static void add_thread(const struct regexp *re, struct threads *q, unsigned pc, const int *from,
		       size_t pos, struct slice s, bool fold)
{
	int *cur = re->cur;
	struct frame *st = re->stack;
	unsigned sp = 0, ns = re->nslots;

	memcpy(cur, from, ns * sizeof(int));
	st[sp++] = (struct frame){ (unsigned short)pc, -1, 0 };
	while (sp > 0) {
		struct frame f = st[--sp];
		if (f.slot >= 0) {
			cur[f.slot] = f.old;
			continue;
		}
		unsigned short w = q->where[f.pc];
		if (w < q->nvisited && q->visited[w] == f.pc)
			continue;
		q->where[f.pc] = (unsigned short)q->nvisited;
		q->visited[q->nvisited++] = f.pc;
		const struct inst *in = &re->code[f.pc];
		switch (in->op) {
		case I_JMP:
			st[sp++] = (struct frame){ in->x, -1, 0 };
			break;
		case I_SPLIT:
			st[sp++] = (struct frame){ in->y, -1, 0 };
			st[sp++] = (struct frame){ in->x, -1, 0 };
			break;
		case I_SAVE:
			st[sp++] = (struct frame){ 0, (short)in->x, cur[in->x] };
			cur[in->x] = (int)pos;
			st[sp++] = (struct frame){ (unsigned short)(f.pc + 1), -1, 0 };
			break;
		case I_ASSERT:
			if (assertion_holds(in->c, s, pos, fold))
				st[sp++] = (struct frame){ (unsigned short)(f.pc + 1), -1, 0 };
			break;
		default:
			q->pc[q->n] = f.pc;
			memcpy(q->slots + (size_t)q->n * ns, cur, ns * sizeof(int));
			q->n++;
			break;
		}
	}
}

bool regexp_search(const struct regexp *re, struct slice s, size_t from, bool fold,
		   struct regexp_span *caps)
{
	struct threads *cl = &re->q[0], *nl = &re->q[1];
	unsigned ns = re->nslots;
	bool matched = false;

	if (from > s.len || s.len >= 0x7fffffff)
		return false;
	cl->n = cl->nvisited = 0;
	for (size_t i = from;; i++) {
		if (!matched) /* a match starting here ranks below those started earlier */
			add_thread(re, cl, 0, re->unset, i, s, fold);
		if (cl->n == 0 && (matched || i >= s.len))
			break;
		int c = i < s.len ? byte_at(s, i, fold) : -1;
		nl->n = nl->nvisited = 0;
		for (unsigned k = 0; k < cl->n; k++) {
			const struct inst *in = &re->code[cl->pc[k]];
			const int *slots = cl->slots + (size_t)k * ns;
			bool ok = false;
			switch (in->op) {
			case I_BYTE: ok = c == in->c; break;
			case I_CLASS: ok = c >= 0 && ((re->cls[in->x][c >> 3] >> (c & 7)) & 1); break;
			case I_ANY: ok = c >= 0; break;
			default: /* I_MATCH: the threads below this one lose */
				if (ns == 0)
					return true;
				memcpy(re->best, slots, ns * sizeof(int));
				matched = true;
				k = cl->n;
				continue;
			}
			if (ok)
				add_thread(re, nl, cl->pc[k] + 1u, slots, i + 1, s, fold);
		}
		struct threads *t = cl;
		cl = nl;
		nl = t;
		if (i >= s.len)
			break;
	}
	if (!matched)
		return false;
	for (unsigned g = 0; caps && g < ns / 2; g++) {
		bool set = re->best[2 * g] >= 0 && re->best[2 * g + 1] >= 0;
		caps[g].so = set ? re->best[2 * g] : -1;
		caps[g].eo = set ? re->best[2 * g + 1] : -1;
	}
	return true;
}
