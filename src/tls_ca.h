/* tls_ca.h - trust anchors loaded from a PEM file, for client certificates. */
#ifndef EDGEPROXY_TLS_CA_H
#define EDGEPROXY_TLS_CA_H

#include <stddef.h>

#include <bearssl.h>

struct tls_ca {
	br_x509_trust_anchor *anchors; /* owner: this struct (DNs and keys too) */
	size_t n;
};

/* Loads every CERTIFICATE of a PEM file. -1 with a message in err. */
int tls_ca_load(const char *path, struct tls_ca *ca, char *err, size_t errlen);
void tls_ca_free(struct tls_ca *ca);

#endif
