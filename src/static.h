/* static.h - the built-in static-file backend (service type=static). */
#ifndef EDGEPROXY_STATIC_H
#define EDGEPROXY_STATIC_H

#include "conn.h"

/* Answers GET/HEAD from the service's root directory. */
void static_handle(struct conn *c, const struct service_rt *svc);

#endif
