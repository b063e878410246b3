"""pytest plugin for the sanitizer run (make test-asan, tools/asan.mk): a test fails
when an edgeproxy it ran reported an AddressSanitizer, LeakSanitizer or
UndefinedBehaviorSanitizer error.

Loaded with `-p conftest_asan` (tests/integration on PYTHONPATH). Two sources are
checked after each test, once its own fixtures have stopped their processes:
  - the output file of every harness.EdgeProxy started during the test;
  - new report files under the sanitizers' log_path (ASAN_OPTIONS / UBSAN_OPTIONS),
    which also catch processes the harness did not start itself (CLI runs through
    subprocess, the binary re-executed by a SIGUSR2 upgrade).
Processes still running after the test (session-scoped fixtures) are checked again
when the session ends; a report found then makes the run fail."""
import glob
import os
import re

import pytest

import harness

MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
           "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: AddressSanitizer")

_started = []      # every EdgeProxy, in start order
_reported = set()  # (source, offset) already reported
_late = []         # findings made at session end


def _init(self, *args, **kwargs):
    _started.append(self)
    _orig_init(self, *args, **kwargs)


_orig_init = harness.EdgeProxy.__init__
harness.EdgeProxy.__init__ = _init


def _report_prefixes():
    out = []
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        m = re.search(r"(?:^|:)log_path=([^:]+)", os.environ.get(var, ""))
        if m:
            out.append(m.group(1))
    return out


def _report_files():
    return {f for prefix in _report_prefixes() for f in glob.glob(prefix + ".*")}


def _findings_in(text, source):
    """Each sanitizer report in text, from its first marker, once."""
    found = []
    for marker in MARKERS:
        start = 0
        while True:
            i = text.find(marker, start)
            if i < 0:
                break
            start = i + len(marker)
            line_start = text.rfind("\n", 0, i) + 1
            key = (source, line_start)
            if key in _reported:
                continue
            _reported.add(key)
            found.append(f"--- {source}:\n{text[line_start:line_start + 6000]}")
    return found


def _proxy_output(p):
    try:
        p.log.flush()
        with open(p.log.name, errors="replace") as f:
            return f.read()
    except (AttributeError, OSError, ValueError):
        return ""


def _check(procs, files):
    findings = []
    for p in procs:
        findings += _findings_in(_proxy_output(p), getattr(getattr(p, "log", None), "name", "edgeproxy"))
    for path in sorted(files):
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        findings += _findings_in(text, path) or ([] if not text.strip() or (path, 0) in _reported
                                                 else [f"--- {path}:\n{text[:6000]}"])
        _reported.add((path, 0))
    return findings


@pytest.fixture(autouse=True)
def _sanitizer_reports():
    files_before = _report_files()
    first = len(_started)
    yield
    # A proxy still running now belongs to a wider fixture: what it printed so far
    # is checked here, its leak report at the session's end.
    procs = _started[first:]
    findings = _check(procs, _report_files() - files_before)
    if findings:
        pytest.fail("sanitizer report(s) from edgeproxy:\n" + "\n".join(findings), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    for p in _started:
        if getattr(p, "proc", None) is not None and p.proc.poll() is None:
            p.stop()
    findings = _check(_started, _report_files())
    if findings:
        _late.extend(findings)
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _late:
        terminalreporter.section("sanitizer reports found after the tests")
        for f in _late:
            terminalreporter.write_line(f)
