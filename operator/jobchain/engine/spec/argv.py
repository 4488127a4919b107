"""Which words of a node's `command` + `args` a shell or an interpreter reads as code.

Why: a reference in a word that is code would let its value run. The operand of `-c` of a
known shell is rewritten like a `script` (env var expansions, the quoting read by
engine/spec/shell.py); a reference in any other word that an interpreter (python -c, perl -e,
node -e, awk's program, ...) or a shell reads as code or as an option is refused, unless it
is written raw on purpose (`$(raw:params.x)`). Words after the code (`sh -c CODE sh "$(params.x)"`,
`python -c CODE "$(params.x)"`) are data: the program gets them as arguments. The program is the
first word (a path counts by its last part), after `env` (its options and NAME=value words) or
`busybox`. Without `command` the image's entrypoint is unknown: a `-c` first in `args` is then
taken as a shell's, whose operand cannot be rewritten safely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from jobchain.api.models import Node
from jobchain.engine.spec import refs, shell


class Role(StrEnum):
    DATA = "data"  # an argument the program gets as it is
    SHELL = "shell code"  # the operand of `sh -c`: rewritten like a script
    CODE = "code"  # read as code or as an option by an interpreter or a shell
    UNKNOWN_SHELL = "code for the image's entrypoint"  # args: [-c, X] without command


SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "yash", "posh"})
# interpreter -> options whose next word is code (joined forms like -cCODE are options, hence code too)
_CODE_OPTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"-c", "-m"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
    "node": frozenset({"-e", "--eval", "-p", "--print"}),
    "deno": frozenset({"eval"}),
    "bun": frozenset({"-e", "--eval", "-p", "--print"}),
    "php": frozenset({"-r", "-B", "-R", "-E"}),
    "lua": frozenset({"-e"}),
    "rscript": frozenset({"-e"}),
    "pwsh": frozenset({"-c", "-command", "-encodedcommand", "-ec"}),
    "osascript": frozenset({"-e"}),
    "tclsh": frozenset(),
}
# interpreter -> options whose next word is a value (kept as code: `node -r MODULE` loads code)
_VALUE_OPTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"-W", "-X"}), "node": frozenset({"-r", "--require", "--import", "--loader"}),
    "bun": frozenset({"-r", "--preload"}), "ruby": frozenset({"-I", "-r"}), "perl": frozenset({"-I", "-M"}),
    "php": frozenset({"-c", "-d", "-z"}), "lua": frozenset({"-l"}),
}
_ALIASES = {"python2": "python", "python3": "python", "pypy": "python", "pypy3": "python", "nodejs": "node",
            "luajit": "lua", "powershell": "pwsh", "perl5": "perl"}
# programs whose first operand is their program text, and options taking a value before it
_PROGRAM_FIRST: dict[str, frozenset[str]] = {
    "awk": frozenset({"-F", "-v", "-f"}), "gawk": frozenset({"-F", "-v", "-f"}),
    "mawk": frozenset({"-F", "-v", "-f"}), "nawk": frozenset({"-F", "-v", "-f"}),
    "busybox awk": frozenset({"-F", "-v", "-f"}),
    "sed": frozenset({"-e", "-f"}), "jq": frozenset({"-f", "--from-file", "--arg", "--argjson",
                                                     "--slurpfile", "--rawfile", "--args", "--jsonargs"}),
}
_TWO_VALUES = frozenset({"--arg", "--argjson", "--slurpfile", "--rawfile"})


def _name(word: str) -> str:
    base = word.rsplit("/", 1)[-1].lower()
    base = re.sub(r"^(python\d?)(\.\d+)+$", r"\1", base)
    return _ALIASES.get(base, base)


def _program(argv: list[str]) -> int:
    """Index of the program's word in argv (after env's options and assignments, or busybox)."""
    i = 0
    if i < len(argv) and _name(argv[i]) == "env":
        i += 1
        while i < len(argv) and (argv[i].startswith("-") or "=" in argv[i]):
            i += 2 if argv[i] in ("-u", "-C", "--unset", "--chdir") else 1
    if i < len(argv) - 1 and _name(argv[i]) == "busybox":
        i += 1
    return i


def _shell(argv: list[str], start: int) -> list[Role]:
    roles = [Role.CODE] * len(argv)  # the shell's options (and the program word itself)
    has_c = False
    i = start + 1
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if word in ("--rcfile", "--init-file"):
            i += 2
            continue
        if not word.startswith(("-", "+")) or word in ("-", "+"):
            break
        if not word.startswith("--"):
            letters = word[1:]
            has_c = has_c or "c" in letters
            if "o" in letters or "O" in letters:
                i += 1  # `-o pipefail`: the option's name
        i += 1
    if i < len(argv):
        roles[i] = Role.SHELL if has_c else Role.DATA
        for j in range(i + 1, len(argv)):
            roles[j] = Role.DATA
    return roles


def _interpreter(argv: list[str], start: int, name: str) -> list[Role]:
    roles = [Role.CODE] * len(argv)
    code_options = _CODE_OPTIONS[name]
    i = start + 1
    while i < len(argv):
        word = argv[i]
        if word == "--" or word in code_options:
            i += 2 if word != "--" else 1  # the code, then data
            break
        if not word.startswith("-") or word == "-":
            break  # a script file: data, as all that follows
        i += 2 if word in _VALUE_OPTIONS.get(name, ()) else 1
    for j in range(i, len(argv)):
        roles[j] = Role.DATA
    return roles


def _program_first(argv: list[str], start: int, name: str) -> list[Role]:
    roles = [Role.CODE] * len(argv)
    with_value = _PROGRAM_FIRST[name]
    from_file = False
    i = start + 1
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if word in _TWO_VALUES:
            roles[i + 2:i + 3] = [Role.DATA] * len(roles[i + 2:i + 3])  # jq --arg NAME VALUE: VALUE is data
            i += 3
            continue
        if word in with_value:
            from_file = from_file or word in ("-f", "--from-file") or (name == "sed" and word == "-e")
            i += 2
            continue
        if not word.startswith("-") or word == "-":
            break
        from_file = from_file or word.startswith("-f")
        i += 1
    if from_file:  # the program is a file (or given with sed -e): every operand is data
        for j in range(i, len(argv)):
            roles[j] = Role.DATA
    else:
        for j in range(i + 1, len(argv)):
            roles[j] = Role.DATA
    return roles


def roles(command: list[str], args: list[str]) -> list[Role]:
    """The role of each word of command + args, in that order."""
    argv = [*command, *args]
    if not command:  # the image's entrypoint: unknown
        out = [Role.DATA] * len(argv)
        if argv and re.fullmatch(r"-[a-zA-Z]*c[a-zA-Z]*", argv[0]):
            out[0] = Role.CODE
            if len(argv) > 1:
                out[1] = Role.UNKNOWN_SHELL
        return out
    start = _program(argv)
    if start >= len(argv):
        return [Role.DATA] * len(argv)
    name = _name(argv[start])
    if start > 0 and _name(argv[start - 1]) == "busybox" and name == "awk":
        name = "busybox awk"
    before = [Role.CODE] * start  # env's options pick what runs
    if name in SHELLS:
        return before + _shell(argv, start)[start:]
    if name in _CODE_OPTIONS:
        return before + _interpreter(argv, start, name)[start:]
    if name in _PROGRAM_FIRST:
        return before + _program_first(argv, start, name)[start:]
    return [Role.DATA] * len(argv)


def word_roles(node: Node) -> dict[str, Role]:
    """The role of each `command[i]` / `args[j]` of a node, by field path relative to the node."""
    command, args = list(node.command or []), list(node.args or [])
    found = roles(command, args)
    paths = [f"command[{i}]" for i in range(len(command))] + [f"args[{j}]" for j in range(len(args))]
    return dict(zip(paths, found, strict=True))


def shell_problem(text: str) -> str | None:
    """Why the references of a shell text (a script, the operand of sh -c) cannot be passed safely, if so."""
    located = [(start, end, refs.parse(raw)) for start, end, raw in refs.locate(text)]
    spans = [(start, end) for start, end, ref in located if ref is None or not ref.raw]
    if not spans:
        return None
    try:
        quoting = shell.contexts(text, spans)
    except shell.Refused as exc:
        return str(exc)
    for (start, end), where in zip(spans, quoting, strict=True):
        if where == shell.Quoting.QUOTED_HEREDOC:
            return (f"{text[start:end]} is inside a quoted here-document (<<'EOF'), where the shell expands "
                    "nothing; use an unquoted delimiter (<<EOF) so the value can be expanded")
    return None


def code_problems(node: Node) -> Iterable[tuple[str, str]]:
    """(field path relative to the node, message) of each reference whose value would run as code."""
    if node.script is not None:
        problem = shell_problem(node.script)
        if problem:
            yield "script", problem
    for rel, role in word_roles(node).items():
        text = _word(node, rel)
        found = [ref for _, ref in refs.find(text) if ref is not None]
        if role == Role.SHELL:
            problem = shell_problem(text)
            if problem:
                yield rel, problem
            continue
        plain = [ref for ref in found if not ref.raw]
        if not plain or role == Role.DATA:
            continue
        ref = f"$({plain[0].text})"
        if role == Role.UNKNOWN_SHELL:
            yield rel, (f"{ref} is in the operand of -c of the image's entrypoint, which may be a shell that would "
                        "run the value as code; set command (e.g. [sh, -c]) so jobchain passes the value as an "
                        f"environment variable, or write $({refs.RAW}{plain[0].text}) to paste it as code on purpose")
        else:
            yield rel, (f"{ref} is in a word that the program reads as code or as an option, so the value would "
                        "run; pass it as data instead (an argument after the code: sys.argv, ARGV, process.argv, "
                        "\"$1\" of sh -c; or an env var), or write "
                        f"$({refs.RAW}{plain[0].text}) to paste it as code on purpose")


def _word(node: Node, rel: str) -> str:
    field, _, index = rel.partition("[")
    words = node.command if field == "command" else node.args
    return (words or [])[int(index.rstrip("]"))]
