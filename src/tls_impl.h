/* tls_impl.h - the BearSSL implementations the TLS engines (server side in tls.c,
 * client side in http_client.c) run, where the target leaves no choice to make at
 * run time. br_ssl_engine_set_default_chapol() picks the fast ChaCha20 and Poly1305
 * code when the CPU has it and links the portable code as a fallback; on x86_64
 * (SSE2 always there) and on 64-bit targets with 128-bit multiplication (Poly1305's
 * ctmulq) that fallback can never run, and costs 1-2 KiB of the binary. */
#ifndef EDGEPROXY_TLS_IMPL_H
#define EDGEPROXY_TLS_IMPL_H

#include <bearssl.h>

static inline void tls_impl_set_chapol(br_ssl_engine_context *eng)
{
#if defined(__SIZEOF_INT128__)
	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable, &br_sslrec_out_chapol_vtable);
#if defined(__x86_64__)
	br_ssl_engine_set_chacha20(eng, &br_chacha20_sse2_run);
#else
	br_ssl_engine_set_chacha20(eng, &br_chacha20_ct_run);
#endif
	br_ssl_engine_set_poly1305(eng, &br_poly1305_ctmulq_run);
#else
	br_ssl_engine_set_default_chapol(eng);
#endif
}

#endif
