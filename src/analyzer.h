/* analyzer.h - silences one diagnostic of GCC's static analyzer (-fanalyzer, `make
 * analyze`) over the few statements where it is a false positive; every use says
 * why. Only GCC sees the pragmas: clang warns about warning names it lacks. */
#ifndef EDGEPROXY_ANALYZER_H
#define EDGEPROXY_ANALYZER_H

#if defined(__GNUC__) && !defined(__clang__)
#define ANALYZER_PRAGMA_(text) _Pragma(#text)
/* ANALYZER_IGNORE("-Wanalyzer-malloc-leak") statements ANALYZER_END */
#define ANALYZER_IGNORE(warning) _Pragma("GCC diagnostic push") ANALYZER_PRAGMA_(GCC diagnostic ignored warning)
#define ANALYZER_END _Pragma("GCC diagnostic pop")
#else
#define ANALYZER_IGNORE(warning)
#define ANALYZER_END
#endif

#endif
