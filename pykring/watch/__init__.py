"""``python -m pykring watch``: kernel events live, one line per event.

Text (default)::

    TIME             EVENT  PID      PPID     PATH / COMMAND LINE
    20:40:33.002486  exec   14967    14965    /usr/bin/ls  /bin/ls -l /tmp
    20:40:33.002495  image  14967    14965    /usr/bin/ls  0x55ba3c2e4000 +0x16000 main
    20:40:33.004426  exit   14967    14965    /usr/bin/ls  exit 0

Events: ``fork`` (a new process: it still runs its parent's program, whose
path and command line are shown), ``exec`` (a process starts a program),
``exit`` (the whole process has gone: exit code or signal), ``image`` (an
executable file mapped into a process: the program, its loader, libraries).

``--json`` prints JSON Lines instead, one object per event with keys
``type`` (process_start, process_exit, image_load), ``ts`` (ns since the
Unix epoch), ``pid``, ``ppid`` (null when unknown), ``path``, and where they
apply ``exit_code``, ``cmdline``, ``address``, ``length`` (and a few more).
A summary goes to stderr at the end. On Ctrl-C or SIGTERM (or at
``--duration``) the events the kernel had written by then are shown, and a
recording closed, before it stops.

The package's face: every name is defined in a module beneath it,
:mod:`~pykring.watch.command` (the commands and their options),
:mod:`~pykring.watch.printer` (Watch: filters, lines, counts),
:mod:`~pykring.watch.table` (ProcessTable) and
:mod:`~pykring.watch.stop_signals` (Ctrl-C and SIGTERM).
"""
from .command import (
    _LAST_READS,
    _add_filters,
    _lost_line,
    _open_outputs,
    add_arguments,
    add_replay_arguments,
    replay,
    run,
)
from .printer import Watch
from .stop_signals import _STOP_SIGNALS, _stop, _sigterm_stops, _stops_held
from .table import ProcessTable, _proc_facts
