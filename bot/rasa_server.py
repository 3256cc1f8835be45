"""`python -m bot.rasa_server ARGS`: `rasa run --enable-api ARGS` with the API token from RASA_AUTH_TOKEN.

`rasa run` takes its token only as `--auth-token <token>`, and a command line is public: `ps` and
/proc/<pid>/cmdline show it to every user of the machine. This module is started with the other
arguments and hands Rasa the token inside the process (rewriting sys.argv does not change the
command line the kernel shows). It also caps the size of a request body (`bot.limits`), keeps the log
level it was given, and loads a model published with `PUT /model` without stalling the server
(`bot.model_swap`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, MutableMapping

from bot.limits import limit_sanic_requests
from bot.settings import from_env


def rasa_argv(args: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Rasa's argv: the HTTP API always on, always with the token, whatever `args` say."""
    token = from_env(environ).rasa_auth_token
    if not token:
        raise SystemExit("RASA_AUTH_TOKEN is not set: Rasa's HTTP API would be open to anyone")
    # Given last, so that they win over anything in `args` (argparse keeps the last value).
    return ["rasa", "run", *args, "--enable-api", "--auth-token", token]


def keep_the_root_log_level() -> None:
    """Run numpy.distutils.log's import-time side effect now, before Rasa sets the log level.

    setuptools' distutils logs through the ROOT logger, and importing numpy.distutils.log sets that
    logger to WARNING. Rasa's LogisticRegressionClassifier imports it (via skops) when the model
    loads, so every INFO line of ours (the channel, the stores) vanished after start-up. Imported
    first, the side effect happens before Rasa configures logging and is not repeated later.
    """
    with warnings.catch_warnings():
        # numpy.distutils is deprecated; only its import's side effect matters here.
        warnings.simplefilter("ignore", DeprecationWarning)
        import numpy.distutils.log  # noqa: F401


def skip_the_access_log(environ: MutableMapping[str, str]) -> None:
    """Sanic builds an access-log record for every request (the full URL, the peer address) even
    when the logger then drops it, as it does at LOG_LEVEL_LIBRARIES' default (ERROR): about 3 % of
    the Rasa process's CPU under a broadcast's status webhooks (docs/benchmarks.md). Off, unless an
    operator sets SANIC_ACCESS_LOG (docs/production.md, "Logs"); read when Rasa builds its app."""
    environ.setdefault("SANIC_ACCESS_LOG", "false")


def main() -> None:
    sys.argv = rasa_argv(sys.argv[1:])
    limit_sanic_requests(os.environ)
    skip_the_access_log(os.environ)
    keep_the_root_log_level()
    from rasa.__main__ import main as rasa_main  # heavy (TensorFlow): only once the token is there

    from bot.model_swap import load_models_off_the_loop

    load_models_off_the_loop()
    rasa_main()


if __name__ == "__main__":
    main()
