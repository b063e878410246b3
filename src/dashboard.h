/* dashboard.h - the admin listener's status page (one self-contained HTML document,
 * generated into dashboard.c from dashboard.html by tools/embed-dashboard.sh). */
#ifndef EDGEPROXY_DASHBOARD_H
#define EDGEPROXY_DASHBOARD_H

#include <stddef.h>

extern const char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
