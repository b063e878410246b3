/* static_path.c - request path to root-relative file path (see static_path.h). */
#include "static_path.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int static_path_clean(struct slice path, char *out, size_t cap)
{
	size_t n = 0;
	size_t i = 0;
	if (cap == 0)
		return -1;
	while (i < path.len) {
		while (i < path.len && path.p[i] == '/')
			i++;
		if (i == path.len)
			break;
		size_t seg_start = n;
		if (n > 0) {
			if (n + 1 >= cap)
				return -1;
			out[n++] = '/';
			seg_start = n;
		}
		for (; i < path.len && path.p[i] != '/'; i++) {
			unsigned char ch = (unsigned char)path.p[i];
			if (ch == '%') {
				int hi = i + 2 < path.len ? hex_value(path.p[i + 1]) : -1;
				int lo = i + 2 < path.len ? hex_value(path.p[i + 2]) : -1;
				if (hi < 0 || lo < 0)
					return -1;
				ch = (unsigned char)(hi * 16 + lo);
				i += 2;
				if (ch == '/' || ch == '\0')
					return -1; /* an encoded separator would be a second meaning */
			}
			if (ch < 0x20 || ch == 0x7f)
				return -1;
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)ch;
		}
		size_t seg_len = n - seg_start;
		if ((seg_len == 1 && out[seg_start] == '.') ||
		    (seg_len == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.'))
			return -1;
	}
	out[n] = '\0';
	return 0;
}
