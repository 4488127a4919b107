"""Generated scripts, run in the real dash, bash and busybox ash: a value arrives byte for byte and
never runs, or the script is refused naming the construct.

Each script mixes constructs that a quoting scanner can misread (quotes, here-documents and
here-strings, arithmetic, nested substitutions, backquotes, case, comments, `$'...'`) with
probes: commands that print a reference's value in a known quoting (`"..."`, `'...'`, an
unquoted here-document, an assignment, inside `$( )`). The Job is rendered by jobchain, expanded as
the kubelet does (tests/unit/test_substitution.py), and run; the output must be exactly the
probes' `[value]`s and no file may appear. Seeded: set JOBCHAIN_SHELL_SEED to replay a run.
hack/test-deps.sh installs the three shells (hack/test.sh calls it).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import render_job

from .builders import node, spec
from .shell_support import REF, container_env, kubelet_expand

SCRIPTS = int(os.environ.get("JOBCHAIN_SHELL_SCRIPTS", "2000"))
SEED = int(os.environ.get("JOBCHAIN_SHELL_SEED", "20261207"))

_SHELLS = {"dash": ["dash", "-c"], "bash": ["bash", "-c"], "busybox": ["busybox", "sh", "-c"]}


def _shells() -> dict[str, list[str]]:
    found = {name: argv for name, argv in _SHELLS.items() if shutil.which(argv[0])}
    if len(found) < len(_SHELLS):
        missing = sorted(set(_SHELLS) - set(found))
        if os.environ.get("CI") or Path("/etc/debian_version").exists():
            pytest.fail(f"{', '.join(missing)} missing: run hack/test-deps.sh (hack/test.sh does)")
        pytest.skip(f"SKIPPED LOUDLY: {', '.join(missing)} missing and this is no Debian machine; "
                    "install dash, bash and busybox to run the differential shell test")
    return found


HOSTILE = [
    "$(touch pwned)",
    'x"; touch pwned; echo "',
    "'; touch pwned; echo '",
    "`touch pwned`",
    "*",
    "-exec touch pwned ;",
    "a\nb",
    "line\nEOF\n!\nEND-DATA\n",
    "$",
    "$$ $1 ${HOME} $(JOBCHAIN_NODE) $$(x)",
    "\\' \\\" \\\\ \\n %s %d",
    "žluťoučký kůň 🐍 \u202e",
    " lead and trail ",
    "",
    "))) ;; esac ' \" `",
]


def _large(rng: random.Random) -> str:
    return "".join(rng.choice(["a", " ", "$", "'", '"', "\\", "\n", "*", "`", "(", ")"]) for _ in range(20_000))


@dataclass(frozen=True)
class Probe:
    text: str  # script text with {r} for the reference
    expected: Callable[[str], str]  # what it prints for a value


def _same(v: str) -> str:
    return f"[{v}]"


PROBES = [
    Probe("printf '[%s]' \"{r}\"\n", _same),
    Probe("printf '[%s]' '{r}'\n", _same),
    Probe(": \"it's\"; printf '[%s]' \"{r}\"\n", _same),
    Probe("v={r}; printf '[%s]' \"$v\"\n", _same),
    Probe("printf '%s' \"$(printf '[%s]' \"{r}\")\"\n", _same),
    Probe("printf '%s' \"$(printf '[%s]' '{r}')\"\n", _same),
    Probe("cat <<EOF\n[{r}]\nEOF\n", lambda v: f"[{v}]\n"),
    Probe("cat <<-EOF\n\t[{r}]\n\tEOF\n", lambda v: f"[{v}]\n"),
    Probe("cat <<EOF | tr -d '\\n' >/dev/null\nit's \"{r}\"\nEOF\nprintf '[%s]' \"{r}\"\n", _same),
    Probe("case {r} in *) printf '[%s]' \"{r}\";; esac\n", _same),
    Probe("f() {{ printf '[%s]' \"$1\"; }}; f \"{r}\"\n", _same),
    Probe("printf '[%s]' \"${{UNSET_VAR:-}}{r}\"\n", _same),
]

# (text, shells it is valid in); each prints nothing
NOISE: list[tuple[str, frozenset[str]]] = [
    ("(:)# it's a comment\n", frozenset(_SHELLS)),
    (": \"it's\" 'say \"hi\"'\n", frozenset(_SHELLS)),
    ("x=$(echo \"(\")\n", frozenset(_SHELLS)),
    (": $(( 1 << 2 )) $((3>>1))\n", frozenset(_SHELLS)),
    (": \"$(( (1+2)*3 ))\"\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<!\nit's\n!\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<END-DATA\n\"it's\" $(echo ')')\nEND-DATA\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<'E O'\nit's $(x\nE O\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<\"Q\"\n'\"\nQ\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<\\EOF\n' \"\nEOF\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<A; cat >/dev/null <<'B'\na'\nA\nb\"\nB\n", frozenset(_SHELLS)),
    ("cat >/dev/null <<<\"it's\"\n", frozenset({"bash"})),
    ("cat >/dev/null <<< it\\'s\n", frozenset({"bash"})),
    (": \"$(echo \"$(echo 'a \"b\" c')\")\"\n", frozenset(_SHELLS)),
    ("y=\"${HOME#/}\" z=${#y} w=$#\n", frozenset(_SHELLS)),
    ("case a in a) : it;; (b) : \"it's\";; esac\n", frozenset(_SHELLS)),
    ("# a comment with ' and \" and `\n", frozenset(_SHELLS)),
    (": foo#bar 'x'\n", frozenset(_SHELLS)),
    ("echo a\\'b >/dev/null\n", frozenset(_SHELLS)),
    ("{ : 'x'; }\n", frozenset(_SHELLS)),
    ("if true; then : \"a\"; fi\n", frozenset(_SHELLS)),
    # refused by the scanner (with a reference in the script), run only when it is not
    (": `echo \"it's\"`\n", frozenset(_SHELLS)),
    (": \"`echo \\\"it's\\\"`\"\n", frozenset(_SHELLS)),
    (": $'it\\'s'\n", frozenset({"bash", "busybox"})),
    ("x=$(case a in a) echo \"it's\";; esac)\n", frozenset(_SHELLS)),
    ("x=\"$(case a in a) echo it;; esac)\"\n", frozenset(_SHELLS)),
    ("((1<<2)) || :\n", frozenset({"bash"})),
    (": ${x:-'a b'}\n", frozenset(_SHELLS)),
    (": $(( 'x' )) 2>/dev/null || :\n", frozenset()),
]


def _script(rng: random.Random) -> tuple[str, Callable[[str], str], frozenset[str]]:
    parts: list[str] = []
    probes: list[Probe] = []
    shells = frozenset(_SHELLS)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.55:
            text, valid = rng.choice(NOISE)
            parts.append(text)
            shells &= valid
        else:
            probe = rng.choice(PROBES)
            parts.append(probe.text.format(r="$(params.x)"))
            probes.append(probe)
    if not probes:
        probe = rng.choice(PROBES)
        parts.append(probe.text.format(r="$(params.x)"))
        probes.append(probe)
    if rng.random() < 0.3:  # wrap the whole in a construct that changes nothing
        parts = ["{\n", *parts, "}\n"] if rng.random() < 0.5 else ["if true; then\n", *parts, "fi\n"]
    return "".join(parts), (lambda v: "".join(p.expected(v) for p in probes)), shells


def _render(script: str, value: str) -> tuple[str, dict[str, str]]:
    """The script as the shell gets it, and the container's env (raises UnresolvedReference if refused)."""
    scope = Scope(params={"x": value}, execution_name="run-1", namespace="team-a")
    workflow = spec(node("n", script=script))
    job = render_job(REF, workflow, workflow.nodes[0], scope)
    env = container_env(job)
    return kubelet_expand(job["spec"]["template"]["spec"]["containers"][0]["command"][-1], env), env


def _run_batch(scripts: list[str], env: dict[str, str], shell: list[str], cwd: Path) -> list[tuple[str, bool]]:
    """(stdout, whether a file appeared) of each script, run by one shell process: each in a subshell
    of its own directory with `eval`, which parses a text as `sh -c` does (one process per script
    would cost minutes on a loaded machine)."""
    driver, scripts_env = [], {}
    for i, script in enumerate(scripts):
        (cwd / str(i)).mkdir()
        scripts_env[f"JC_SCRIPT_{i}"] = script
        driver.append(f'( cd {i} && eval "$JC_SCRIPT_{i}" ) >{i}.out 2>{i}.err </dev/null\n')
    subprocess.run([*shell, "".join(driver)], env={**env, **scripts_env, "PATH": "/usr/bin:/bin"}, cwd=cwd,
                   capture_output=True, timeout=300, check=False)
    return [((cwd / f"{i}.out").read_bytes().decode("utf-8", "surrogateescape"), any((cwd / str(i)).iterdir()))
            for i in range(len(scripts))]


def test_generated_scripts_pass_values_byte_for_byte_or_are_refused(tmp_path: Path) -> None:
    shells = _shells()
    rng = random.Random(SEED)
    refused = runs = 0
    # scripts with the same value share the container env: one batch per (value, shell)
    batches: dict[str, list[tuple[int, str, str, str]]] = {}
    for n in range(SCRIPTS):
        script, expected, valid = _script(rng)
        value = _large(rng) if rng.random() < 0.02 else rng.choice(HOSTILE)
        try:
            rendered, env = _render(script, value)
        except UnresolvedReference:
            refused += 1
            continue
        for name in sorted(valid & set(shells)):
            batches.setdefault(f"{name}\0{env['JOBCHAIN_REF_1']}", []).append((n, script, rendered, expected(value)))
    failures: list[str] = []
    for b, (key, items) in enumerate(sorted(batches.items())):
        name, value = key.split("\0", 1)
        where = tmp_path / f"batch{b}"
        where.mkdir()
        env = {"JOBCHAIN_REF_1": value}
        for (n, script, _, expected), (out, created) in zip(
                items, _run_batch([r for _, _, r, _ in items], env, shells[name], where), strict=True):
            runs += 1
            if out != expected or created:
                failures.append(f"#{n} in {name}: script {script!r} value {value[:80]!r}: printed {out[:200]!r}, "
                                f"expected {expected[:200]!r}{'; A FILE WAS CREATED' if created else ''}")
    print(f"\nshell differential (seed {SEED}): {SCRIPTS} scripts, {SCRIPTS - refused} accepted and run "
          f"{runs} times in {', '.join(sorted(shells))}; {refused} refused; {len(failures)} failures")
    assert not failures, "\n".join(failures[:10])
    assert SCRIPTS - refused >= SCRIPTS // 3, "the scanner refuses most scripts: it should model them"
