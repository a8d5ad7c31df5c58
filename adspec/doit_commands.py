"""doit's own commands where they trip a user with a traceback, fixed in subclasses that doit
loads in their place (its plug-in entry points, `doit.COMMAND` in pyproject.toml).

What changes, for any doit project in the environment (each only where doit crashed or
printed noise): `doit info <a name that is no task>` is one line with the closest names, not a
KeyError; `doit info` leaves out `(args=[], kwargs={})` after an up-to-date check that has none;
`doit list | head` and `doit info ... | head` end quietly when the reader leaves, as `cat` does;
`doit dumpdb` with no database of its kind says where the state is, not a dbm traceback.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

from doit.cmd_base import DoitCmdBase
from doit.cmd_dumpdb import DumpDB as _DumpDB
from doit.cmd_dumpdb import whichdb
from doit.cmd_info import Info as _Info
from doit.cmd_list import List as _List
from doit.exceptions import InvalidCommand

#: where an adspec project keeps doit's state (its DOIT_CONFIG: SQLite, so two runs cannot corrupt it)
ADSPEC_DEP_FILE = Path("build") / ".doit.sqlite3"


def _quiet_on_closed_pipe(command: DoitCmdBase, params: Any, args: Any) -> Any:
    """Run a command that prints; a reader that left early (`| head`) ends it quietly."""
    try:
        result = DoitCmdBase.execute(command, params, args)
        sys.stdout.flush()
        return result
    except BrokenPipeError:
        try:  # nothing more can be said to this reader; keep the exit-time flush from trying again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


class Info(_Info):
    """`doit info TASK`: an unknown name is one line (doit raised a KeyError)."""

    def execute(self, params: Any, args: Any) -> Any:
        return _quiet_on_closed_pipe(self, params, args)

    def _execute(self, pos_args: Any, hide_status: bool = False) -> Any:
        names = [t.name for t in self.task_list]
        if len(pos_args) == 1 and pos_args[0] not in names:
            close = difflib.get_close_matches(pos_args[0], names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InvalidCommand(f"`info`: no task named {pos_args[0]}{hint}; `doit list --all` lists them")
        return super()._execute(pos_args, hide_status=hide_status)

    @staticmethod
    def get_reasons(reasons: Any) -> str:
        text: str = _Info.get_reasons(reasons)
        return text.replace(" (args=[], kwargs={})", "")


class List(_List):
    """`doit list`: ends quietly when its reader leaves early."""

    def execute(self, params: Any, args: Any) -> Any:
        return _quiet_on_closed_pipe(self, params, args)


class DumpDB(_DumpDB):
    """`doit dumpdb` reads dbm files only: with none, say where the state is instead of crashing."""

    def execute(self, opt_values: Any, pos_args: Any) -> Any:
        dep_file = opt_values["dep_file"]
        if whichdb(dep_file) is None:
            where = (f"; this adspec project keeps doit's state in SQLite: sqlite3 {ADSPEC_DEP_FILE} "
                     "'select * from doit'") if ADSPEC_DEP_FILE.is_file() else ""
            raise InvalidCommand(f"`dumpdb` reads dbm files and there is none at {dep_file}{where}")
        return super().execute(opt_values, pos_args)
