"""The `referee` command. It only wires what the library already does; each command's work lives in
its own package (data, judges, evaluate, serve, align)."""

from __future__ import annotations

import argparse
import sys

from referee import __version__
from referee.errors import UserError


# --- referee data ------------------------------------------------------------------------------

def _add_data(sub):
    data = sub.add_parser("data", help="inspect data files").add_subparsers(dest="data_command", required=True)
    inspect = data.add_parser("inspect", help="detected format and task, rows, labels, languages, lengths, problems")
    inspect.add_argument("path", help="a data file or folder (or 'hf:NAME', or 'default' for the embedded pyrit set)")
    inspect.add_argument("--format", help="override format detection")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(func=_data_inspect)


def _data_inspect(args):
    raise UserError("referee data inspect: not implemented yet")


# --- referee train / predict -------------------------------------------------------------------

def _add_judges(sub):
    pass


# --- referee eval ------------------------------------------------------------------------------

def _add_eval(sub):
    pass


# --- referee serve -----------------------------------------------------------------------------

def _add_serve(sub):
    pass


# --- referee demo ------------------------------------------------------------------------------

def _add_demo(sub):
    pass


# --- referee align -----------------------------------------------------------------------------

def _add_align(sub):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="referee", description="Train, evaluate and serve judges of chatbot answers.")
    parser.add_argument("--version", action="version", version=f"referee {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data, _add_judges, _add_eval, _add_serve, _add_demo, _add_align):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (UserError, FileNotFoundError) as err:
        print(f"referee: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("referee: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
