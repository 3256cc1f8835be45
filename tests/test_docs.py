"""The docs cannot drift from the code: every command, variable, link and path they show is checked.

README.md and docs/*.md are read as text. Commands come from fenced code blocks and from inline
code that starts like a command (`make ...`, `python -m ...`, `rasa ...`); each `make` target must
exist in the Makefile, and each `python -m bot ...`, `python -m bench.X`, `python -m bot.dashboard`,
`python -m bot.action_server`, `python -m bot.rasa_server` and `rasa ...` command must name real
subcommands and only flags that its `--help` shows. The parsers are built in-process (the modules'
own `main`, stopped at `parse_args`), which gives the same help text as `--help` in a subprocess
without starting eleven interpreters. No trained model and no server is needed.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCE_DIRS = ("bot", "actions", "nlu_components", "rasa_sdk_plugins", "bench", "tests")

# Paths the docs name that the code creates at run time (git ignores them).
GENERATED = ("results/", "var/", "models/", "/tmp/", ".venv/")

# Named in the docs, read by Rasa rather than by our code: variable -> where Rasa names it.
READ_BY_RASA = {
    "LOG_LEVEL": ("rasa.shared.constants", "ENV_LOG_LEVEL"),
    "LOG_LEVEL_LIBRARIES": ("rasa.constants", "ENV_LOG_LEVEL_LIBRARIES"),
}

# Upper-case names in the docs that are not environment variables; each must exist in the code or
# data (checked), so that this list cannot hide a variable that was renamed.
NOT_ENVIRONMENT = {
    "OPT_OUT",  # the tag
    "STOP_PROMOTIONS",  # the template quick reply's payload
    "MAX_UNCLEAR_ANSWERS",  # actions/opt_out.py
    "NO_DOUBT",  # actions/opt_out.py
    "NO_MAJORITY",  # actions/opt_out.py
    "QUICK_REPLY",  # a template button type (templates/promo_offer.json)
}

# Shell variables of the examples, set by the reader, never read by the bot.
SHELL_PLACEHOLDERS = {"WABA_ID"}

# Programs the docs show that are not ours: nothing of theirs to check.
EXTERNAL_PROGRAMS = {"curl", "npm"}

COMMAND_START = re.compile(
    r"^(?:[A-Z_]+=\S+ )*(?:nice -n \d+ )?(?:make|(?:\.venv/bin/)?(?:python|rasa|pytest)) "
)
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


@dataclass(frozen=True)
class Page:
    path: Path
    text: str
    fences: list[tuple[str, str]]  # (language, body)
    spans: list[str]  # inline code outside the fences

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))


@cache
def pages() -> tuple[Page, ...]:
    result = []
    for path in PAGES:
        text = path.read_text()
        fences = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)
        prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
        # Inline code may wrap onto the next line, never across a paragraph.
        spans = [" ".join(s.split()) for s in re.findall(r"`((?:[^`\n]|\n(?!\n))+)`", prose)]
        result.append(Page(path, text, fences, spans))
    return tuple(result)


# --- commands -------------------------------------------------------------------------------


def command_lines() -> Iterator[tuple[str, str]]:
    """(page, command line) for every shell line of a fenced block and every command-like span."""
    for page in pages():
        for language, body in page.fences:
            if language not in ("", "sh", "bash", "console"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    yield page.name, line
        for span in page.spans:
            if COMMAND_START.match(span):
                # Prose names a family of actions as `customers import|show`: each must exist.
                family = re.search(r"(?<![\w-])([\w-]+(?:\|[\w-]+)+)", span)
                if family is None:
                    yield page.name, span
                    continue
                for member in family.group(1).split("|"):
                    yield page.name, span[: family.start()] + member + span[family.end() :]


def simple_commands(line: str) -> Iterator[list[str]]:
    """The commands of a shell line, split at pipes, `&&`, `;` and redirections (their targets dropped)."""
    line = re.sub(r"<[^<>\s][^<>]*>", "PLACEHOLDER", line)  # <model>, <bot role>: not redirections
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    current: list[str] = []
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
            continue
        if token in (">", ">>", "<", "2>"):
            skip_next = True
            continue
        if token in ("|", "||", "&&", ";", "&"):
            if current:
                yield current
            current = []
            continue
        current.append(token.strip("[]"))
    if current:
        yield current


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _capture(parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
    raise _Captured(parser)


@cache
def module_parser(module_name: str) -> argparse.ArgumentParser:
    """The parser `python -m MODULE` builds: its `main` runs until it would parse the arguments."""
    if module_name == "bot":
        from bot.cli import build_parser

        return build_parser()
    if module_name == "bot.rasa_server":  # `rasa run --enable-api ARGS`
        return subcommand(rasa_parser(), "run")
    module = importlib.import_module(
        f"{module_name}.__main__" if module_name == "bot.dashboard" else module_name
    )
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", _capture),
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", _capture),
    ):
        try:
            module.main()
        except _Captured as captured:
            return captured.parser
    raise AssertionError(f"{module_name}.main() never parsed its arguments")


@cache
def rasa_parser() -> argparse.ArgumentParser:
    from rasa.__main__ import create_argument_parser

    return create_argument_parser()


def subparsers_of(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = subparsers_of(parser)
    assert action is not None and name in action.choices, name
    return action.choices[name]


def argument_problems(parser: argparse.ArgumentParser, program: str, args: list[str]) -> list[str]:
    """Subcommands must exist (when required) and every flag must be in the help of where it is."""
    problems = []
    current, path = parser, [program]
    for token in args:
        if token.startswith("-") and token != "-":
            flag = token.split("=", 1)[0]
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", current.format_help()):
                problems.append(f"{' '.join(path)}: {flag} is not in its --help")
            continue
        action = subparsers_of(current)
        if action is not None and token in action.choices:
            current = action.choices[token]
            path.append(token)
    action = subparsers_of(current)
    # `python -m bot` or `python -m bot ...` in prose names the program, not a command to run.
    named_only = not args or args[-1] in ("...", "…", "--help")
    if action is not None and action.required and not named_only:
        problems.append(f"{' '.join(path)}: needs one of {', '.join(action.choices)}")
    return problems


@cache
def make_targets() -> frozenset[str]:
    makefile = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([A-Za-z][\w-]*):(?!=)", makefile, flags=re.M))


def command_problems(words: list[str]) -> list[str]:
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]
    if words[:1] == ["nice"]:
        words = words[3:]
    if not words:
        return []
    program = words[0].removeprefix(".venv/bin/")
    if program == "make":
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return [f"make {t}: no such target in the Makefile" for t in targets if t not in make_targets()]
    if program in ("python", "python3"):
        if words[1:2] != ["-m"]:
            return [f"{' '.join(words)}: only `python -m MODULE` commands are shown"]
        module = words[2]
        where = ROOT / module.replace(".", "/")
        if not (where.with_suffix(".py").exists() or (where / "__main__.py").exists()):
            return [f"python -m {module}: no such module"]
        return argument_problems(module_parser(module), f"python -m {module}", words[3:])
    if program == "rasa":
        return argument_problems(rasa_parser(), "rasa", words[1:])
    if program == "pytest":
        return [f"{w}: no such file" for w in words[1:] if w.endswith(".py") and not (ROOT / w).exists()]
    if program in EXTERNAL_PROGRAMS:
        return []
    return [f"{' '.join(words)}: a command this check does not know (teach it, or show another command)"]


def test_every_command_in_the_docs_exists_with_its_flags() -> None:
    problems, checked = [], 0
    for page, line in command_lines():
        for words in simple_commands(line):
            checked += 1
            problems += [f"{page}: {p}   [{line.strip()}]" for p in command_problems(words)]
    assert checked > 40, "the docs show commands: the extraction is broken"
    assert not problems, "\n".join(problems)


def all_help() -> Iterator[str]:
    """The help of every parser a shown command can reach: ours, the benchmarks' and Rasa's."""
    modules = ["bot", "bot.dashboard", "bot.action_server"]
    modules += [f"bench.{p.stem}" for p in (ROOT / "bench").glob("*.py") if "def main(" in p.read_text()]
    stack = [module_parser(m) for m in modules] + [rasa_parser()]
    while stack:
        parser = stack.pop()
        yield parser.format_help()
        action = subparsers_of(parser)
        if action is not None:
            stack.extend(action.choices.values())


def test_every_flag_named_in_prose_exists() -> None:
    """`--lease`, `--workers N` on their own in a sentence: some command of ours or Rasa's takes it."""
    helps = "\n".join(all_help())
    problems = []
    for page in pages():
        for span in page.spans:
            flag = re.fullmatch(r"(--[a-z][\w-]*|-[a-zA-Z]{1,2})(?:[ =]\S+)?", span)  # not `-wal` (SQLite)
            if flag and not re.search(rf"(?<![\w-]){re.escape(flag.group(1))}(?![\w-])", helps):
                problems.append(f"{page.name}: {span}: no command takes {flag.group(1)}")
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_wrong_flag_subcommand_and_target() -> None:
    assert command_problems(shlex.split("python -m bot customers show 1650 --no-such-flag"))
    assert command_problems(shlex.split("python -m bot customers no-such-action"))
    assert command_problems(shlex.split("python -m bot customers"))
    assert command_problems(shlex.split("make no-such-target"))
    assert command_problems(shlex.split("python -m bench.load --no-such-flag"))
    assert command_problems(shlex.split("rasa train --no-such-flag"))
    assert not command_problems(shlex.split("SEND_RATE=80 make bench-status"))
    assert not command_problems(shlex.split("python -m bot broadcast report 20250301-101500-ab12"))


# --- environment variables -------------------------------------------------------------------


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "VALUE" string constants."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _is_environment(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return "environ" in node.id or node.id == "env"
    if isinstance(node, ast.Attribute):
        return "environ" in node.attr or _is_environment(node.value)
    return False


def _names_read(tree: ast.Module, constants: dict[str, str]) -> Iterator[str]:
    def value(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    for node in ast.walk(tree):
        candidates: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            environment_get = (
                isinstance(func, ast.Attribute)
                and func.attr in ("get", "setdefault")  # setdefault: a default an operator's value beats
                and _is_environment(func.value)
            )
            getenv = (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) == "getenv"
            if environment_get or getenv:
                candidates = node.args[:1]
            elif any(_is_environment(arg) for arg in node.args):
                # A helper handed the environment and the variable's name (bot/processes.py).
                candidates = node.args
        elif (
            isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environment(node.value)
        ):
            candidates = [node.slice]
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if any(_is_environment(c) for c in node.comparators):
                candidates = [node.left]
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ENVIRONMENT" for t in node.targets
        ):
            # bot/whatsapp/config.py: setting name -> environment variable
            candidates = list(node.value.values) if isinstance(node.value, ast.Dict) else []
        for candidate in candidates:
            name = value(candidate)
            if name and ENV_NAME.fullmatch(name):
                yield name


@cache
def variables_read() -> frozenset[str]:
    """What our code reads from the environment: Python, the Makefile and Rasa's YAML files."""
    found: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            text = path.read_text()
            if "environ" not in text and "getenv" not in text:
                continue
            tree = ast.parse(text)
            found.update(_names_read(tree, _constants(tree)))
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^(?:export\s+)?([A-Z_]+)\s*:?=", makefile, flags=re.M))
    overridable = set(re.findall(r"^(?:export\s+)?([A-Z_]+)\s*\?=", makefile, flags=re.M))
    used = set(re.findall(r"\$\(([A-Z_]+)\)", makefile))
    found |= overridable | (used - defined)
    for name in ("endpoints.yml", "credentials.yml"):
        yaml = re.sub(r"#.*", "", (ROOT / name).read_text())  # comments say `${VAR}` in general
        found.update(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", yaml))
    return frozenset(found)


def variables_named() -> dict[str, str]:
    """Upper-case names the docs show in code: `NAME`, `NAME=value`, `$NAME`, `${NAME}` -> a page."""
    named: dict[str, str] = {}
    for page in pages():
        code = page.spans + [body for _, body in page.fences if _ != "sql"]
        for snippet in code:
            for match in re.finditer(r"(?<![\w$/.{])\$?\{?(" + ENV_NAME.pattern + r")\}?(?![\w(*])", snippet):
                named.setdefault(match.group(1), page.name)
    return named


@cache
def source_text() -> str:
    files = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")]
    files += [*(ROOT / "templates").glob("*.json"), ROOT / "domain.yml", ROOT / "quick_replies.yml"]
    return "\n".join(p.read_text() for p in files)


def test_every_variable_the_docs_name_is_read_by_the_code() -> None:
    problems = []
    for name, page in sorted(variables_named().items()):
        if name in variables_read() or name in SHELL_PLACEHOLDERS or name in NOT_ENVIRONMENT:
            continue
        if name in READ_BY_RASA:
            module, constant = READ_BY_RASA[name]
            if getattr(importlib.import_module(module), constant, None) == name:
                continue
        problems.append(f"{page}: {name} is not read from the environment by any code")
    assert not problems, "\n".join(problems)


def test_the_names_that_are_not_variables_exist() -> None:
    missing = [name for name in NOT_ENVIRONMENT if not re.search(rf"\b{name}\b", source_text())]
    assert not missing, f"no longer in the code: remove them from NOT_ENVIRONMENT: {missing}"


def test_every_variable_the_code_reads_is_documented() -> None:
    named = variables_named()
    undocumented = sorted(variables_read() - set(named))
    assert not undocumented, f"read by the code, named nowhere in README.md or docs/: {undocumented}"


def test_the_environment_scan_finds_variables_read_every_way() -> None:
    read = variables_read()
    # .get, a helper handed os.environ plus a constant, the ENVIRONMENT map, `in`, Makefile, YAML
    for name in ("DATABASE_URL", "ACTION_SERVER_TOKEN", "WHATSAPP_VERIFY_TOKEN", "SANIC_REQUEST_MAX_SIZE"):
        assert name in read, name
    for name in ("SEND_RATE", "RASA_PORT"):
        assert name in read, name


# --- links and paths -------------------------------------------------------------------------


def slugs(text: str) -> set[str]:
    """GitHub's heading anchors (duplicates numbered) plus explicit <a id="...">."""
    found: dict[str, int] = {}
    result = set(re.findall(r'<a id="([^"]+)"', text))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M):
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")
        count = found.get(slug, 0)
        found[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = []
    for page in pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.path.parent / file_part).resolve() if file_part else page.path
            if not path.exists():
                problems.append(f"{page.name}: {target}: no such file")
            elif anchor and anchor not in slugs(path.read_text()):
                problems.append(f"{page.name}: {target}: no such anchor")
    assert not problems, "\n".join(problems)


def path_exists(token: str) -> bool:
    token = re.sub(r"<[^>]+>", "*", token)
    alternatives = re.match(r"(.*)\{([^}]+)\}(.*)", token)
    if alternatives:
        head, options, tail = alternatives.groups()
        return all(path_exists(head + option + tail) for option in options.split(","))
    return any(ROOT.glob(token)) if "*" in token else (ROOT / token).exists()


def test_every_repository_path_the_docs_mention_exists() -> None:
    top = {p.name for p in ROOT.iterdir()}
    problems = []
    for page in pages():
        code = page.spans + [body for language, body in page.fences if language != "sql"]
        for snippet in code:
            for token in snippet.split():
                token = token.strip("\"'").rstrip(".,;:)").split("::")[0]
                if "/" not in token or token.startswith(GENERATED) or re.match(r"[a-z]+:|/|\$", token):
                    continue
                if token.split("/")[0] not in top or "..." in token:
                    continue
                if not path_exists(token):
                    problems.append(f"{page.name}: {token}: no such path")
    assert not problems, "\n".join(problems)


def test_every_dotted_name_the_docs_mention_exists() -> None:
    problems = []
    for page in pages():
        for span in page.spans:
            # Module paths, not file names (`bot.sqlite3`) or host names (`bot.example.com`).
            for name in re.findall(
                r"(?<![\w/.-])((?:bot|actions|bench|nlu_components)(?:\.[a-z_]\w*)+)(?![\w.-])", span
            ):
                if re.search(r"\.(com|org|net|sqlite3)$", name):
                    continue
                parts = name.split(".")
                for split in range(len(parts), 0, -1):
                    base = ROOT.joinpath(*parts[:split])
                    module = (
                        base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
                    )
                    if module.exists():
                        rest = parts[split:]
                        text = module.read_text()
                        if rest and not re.search(rf"^\s*(?:async def|def|class)?\s*{rest[0]}\b", text, re.M):
                            problems.append(f"{page.name}: {name}: {rest[0]} is not defined in {module.name}")
                        break
                else:
                    problems.append(f"{page.name}: {name}: no such module")
    assert not problems, "\n".join(problems)


# --- maps --------------------------------------------------------------------------------------


def test_the_module_map_names_every_module() -> None:
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    modules = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py") if not p.name.startswith("test_")]
    modules += list((ROOT / "templates").glob("*"))
    missing = sorted(
        str(p.relative_to(ROOT)) for p in modules if f"`{p.relative_to(ROOT)}`" not in architecture
    )
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_the_testing_page_names_every_test_file() -> None:
    testing = (ROOT / "docs" / "testing.md").read_text()
    missing = sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if f"`tests/{p.name}`" not in testing)
    assert not missing, f"docs/testing.md does not name: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_have_one_title(page: Path) -> None:
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    assert len(re.findall(r"^# ", prose, flags=re.M)) == 1


def test_the_readme_stays_short() -> None:
    """Issue 14: the README says what the bot does and how to start; the rest lives in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
