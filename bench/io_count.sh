#!/usr/bin/env bash
# Runs a command and appends the I/O counters of it (and of what it ran) to
# $IO_COUNT_OUT (standard error by default), one line "rchar: N wchar: N ...".
# Linux adds a child's counters to its parent's /proc/<pid>/io when the
# parent reaps it, so once the command has exited this shell's counters are
# the command's, plus the few bytes this script itself reads.
"$@"
rc=$?
awk '{ printf "%s ", $0 } END { print "" }' /proc/$$/io >>"${IO_COUNT_OUT:-/dev/stderr}"
exit $rc
