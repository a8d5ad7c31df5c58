"""doit entry point: `doit` builds every ad in specs/ (see README). Thin by design: the task
graph lives in adspec.graph."""

from adspec.dodo_support import creators_from_env, default_task_names, doit_config

_creators = creators_from_env()
DOIT_CONFIG = doit_config(default_task_names(_creators))
globals().update(_creators)
