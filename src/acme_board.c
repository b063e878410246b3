/* acme_board.c - ACME challenge answers in a shared mapping (see acme_board.h).
 *
 * One writer (the supervisor), many readers (workers), no locks: each slot has a
 * sequence number that is odd while the slot is written; a reader copies the slot
 * and keeps the copy only if the number was even and unchanged around the copy. */
#include "acme_board.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "tls_cert.h"

#define BOARD_SLOTS 16
#define NAME_MAX_LEN 256    /* a DNS name (253) or a token (base64url, 43 from Let's Encrypt) */
#define KEYAUTH_MAX_LEN 320 /* token '.' thumbprint */
#define PEM_MAX_LEN 3072    /* the tls-alpn-01 certificate and its P-256 key, ~900 bytes */
#define READ_TRIES 16

enum { SLOT_FREE, SLOT_HTTP01, SLOT_ALPN };

struct slot {
	uint32_t seq;
	uint8_t type;
	char name[NAME_MAX_LEN];
	char keyauth[KEYAUTH_MAX_LEN];
	uint16_t cert_len, key_len; /* pem: the certificate, then the key */
	char pem[PEM_MAX_LEN];
};

static struct slot *board; /* BOARD_SLOTS slots; NULL: no workers */

int acme_board_open(void)
{
	size_t len = BOARD_SLOTS * sizeof(struct slot);
	/* MAP_ANONYMOUS takes fd -1, as portable code passes it (Linux ignores it);
	 * cppcheck's posix.cfg allows only fd >= 0: a false positive. */
	/* cppcheck-suppress invalidFunctionArg */
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	board = m;
	return 0;
}

/* ---- the supervisor's side ---------------------------------------------------------- */

static struct slot *slot_for(const char *name)
{
	struct slot *free_slot = NULL;
	for (size_t i = 0; i < BOARD_SLOTS; i++) {
		if (board[i].type != SLOT_FREE && strcmp(board[i].name, name) == 0)
			return &board[i];
		if (board[i].type == SLOT_FREE && !free_slot)
			free_slot = &board[i];
	}
	return free_slot;
}

static void write_begin(struct slot *s)
{
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(struct slot *s)
{
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}

static void post(int type, const char *name, const char *keyauth, const char *cert, size_t cert_len,
		 const char *key, size_t key_len)
{
	if (!board)
		return;
	size_t nl = strlen(name), kl = keyauth ? strlen(keyauth) : 0;
	if (nl >= NAME_MAX_LEN || kl >= KEYAUTH_MAX_LEN || cert_len + key_len > PEM_MAX_LEN) {
		log_error("acme: challenge answer for %.64s too large for the workers' board", name);
		return;
	}
	struct slot *s = slot_for(name);
	if (!s) {
		log_error("acme: more than %d challenges pending; %.64s not answered by workers", BOARD_SLOTS, name);
		return;
	}
	write_begin(s);
	s->type = (uint8_t)type;
	memcpy(s->name, name, nl + 1);
	memcpy(s->keyauth, keyauth ? keyauth : "", kl + 1);
	if (cert_len)
		memcpy(s->pem, cert, cert_len);
	if (key_len)
		memcpy(s->pem + cert_len, key, key_len);
	s->cert_len = (uint16_t)cert_len;
	s->key_len = (uint16_t)key_len;
	write_end(s);
}

void acme_board_post_http01(const char *token, const char *keyauth)
{
	post(SLOT_HTTP01, token, keyauth, NULL, 0, NULL, 0);
}

void acme_board_post_alpn(const char *domain, const char *cert_pem, size_t cert_len, const char *key_pem,
			  size_t key_len)
{
	post(SLOT_ALPN, domain, NULL, cert_pem, cert_len, key_pem, key_len);
}

void acme_board_withdraw(const char *name)
{
	if (!board || !name)
		return;
	for (size_t i = 0; i < BOARD_SLOTS; i++) {
		struct slot *s = &board[i];
		if (s->type == SLOT_FREE || strcmp(s->name, name) != 0)
			continue;
		write_begin(s);
		s->type = SLOT_FREE;
		memset(s->pem, 0, sizeof(s->pem)); /* the challenge key */
		s->cert_len = s->key_len = 0;
		write_end(s);
	}
}

/* ---- the workers' side -------------------------------------------------------------- */

/* Copies slot i into *out when it is settled; false when it kept changing. */
static bool read_slot(size_t i, struct slot *out)
{
	const struct slot *s = &board[i];
	for (int t = 0; t < READ_TRIES; t++) {
		uint32_t before = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (before & 1)
			continue;
		memcpy(out, s, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == before) {
			out->seq = before;
			out->name[NAME_MAX_LEN - 1] = out->keyauth[KEYAUTH_MAX_LEN - 1] = '\0';
			return true;
		}
	}
	return false;
}

const char *acme_board_http01(struct slice token)
{
	static struct slot copy;
	if (!board || token.len >= NAME_MAX_LEN)
		return NULL;
	for (size_t i = 0; i < BOARD_SLOTS; i++) {
		if (__atomic_load_n(&board[i].type, __ATOMIC_RELAXED) != SLOT_HTTP01 || !read_slot(i, &copy))
			continue;
		if (copy.type == SLOT_HTTP01 && slice_eq(token, slice_cstr(copy.name)))
			return copy.keyauth;
	}
	return NULL;
}

/* Parsed challenge certificates: one per slot, kept while the slot is unchanged;
 * a replaced one is freed a minute later (a handshake may still use it). */
static struct parsed {
	uint32_t seq;
	struct tls_cert *cert;
} parsed[BOARD_SLOTS];

#define RETIRED_MAX 8
static struct retired {
	struct tls_cert *cert;
	time_t at;
} retired[RETIRED_MAX];

static time_t now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void retire(struct tls_cert *c)
{
	time_t now = now_mono();
	size_t pick = 0;
	for (size_t i = 0; i < RETIRED_MAX; i++) {
		if (retired[i].cert && now - retired[i].at > 60) {
			tls_cert_free(retired[i].cert);
			free(retired[i].cert);
			retired[i].cert = NULL;
		}
		if (!retired[i].cert)
			pick = i;
	}
	if (retired[pick].cert)
		return; /* every place holds a certificate younger than a minute: keep it (a small leak) */
	retired[pick] = (struct retired){ c, now };
}

const struct tls_cert *acme_board_alpn(const char *sni)
{
	static struct slot copy;
	if (!board || !sni)
		return NULL;
	for (size_t i = 0; i < BOARD_SLOTS; i++) {
		if (__atomic_load_n(&board[i].type, __ATOMIC_RELAXED) != SLOT_ALPN || !read_slot(i, &copy))
			continue;
		if (copy.type != SLOT_ALPN || strcasecmp(copy.name, sni) != 0)
			continue;
		if (parsed[i].cert && parsed[i].seq == copy.seq)
			return parsed[i].cert;
		struct tls_cert *c = calloc(1, sizeof(*c));
		char err[200];
		if (!c || tls_cert_parse_pem(copy.pem, copy.cert_len, "tls-alpn-01", copy.pem + copy.cert_len,
					     copy.key_len, "tls-alpn-01", c, err, sizeof(err)) != 0) {
			free(c);
			memset(copy.pem, 0, sizeof(copy.pem));
			return NULL;
		}
		memset(copy.pem, 0, sizeof(copy.pem));
		if (parsed[i].cert)
			retire(parsed[i].cert);
		parsed[i] = (struct parsed){ copy.seq, c };
		return c;
	}
	return NULL;
}
