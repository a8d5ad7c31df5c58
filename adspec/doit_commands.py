"""doit's own commands where they trip a user with a traceback, fixed in subclasses that doit
loads in their place (its plug-in entry points, `doit.COMMAND` in pyproject.toml).

What changes, for any doit project in the environment (each only where doit crashed or
printed noise): `doit info <a name that is no task>` is one line with the closest names, not a
KeyError; `doit info` leaves out `(args=[], kwargs={})` after an up-to-date check that has none, and says
when a task up to date now waits on one that is not (an edit reaches it only through that one);
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
        code = super()._execute(pos_args, hide_status=hide_status)
        if code == 0 and not hide_status:
            stale = self._stale_dependencies(pos_args[0]) if len(pos_args) == 1 else []
            if stale:  # up to date now, on inputs a task that runs first may rewrite
                shown = ", ".join(stale[:4]) + (f" and {len(stale) - 4} more" if len(stale) > 4 else "")
                self.outstream.write(f"\n{'note':11s}: up to date on what is there now, but it waits on {shown}, "
                                     "which will run first: what that writes may make this task run too\n")
        return code

    def _stale_dependencies(self, name: str) -> list[str]:
        """The tasks `name` depends on (by task_dep, setup or a file_dep another task makes),
        transitively, that are not up to date."""
        tasks = {t.name: t for t in self.task_list}
        made_by = {target: t.name for t in self.task_list for target in t.targets}
        seen: set[str] = set()
        stack = [name]
        while stack:
            task = tasks[stack.pop()]
            for dep in [*task.task_dep, *task.setup_tasks, *(made_by[f] for f in task.file_dep if f in made_by)]:
                if dep in tasks and dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        stale = []
        for dep in sorted(seen):
            try:
                if self.dep_manager.get_status(tasks[dep], tasks).status != "up-to-date":
                    stale.append(dep)
            except Exception:  # noqa: BLE001 - a check that cannot run here: say nothing of it
                continue
        return stale

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
