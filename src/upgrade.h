/* upgrade.h - zero-downtime upgrade on SIGUSR2: the binary on disk is started
 * with the listening sockets inherited (named in $EDGEPROXY_LISTEN_FDS); once it
 * reports ready (through the pipe named in $EDGEPROXY_READY_FD) the old process
 * drains and exits. A new binary that fails to start leaves the old one serving. */
#ifndef EDGEPROXY_UPGRADE_H
#define EDGEPROXY_UPGRADE_H

#include <sys/socket.h>

/* Remembers how this process was started (the path of its binary, argv). */
void upgrade_init(char **argv);

/* An inherited listening socket for entry point name bound to addr, or -1. */
int upgrade_take_listener(const char *name, const struct sockaddr_storage *addr, socklen_t len);
/* Closes inherited sockets that no entry point took (after the first bind). */
void upgrade_close_unused(void);
/* Tells the process that started us that we serve now. */
void upgrade_report_ready(void);

/* SIGUSR2: starts the new binary; on_ready runs when it serves. */
void upgrade_start(void (*on_ready)(void));
/* In a worker just forked: the upgrade state is the supervisor's (its watchers are
 * stopped on the supervisor's loop, which the worker is about to destroy). */
void upgrade_forget(void);

#endif
