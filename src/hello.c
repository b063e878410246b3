/* hello.c - the built-in hello backend: the smallest useful deployment, and the
 * same answers as the Go service users put behind Traefik. */
#include "hello.h"

#include "http_write.h"

#define HELLO_MAX 2048

void hello_handle(struct conn *c, const struct service_rt *svc)
{
	c->rq->service_url = "hello";
	if (slice_eq(c->rq->req.path, SLICE_LIT("/health"))) {
		conn_respond(c, 200, "text/plain; charset=utf-8", SLICE_LIT("OK"), NULL);
		return;
	}
	char text[HELLO_MAX];
	struct http_out o = { text, 0, sizeof(text) };
	if (!(http_out_slice(&o, svc->message) && http_out_str(&o, " @ ") && http_out_slice(&o, c->rq->req.host))) {
		conn_respond(c, 500, "text/plain; charset=utf-8", SLICE_LIT("500 Internal Server Error\n"), NULL);
		return;
	}
	conn_respond(c, 200, "text/plain; charset=utf-8", slice_make(text, o.len), NULL);
}
