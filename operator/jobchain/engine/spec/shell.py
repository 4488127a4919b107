"""Where in a `/bin/sh -c` script a piece of text sits: unquoted, in '...', in "...", in a here-document.

Why: a reference in a script is replaced by an expansion of an environment variable the
operator sets (`${JOBCHAIN_REF_1}`), so the shell expands a value and never parses it as code.
An expansion works as written in unquoted text, in double quotes and in an unquoted
here-document; inside single quotes it must close and reopen them (`'"${JOBCHAIN_REF_1}"'`),
and inside a quoted here-document (`<<'EOF'`) nothing expands at all. Whatever this scanner
decides, what it inserts is only ever a parameter expansion: a wrong guess can give a wrong
literal, never run a value as a command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum


class Quoting(StrEnum):
    NONE = "unquoted"
    SINGLE = "single-quoted"
    DOUBLE = "double-quoted"
    HEREDOC = "here-document"
    QUOTED_HEREDOC = "quoted here-document"


_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]+)'|\"([^\"\n]+)\"|\\?([A-Za-z_][A-Za-z0-9_]*))")


def contexts(script: str, spans: Iterable[tuple[int, int]]) -> list[Quoting]:
    """The quoting in effect at the start of each span (sorted, non-overlapping) of `script`.

    The spans are the references themselves: their text is skipped, so nothing inside them
    changes the quoting. `$( ... )` opens a fresh, unquoted context (also inside double quotes).
    """
    wanted = sorted(spans)
    result: list[Quoting] = []
    stack: list[tuple[Quoting, int]] = [(Quoting.NONE, 0)]  # (quoting, open parens of a $( ) frame)
    pending: list[tuple[str, bool, bool]] = []  # here-documents whose body starts after the newline
    heredoc: tuple[str, bool, bool] | None = None  # (delimiter, quoted, strip tabs) while in a body
    i, k, n = 0, 0, len(script)
    while i < n:
        if heredoc is not None:  # i is at the start of a line of the body
            line_end = script.find("\n", i)
            line_end = n if line_end < 0 else line_end
            line = script[i:line_end]
            if (line.lstrip("\t") if heredoc[2] else line) == heredoc[0]:
                heredoc = pending.pop(0) if pending else None
            else:
                while k < len(wanted) and wanted[k][0] < line_end:
                    result.append(Quoting.QUOTED_HEREDOC if heredoc[1] else Quoting.HEREDOC)
                    k += 1
            i = line_end + 1
            continue
        if k < len(wanted) and i >= wanted[k][0]:
            result.append(stack[-1][0])
            i = max(i, wanted[k][1])
            k += 1
            continue
        ch = script[i]
        state, depth = stack[-1]
        if state == Quoting.SINGLE:
            if ch == "'":
                stack.pop()
            i += 1
            continue
        if ch == "\\":
            i += 2
            continue
        if state == Quoting.DOUBLE:
            if ch == '"':
                stack.pop()
            elif script.startswith("$(", i) and not script.startswith("$((", i):
                stack.append((Quoting.NONE, 1))
                i += 2
                continue
            i += 1
            continue
        # unquoted (top level or inside $( ))
        if ch == "'":
            stack.append((Quoting.SINGLE, 0))
        elif ch == '"':
            stack.append((Quoting.DOUBLE, 0))
        elif ch == "#" and (i == 0 or script[i - 1] in " \t\n;&|("):
            end = script.find("\n", i)
            end = n if end < 0 else end
            # a comment: only references in it are of interest, and they stay unquoted
            while k < len(wanted) and wanted[k][0] < end:
                result.append(Quoting.NONE)
                k += 1
            i = end
            continue
        elif script.startswith("$(", i) and not script.startswith("$((", i):
            stack.append((Quoting.NONE, 1))
            i += 2
            continue
        elif ch == "(" and depth:
            stack[-1] = (state, depth + 1)
        elif ch == ")" and depth:
            if depth == 1:
                stack.pop()
            else:
                stack[-1] = (state, depth - 1)
        elif ch == "<" and (m := _HEREDOC.match(script, i)) and not script.startswith("<<<", i):
            delimiter = m.group(2) or m.group(3) or m.group(4)
            quoted = m.group(2) is not None or m.group(3) is not None or script[m.start() + 2:m.end()].lstrip(
                "-\t ").startswith("\\")
            pending.append((delimiter, quoted, m.group(1) == "-"))
            i = m.end()
            continue
        elif ch == "\n" and pending:
            heredoc = pending.pop(0)
        i += 1
    while k < len(wanted):  # spans at the very end
        result.append(Quoting.NONE if heredoc is None else
                      (Quoting.QUOTED_HEREDOC if heredoc[1] else Quoting.HEREDOC))
        k += 1
    return result
