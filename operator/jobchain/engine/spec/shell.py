"""Where in a shell script a reference sits (unquoted, '...', "...", a here-document), or a refusal.

Why: a reference in a script is replaced by an expansion of an environment variable the
operator sets (`${JOBCHAIN_REF_1}`), so the shell expands a value and never parses it as code.
An expansion works as written in unquoted text, in double quotes and in an unquoted
here-document; inside single quotes it must close and reopen them (`'"${JOBCHAIN_REF_1}"'`),
and inside a quoted here-document (`<<'EOF'`) nothing expands at all. A wrong guess here is
not harmless: taking double quotes for single ones leaves the value unquoted (split into words
and globbed, so `find "$(params.x)"` could get `-exec`). So the scanner models the POSIX
lexing that dash, bash and busybox ash share, and where they differ or where it does not model
a construct (backquotes, `$'...'`, `case` inside `$( )`, `((`, quotes inside `${ }` or `$(( ))`,
here-document delimiters with `$`), it raises `Refused` naming the construct: it never guesses.
tests/unit/test_shell_differential.py checks it against the real shells.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Quoting(StrEnum):
    NONE = "unquoted"
    SINGLE = "single-quoted"
    DOUBLE = "double-quoted"
    HEREDOC = "here-document"
    QUOTED_HEREDOC = "quoted here-document"


class Refused(ValueError):
    """A script the scanner cannot read the way every sh would: the message names the construct."""


_OPERATOR = " \t\n;&|()<>"  # after one of these a word starts (so `#` starts a comment)
_DELIMITER_END = " \t\n;&|<>()"


@dataclass
class _Frame:
    kind: str  # code | single | double | param | arith | body
    depth: int = 0  # open parens of a $( ) (code) or $(( )) (arith); nested ${ (param)
    substitution: bool = False  # code: inside $( )
    heredoc: tuple[str, bool, bool] | None = None  # body: (delimiter, quoted, strip tabs)
    pending: list[tuple[str, bool, bool]] = field(default_factory=list)  # code: bodies after the newline


def _refuse(construct: str, fix: str) -> Refused:
    return Refused(f"the script uses {construct}, which jobchain does not read the same way as every sh "
                   f"(dash, bash, busybox ash) would, so it cannot tell how a reference in it is quoted; {fix}")


def _delimiter(script: str, i: int) -> tuple[str, bool, int]:
    """(delimiter, quoted, end) of the here-document word starting at i (after `<<` or `<<-`)."""
    n = len(script)
    while i < n and script[i] in " \t":
        i += 1
    word: list[str] = []
    quoted = False
    while i < n and script[i] not in _DELIMITER_END:
        ch = script[i]
        if ch == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise _refuse("an unterminated quote in a here-document delimiter", "close the quote")
            word.append(script[i + 1:end])
            quoted, i = True, end + 1
        elif ch == '"':
            end = script.find('"', i + 1)
            inner = script[i + 1:end] if end >= 0 else ""
            if end < 0 or any(c in inner for c in "$`\\\n"):
                raise _refuse(f"the here-document delimiter {script[i:end + 1]!r}", "use a plain word like EOF")
            word.append(inner)
            quoted, i = True, end + 1
        elif ch == "\\":
            if i + 1 >= n or script[i + 1] == "\n":
                raise _refuse("a backslash-newline in a here-document delimiter", "use a plain word like EOF")
            word.append(script[i + 1])
            quoted, i = True, i + 2
        elif ch in "$`":
            raise _refuse(f"{ch!r} in a here-document delimiter", "use a plain word like EOF")
        else:
            word.append(ch)
            i += 1
    if not word:
        raise _refuse("`<<` without a delimiter word", "write <<EOF")
    return "".join(word), quoted, i


def contexts(script: str, spans: Iterable[tuple[int, int]]) -> list[Quoting]:
    """The quoting in effect at the start of each span (sorted, non-overlapping) of `script`.

    The spans are the references themselves: each is read as the `${VAR}` it becomes, so
    nothing inside them changes the quoting. Raises Refused for a construct not modelled.
    """
    wanted = sorted(spans)
    result: list[Quoting] = []
    stack = [_Frame("code")]
    i, k, n = 0, 0, len(script)
    boundary = True  # the previous character ends a word (a `#` here starts a comment)
    dollar = False  # the previous character was an unescaped, unused `$`
    line_start = False  # a here-document body frame is at the start of a line

    def swallowed(construct: str) -> None:
        if k < len(wanted) and wanted[k][0] < i:
            raise _refuse(f"a reference inside {construct}", "move the reference out of it")

    def body_below() -> bool:
        return any(f.kind == "body" for f in stack[:-1])

    while i < n:
        top = stack[-1]
        if top.kind == "body" and line_start:
            line_start = False
            assert top.heredoc is not None
            delimiter, quoted, strip = top.heredoc
            line_end = script.find("\n", i)
            line_end = n if line_end < 0 else line_end
            line = script[i:line_end]
            if (line.lstrip("\t") if strip else line) == delimiter:
                stack.pop()
                code = stack[-1]
                if code.pending:
                    stack.append(_Frame("body", heredoc=code.pending.pop(0)))
                    line_start = True
                i, boundary, dollar = line_end + 1, True, False
                continue
            if quoted:
                while k < len(wanted) and wanted[k][0] < line_end:
                    result.append(Quoting.QUOTED_HEREDOC)
                    k += 1
                i, line_start = line_end + 1, True
                continue
        if k < len(wanted) and i >= wanted[k][0]:
            if i > wanted[k][0]:
                swallowed("an escape or a word the shell reads as one")
            if dollar:
                raise _refuse("`$` right before a reference ($$(params.x) is the shell's process id and a "
                              "parenthesis)", "put a space or quotes between them")
            if top.kind == "param":
                raise _refuse("a reference inside ${...}",
                              "assign the reference to a variable first (v=\"$(params.x)\") and use ${v...} there")
            # in $(( )) an expansion is unquoted text to the arithmetic, as `$v` would be there
            result.append({"code": Quoting.NONE, "arith": Quoting.NONE, "single": Quoting.SINGLE,
                           "double": Quoting.DOUBLE, "body": Quoting.HEREDOC}[top.kind])
            i = wanted[k][1]
            k += 1
            boundary, dollar = False, False
            continue
        ch = script[i]
        was_dollar, dollar = dollar, False
        if ch == "\n" and top.kind != "body":
            if body_below():
                raise _refuse("a quote, ${ }, $( ) or $(( )) that spans lines inside a here-document",
                              "keep it on one line")
            if any(f.pending for f in stack[:-1]):
                raise _refuse("a here-document whose body would start inside quotes, ${ }, $( ) or $(( ))",
                              "close them on the line of the <<")
        if top.kind == "single":
            if ch == "'":
                stack.pop()
            i += 1
            continue
        if ch == "\\":
            if top.kind == "body" and script.startswith("\n", i + 1):
                raise _refuse("a backslash at the end of a here-document line", "remove it")
            i += 2
            swallowed("a backslash escape")
            boundary = False
            continue
        if ch == "`":
            raise _refuse("backquotes (`...`)", "write $( ... ) instead")
        if script.startswith("$((", i):
            if top.kind in ("param",):
                raise _refuse("$(( )) inside ${...}", "compute it into a variable first")
            stack.append(_Frame("arith"))
            i += 3
            continue
        if script.startswith("$(", i):
            if top.kind == "param":
                raise _refuse("$( ) inside ${...}", "run it into a variable first")
            stack.append(_Frame("code", depth=1, substitution=True))
            i, boundary = i + 2, True
            continue
        if script.startswith("${", i):
            if top.kind == "param":
                top.depth += 1
            else:
                stack.append(_Frame("param", depth=1))
            i += 2
            continue
        if top.kind == "double":
            if ch == '"':
                stack.pop()
                boundary = False
            dollar = ch == "$"
            i += 1
            continue
        if top.kind == "param":
            if ch in "'\"":
                raise _refuse("quotes inside ${...}", "put the text in a variable and write ${x:-$v}")
            if ch == "}":
                top.depth -= 1
                if top.depth == 0:
                    stack.pop()
                    boundary = False
            i += 1
            continue
        if top.kind == "arith":
            if ch in "'\"":
                raise _refuse("quotes inside $(( ))", "remove them")
            if ch == "(":
                top.depth += 1
            elif ch == ")":
                if top.depth:
                    top.depth -= 1
                elif script.startswith("))", i):
                    stack.pop()
                    i += 1
                    boundary = False
                else:
                    raise _refuse("a `)` that closes $(( before `))`", "balance the parentheses")
            i += 1
            continue
        if top.kind == "body":
            if ch == "\n":
                line_start = True
            dollar = ch == "$"
            i += 1
            continue
        # code: the top level or inside $( )
        if ch == "'":
            if was_dollar:
                raise _refuse("$'...' quoting (bash and busybox read escapes in it, dash does not)",
                              "use '...' or \"...\"")
            stack.append(_Frame("single"))
        elif ch == '"':
            stack.append(_Frame("double"))
        elif ch == "#" and boundary:
            end = script.find("\n", i)
            end = n if end < 0 else end
            while k < len(wanted) and wanted[k][0] < end:  # references in a comment do nothing
                result.append(Quoting.NONE)
                k += 1
            i = end
            continue
        elif boundary and script.startswith("((", i):
            raise _refuse("`((` (bash's arithmetic command, nested subshells in sh)",
                          "write $(( )) for arithmetic or `( (` for subshells")
        elif (boundary and top.substitution and script.startswith("case", i)
              and script[i + 4:i + 5] in ("", " ", "\t", "\n")):
            raise _refuse("`case` inside $( ) (its `)` would close the substitution)",
                          "move the case into a function defined outside and call it in $( )")
        elif ch == "(" and top.substitution:
            top.depth += 1
        elif ch == ")" and top.substitution:
            top.depth -= 1
            if top.depth == 0:
                if top.pending:
                    raise _refuse("a here-document inside $( ) that closes before its body",
                                  "put the closing ) after the here-document's delimiter line")
                stack.pop()
                i += 1
                boundary = False
                continue
        elif script.startswith("<<<", i):
            i, boundary = i + 3, True
            continue
        elif script.startswith("<<", i):
            strip = script.startswith("<<-", i)
            delimiter, quoted, end = _delimiter(script, i + (3 if strip else 2))
            i = end
            swallowed("a here-document delimiter")
            top.pending.append((delimiter, quoted, strip))
            boundary = True
            continue
        elif ch == "\n" and top.pending:
            stack.append(_Frame("body", heredoc=top.pending.pop(0)))
            i, line_start, boundary = i + 1, True, True
            continue
        boundary = ch in _OPERATOR
        dollar = ch == "$"
        i += 1
    if k < len(wanted):
        swallowed("an escape at the end of the script")
    return result
