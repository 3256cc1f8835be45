"""bot/settings.py: every variable parsed (defaults, values, bad values refused by name), and no
other module of bot/ or actions/ reading the environment."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, child_environment, database_url, from_env

ROOT = Path(__file__).resolve().parent.parent


def test_an_empty_environment_gives_the_defaults():
    assert from_env({}) == Settings()
    assert Settings().rasa_port == 5005 and Settings().opt_out_mode == "confirm"


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("DATABASE_URL", "postgresql://bot@db/bot", "database_url", "postgresql://bot@db/bot"),
        ("TRACKER_STORE_URL", "sqlite:///t.db", "tracker_store_url", "sqlite:///t.db"),
        ("REDIS_URL", "redis://cache:6379/0", "redis_url", "redis://cache:6379/0"),
        ("SANIC_WORKERS", "3", "sanic_workers", 3),
        ("SANIC_REQUEST_MAX_SIZE", "1048576", "sanic_request_max_size", 1048576),
        ("RASA_PORT", "6005", "rasa_port", 6005),
        ("ACTIONS_PORT", "6055", "actions_port", 6055),
        ("DASHBOARD_PORT", "6080", "dashboard_port", 6080),
        ("SIMULATOR_GRAPH_PORT", "6081", "simulator_graph_port", 6081),
        ("BOT_BIND_HOST", "0.0.0.0", "bind_host", "0.0.0.0"),
        ("RASA_AUTH_TOKEN", "t1", "rasa_auth_token", "t1"),
        ("ACTION_SERVER_TOKEN", "t2", "action_server_token", "t2"),
        ("OPT_OUT_LINK_SECRET", "s1", "opt_out_link_secret", "s1"),
        ("SUPPRESSION_SECRET", "s2", "suppression_secret", "s2"),
        ("BOT_PUBLIC_URL", "https://bot.example.com", "public_url", "https://bot.example.com"),
        ("OPT_OUT_LINK_TTL_DAYS", "366", "opt_out_link_ttl_days", 366),
        ("OPT_OUT_MODE", " Immediate ", "opt_out_mode", "immediate"),
        ("DASHBOARD_TRUST_PROXY", "yes", "dashboard_trust_proxy", True),
        ("DASHBOARD_SECURE_COOKIE", "TRUE", "dashboard_secure_cookie", True),
        ("DASHBOARD_SECURE_COOKIE", "0", "dashboard_secure_cookie", False),
        ("MODELS_DIR", "/shared/models", "models_dir", "/shared/models"),
        ("PLAYBOOKS_FILE", "/etc/bot/playbooks.yml", "playbooks_file", "/etc/bot/playbooks.yml"),
        ("WHATSAPP_VERIFY_TOKEN", "v", "whatsapp_verify_token", "v"),
        ("WHATSAPP_APP_SECRET", "a", "whatsapp_app_secret", "a"),
        ("WHATSAPP_ACCESS_TOKEN", "x", "whatsapp_access_token", "x"),
        ("WHATSAPP_PHONE_NUMBER_ID", "1065", "whatsapp_phone_number_id", "1065"),
        (
            "WHATSAPP_API_URL",
            "http://127.0.0.1:5081/v21.0",
            "whatsapp_api_url",
            "http://127.0.0.1:5081/v21.0",
        ),
        ("WHATSAPP_ALLOW_UNSIGNED", "1", "whatsapp_allow_unsigned", True),
        ("WHATSAPP_ALLOW_UNSIGNED", "no", "whatsapp_allow_unsigned", False),
    ],
)
def test_each_variable_sets_its_field_and_nothing_else(variable, value, field, expected):
    settings = from_env({variable: value})
    assert getattr(settings, field) == expected
    assert dataclasses.replace(settings, **{field: getattr(Settings(), field)}) == Settings()


@pytest.mark.parametrize("variable", ["RASA_PORT", "OPT_OUT_MODE", "WHATSAPP_ALLOW_UNSIGNED", "DATABASE_URL"])
def test_an_empty_value_is_the_default(variable):
    assert from_env({variable: ""}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RASA_PORT", "http"),
        ("ACTIONS_PORT", "0"),
        ("DASHBOARD_PORT", "70000"),
        ("SIMULATOR_GRAPH_PORT", "-1"),
        ("SANIC_WORKERS", "two"),
        ("SANIC_WORKERS", "0"),
        ("SANIC_REQUEST_MAX_SIZE", "4MB"),
        ("OPT_OUT_LINK_TTL_DAYS", "0"),
        ("OPT_OUT_LINK_TTL_DAYS", "367"),
        ("OPT_OUT_LINK_TTL_DAYS", "30d"),
        ("OPT_OUT_MODE", "ask"),
        ("DASHBOARD_TRUST_PROXY", "maybe"),
        ("WHATSAPP_ALLOW_UNSIGNED", "on"),
    ],
)
def test_a_bad_value_is_refused_with_the_variables_name(variable, value):
    with pytest.raises(SettingsError, match=variable):
        from_env({variable: value})


@pytest.mark.parametrize("environ", [{}, {"DATABASE_URL": ""}, {"DATABASE_URL": "postgresql://bot@db/bot"}])
def test_the_database_url_alone_reads_as_the_settings_do(environ):
    # bot.db reads DATABASE_URL alone on every transaction: it must agree with from_env().
    assert database_url(environ) == from_env(environ).database_url


@pytest.mark.parametrize(
    ("variable", "value", "bounds"),
    [
        ("RASA_PORT", "70000", "1 to 65535"),
        ("OPT_OUT_LINK_TTL_DAYS", "0", "1 to 366"),
        ("SANIC_WORKERS", "0", "at least 1"),
    ],
)
def test_a_number_out_of_range_is_refused_with_its_bounds(variable, value, bounds):
    with pytest.raises(SettingsError, match=f"{variable} must be .*, {bounds}; not '{value}'"):
        from_env({variable: value})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().rasa_port = 1  # type: ignore[misc]


def test_a_child_process_gets_this_environment_with_the_overrides(monkeypatch):
    monkeypatch.setenv("RASA_PORT", "6005")
    env = child_environment({"ACTIONS_PORT": "6055"})
    assert from_env(env).rasa_port == 6005 and from_env(env).actions_port == 6055


# Environment writes that stay where they are: helpers that set defaults for Sanic, which reads
# only the environment. (`os.environ[NAME] = value` needs no entry: an assignment is no read.)
WRITERS = {"limit_sanic_requests", "skip_the_access_log"}


def _environment_reads(tree: ast.Module) -> list[int]:
    """Lines that read os.environ or call os.getenv."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            allowed.add(id(node.value))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in WRITERS:
            allowed.update(id(arg) for arg in node.args)
    reads = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and id(node) not in allowed
        ):
            reads.append(node.lineno)
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ("environ", "getenv") for alias in node.names)
        ):
            reads.append(node.lineno)
    return sorted(reads)


def test_no_module_but_the_settings_reads_the_environment():
    found = []
    for directory in ("bot", "actions"):
        for path in sorted((ROOT / directory).rglob("*.py")):
            if path == ROOT / "bot" / "settings.py":
                continue
            lines = _environment_reads(ast.parse(path.read_text(encoding="utf-8")))
            found += [f"{path.relative_to(ROOT)}:{line}" for line in lines]
    assert not found, f"read the environment through bot.settings.from_env() instead: {found}"


def test_the_check_sees_reads_and_lets_writes_pass():
    source = """
import os
a = os.environ.get("A")
b = os.getenv("B")
c = {**os.environ}
os.environ["D"] = "1"
limit_sanic_requests(os.environ)
"""
    assert _environment_reads(ast.parse(source)) == [3, 4, 5]


def test_the_rasa_server_builds_no_access_log_records_unless_an_operator_asks():
    from sanic.config import Config

    from bot.rasa_server import skip_the_access_log

    quiet: dict[str, str] = {}
    skip_the_access_log(quiet)
    asked = {"SANIC_ACCESS_LOG": "true"}
    skip_the_access_log(asked)
    assert asked == {"SANIC_ACCESS_LOG": "true"}
    # What Sanic makes of it when Rasa builds its app: it reads SANIC_* from the environment.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SANIC_ACCESS_LOG", quiet["SANIC_ACCESS_LOG"])
        assert Config().ACCESS_LOG is False
