/* ev_host.c - libev compiled from its pinned source for host-side unit tests (ASan,
 * UBSan), with the configuration vendor/versions.sh gives the target's libev. */
#define EV_STANDALONE 1
#define EV_USE_EPOLL 1
#define EV_USE_POLL 1
#define EV_USE_SELECT 0
#define EV_USE_EVENTFD 1
#define EV_USE_SIGNALFD 1
#define EV_USE_TIMERFD 1
#define EV_USE_INOTIFY 0
#define EV_USE_IOURING 0
#define EV_USE_LINUXAIO 0
#define EV_USE_MONOTONIC 1
#define EV_USE_NANOSLEEP 1
#define EV_USE_FLOOR 1
/* third-party code: its directory is on the -isystem path (tests/acme.mk), so it
 * compiles without warnings here */
#include "ev.c"
