"""doit entry point: `doit` builds every ad in specs/ (see README). Thin by design: the task
graph lives in adspec.graph."""

from adspec.dodo_support import doit_config, creators_from_env

DOIT_CONFIG = doit_config()
globals().update(creators_from_env())
