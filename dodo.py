"""doit entry point: `doit` builds every ad in specs/ (see README). Thin by design: the task
graph lives in adspec.graph."""

from adspec.noop_stamp import replay_or_watch

# nothing changed since the last clean no-op of this command: print its output again and stop
replay_or_watch()

from adspec.dodo_support import creators_from_env, default_task_names, doit_config  # noqa: E402

_creators = creators_from_env()
DOIT_CONFIG = doit_config(default_task_names(_creators))
globals().update(_creators)
