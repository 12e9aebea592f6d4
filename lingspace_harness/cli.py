"""``lingspace-harness``: parse arguments, load plugins, turn user errors into one line."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn, TypeVar

from .capabilities import TakesPluginOptions
from .commands import RunCommand, core_commands
from .errors import PluginError, UserError, error_reason, out_of_memory
from .options import add_plugin_arguments
from .plugins import Harness, load_harness
from .protocols import Command

DESCRIPTION = (
    "Linguistic task spaces from a language model's learning signals: score minimal-pair tasks, "
    "build N x N spaces, test them against hypotheses, report and compare them."
)

#: Storage problems (disk full, quota, read-only, permissions) are one line, not a traceback.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}
#: ``--quiet`` sets it for the command's duration; ``progress.py`` honours it.
QUIET_ENV = "LINGSPACE_QUIET"
#: A parser (``_add_common`` returns the one it is given).
P = TypeVar("P", bound=argparse.ArgumentParser)


#: argparse's own wording for a plain ``type=int``/``type=float`` option, and ours.
_PLAIN_TYPES = {"int": "a whole number", "float": "a number"}


def english(message: str) -> str:
    """argparse's ``invalid int value: 'x'`` (any plugin's ``type=int`` option) as English."""
    return re.sub(
        r"invalid (int|float) value: (.*)$", lambda m: f"expected {_PLAIN_TYPES[m.group(1)]}, got {m.group(2)}", message
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every user error
        raise UserError(f"{self.prog}: {english(message)}")


def _add_common(parser: P, default: object = False) -> P:
    """``--strict``, ``-v`` and ``-q``, accepted before or after the sub-command."""
    parser.add_argument("--strict", action="store_true", default=default, help="fail if any plugin fails to load")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log progress details; on an error, also show its underlying cause",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bars or progress lines (also: LINGSPACE_QUIET=1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = logging.getLogger("lingspace_harness")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    log.addHandler(handler)
    verbose = bool({"-v", "--verbose"} & set(argv))
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
    quiet_before = os.environ.get(QUIET_ENV)
    try:
        harness = load_harness(strict="--strict" in argv)
        parser, args, commands = _parse(harness, argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.quiet:
            os.environ[QUIET_ENV] = "1"
        return commands[args.command].run(args, harness)
    except UserError as exc:
        if verbose and exc.__cause__ is not None:  # what went wrong underneath, e.g. in transformers
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `lingspace-harness plugins | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as exc:
        if exc.errno not in STORAGE_ERRORS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"error: cannot write{where}: {exc.strerror or exc}; finished units are kept, so rerun the "
            f"same command once there is room (or choose another --output)",
            file=sys.stderr,
        )
        return 1
    except (RuntimeError, MemoryError) as exc:
        if not out_of_memory(exc):
            raise
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(
            f"error: out of memory ({error_reason(exc)}); lower --batch-size (sentences per "
            f"forward pass, default 128) or use a smaller --dtype; finished units are kept, so rerun the same "
            f"command",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; files already written are complete, nothing partial was kept", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
        log.propagate = True
        if quiet_before is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = quiet_before


def _parse(harness: Harness, argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace, dict[str, Command]]:
    """``argv`` parsed; for ``run --config FILE``, the file's values are the defaults argv overrides."""
    parser, commands, parsers = _parser(harness)
    args = parser.parse_args(argv)
    command = commands.get(args.command) if args.command else None
    if isinstance(command, RunCommand) and args.config is not None:
        parsers[args.command].set_defaults(**command.defaults(args.config))
        args = parser.parse_args(argv)
    return parser, args, commands


def _parser(
    harness: Harness,
) -> tuple[argparse.ArgumentParser, dict[str, Command], dict[str, argparse.ArgumentParser]]:
    """The CLI's parser: the core's commands and the plugins' (which may not replace a core one)."""
    parser: argparse.ArgumentParser = _Parser(prog="lingspace-harness", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=_version())
    _add_common(parser)
    common = _add_common(_Parser(add_help=False), default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands: dict[str, Command] = {c.name: c for c in core_commands(harness)}
    for command in harness.commands:
        if command.name in commands:
            raise PluginError(
                f"plugin {harness.commands.owner(command.name)!r} registers the "
                f"command {command.name!r}, which is a core command"
            )
        commands[command.name] = command
    parsers: dict[str, argparse.ArgumentParser] = {}
    for command in commands.values():
        parsers[command.name] = sub.add_parser(
            command.name, help=command.help, description=command.help, parents=[common]
        )
        command.add_arguments(parsers[command.name])
        if isinstance(command, TakesPluginOptions):  # e.g. analyse: the space builders' options
            add_plugin_arguments(parsers[command.name], harness.registries_by_kind(), command.plugin_options)
    return parser, commands, parsers


def _version() -> str:
    try:
        return version("lingspace-harness")
    except PackageNotFoundError:  # a source tree without an install
        return "0+unknown"


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        return f"{line}\n{self.formatException(record.exc_info).rstrip()}" if record.exc_info else line


if __name__ == "__main__":
    sys.exit(main())
