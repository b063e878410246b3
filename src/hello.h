/* hello.h - the built-in hello backend (service type=hello). */
#ifndef EDGEPROXY_HELLO_H
#define EDGEPROXY_HELLO_H

#include "conn.h"

/* GET /health -> 200 "OK"; any other path -> "<message> @ <Host>". */
void hello_handle(struct conn *c, const struct service_rt *svc);

#endif
