/* http_write.c - response-side serialisation helpers shared by every handler. */
#include "http_write.h"

#include <string.h>
#include <time.h>

#include "timefmt.h"

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

struct slice http_date_now(void)
{
	static char text[TIMEFMT_IMF_LEN + 1];
	static time_t cached = -1;
	static size_t len;
	time_t now = time(NULL);
	if (now != cached) {
		len = timefmt_imf(now, text);
		cached = now;
	}
	return slice_make(text, len);
}

bool http_out_put(struct http_out *o, const char *p, size_t n)
{
	if (n > o->cap - o->len)
		return false;
	/* An empty slice may carry a NULL pointer (an HTTP/1.0 request without
	 * Host), and memcpy's arguments must not be NULL even for zero bytes. */
	if (n == 0)
		return true;
	memcpy(o->p + o->len, p, n);
	o->len += n;
	return true;
}

bool http_out_slice(struct http_out *o, struct slice s)
{
	return http_out_put(o, s.p, s.len);
}

bool http_out_str(struct http_out *o, const char *s)
{
	return http_out_put(o, s, strlen(s));
}

bool http_out_uint(struct http_out *o, unsigned long long v)
{
	char digits[24];
	size_t n = sizeof(digits);
	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return http_out_put(o, digits + n, sizeof(digits) - n);
}
