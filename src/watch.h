/* watch.h - reload when the configuration file changes ([global] watch = on):
 * inotify on the file's directory, so editors that write a new file and rename
 * it over the old one are seen too; bursts of events are debounced. */
#ifndef EDGEPROXY_WATCH_H
#define EDGEPROXY_WATCH_H

/* Starts watching path; on_change runs once per burst of changes. -1 if inotify
 * is unavailable (SIGHUP still works). */
int watch_start(const char *path, void (*on_change)(void));
void watch_stop(void);
/* In a worker just forked: the supervisor's watch is not ours (its watchers belong
 * to the supervisor's loop); watch_stop becomes a no-op. */
void watch_forget(void);

#endif
