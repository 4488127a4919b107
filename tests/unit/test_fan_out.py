"""forEach in the planner: one Job per item, items within parallelism, results gathered in order."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from jobchain.api.models import ExecutionStatus
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.status_write import dump_status
from jobchain.engine.spec.render import job_name
from jobchain.engine.spec.validation import validate_workflow as validate

from .builders import (
    EXECUTION,
    T0,
    FakeOperatorCluster,
    created_nodes,
    env_of,
    execution,
    job,
    node,
    node_status,
    observed,
    script_seen,
    simulate,
    spec,
    with_status,
)

LIST = '{"files": ["a.csv", "b.csv", "c.csv"]}'


def fan_out(**convert: Any) -> Any:
    return spec(
        node("list-files", "convert"),
        node("convert", "report", forEach="input.files",
             script='echo "converting $(item) (#$(item.index))"; echo "{\\"file\\": \\"$(item)\\"}" > $JOBCHAIN_OUTPUT',
             **convert),
        node("report", script='echo "total: $(input)"'),
        parallelism=3,
    )


def item_results(name: str, manifest: dict[str, Any]) -> tuple[str, str | None]:
    if name == "list-files":
        return "Succeeded", LIST
    if name.startswith("convert#"):
        return "Succeeded", json.dumps({"file": json.loads(env_of(manifest)["JOBCHAIN_ITEM"])})
    return "Succeeded", None


def test_each_item_runs_as_its_own_job_and_the_next_node_gets_the_list_in_order() -> None:
    run = simulate(fan_out(), item_results)
    assert run.status.phase == "Succeeded"
    assert run.started_order() == ["list-files", "convert#0", "convert#1", "convert#2", "report"]
    convert = node_status(run.status, "convert")
    assert convert.output == [{"file": "a.csv"}, {"file": "b.csv"}, {"file": "c.csv"}]
    assert convert.items is not None and convert.items.model_dump() == {"total": 3, "succeeded": 3, "failed": 0,
                                                                        "running": 0}
    assert [(e.index, e.jobName) for e in convert.itemResults or []] == [
        (i, job_name(EXECUTION, f"convert#{i}")) for i in range(3)]
    report = run.cluster.manifests[job_name(EXECUTION, "report")]
    assert env_of(report)["JOBCHAIN_INPUT"] == '[{"file":"a.csv"},{"file":"b.csv"},{"file":"c.csv"}]'
    second = run.cluster.manifests[job_name(EXECUTION, "convert#1")]
    assert env_of(second)["JOBCHAIN_ITEM"] == '"b.csv"' and env_of(second)["JOBCHAIN_ITEM_INDEX"] == "1"
    assert second["metadata"]["labels"]["jobchain.dev/item"] == "1"
    assert script_seen(second).startswith('echo "converting b.csv (#1)"')


def test_an_item_value_is_data_never_code() -> None:
    wf = spec(node("each", forEach='["$(rm -rf /)", "a\'b`c`;$HOME"]', script="printf '%s' '$(item)' \"$(item)\""),
              parallelism=2)
    first = plan(execution(wf), {}, T0)
    for manifest, value in zip(first.create, ["$(rm -rf /)", "a'b`c`;$HOME"], strict=True):
        script = manifest["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        assert script == "printf '%s' ''\"$${JOBCHAIN_REF_1}\"'' \"$${JOBCHAIN_REF_1}\""  # a variable ($$: kubelet)
        assert env_of(manifest)["JOBCHAIN_REF_1"] == value.replace("$", "$$")  # the kubelet turns $$ into $
        assert env_of(manifest)["JOBCHAIN_ITEM"] == json.dumps(value).replace("$", "$$")


def test_items_count_against_parallelism_and_max_parallel() -> None:
    wf = spec(node("each", forEach="[1, 2, 3, 4, 5]", maxParallel=2), node("other"), parallelism=3)
    first = plan(execution(wf), {}, T0)
    assert created_nodes(first) == ["each#0", "each#1", "other"]
    run = simulate(wf, finish_per_step=1)
    assert run.status.phase == "Succeeded"
    for p in run.plans:
        running = [m for m in p.status.nodes if m.phase == "Running"]
        assert sum(m.items.running if m.items else 1 for m in running) <= 3


def test_a_failed_item_lets_the_others_run_then_fails_the_node_and_routes_the_failure() -> None:
    wf = spec(node("each", {"node": "alert", "type": "failure"}, "publish", forEach="[0, 1, 2, 3]"),
              node("alert"), node("publish"))
    run = simulate(wf, lambda n, m: ("Failed", None) if n == "each#1" else ("Succeeded", json.dumps(n)))
    each = node_status(run.status, "each")
    assert each.phase == "Failed"
    assert each.message.startswith("item(s) 1 of 4 failed (#1: ")
    assert each.output == ["each#0", None, "each#2", "each#3"]
    assert run.started_order() == ["each#0", "each#1", "each#2", "each#3", "alert"]
    assert node_status(run.status, "alert").phase == "Succeeded"
    assert node_status(run.status, "publish").phase == "Skipped"
    assert run.status.phase == "Succeeded"


def test_fail_fast_starts_no_further_item() -> None:
    wf = spec(node("each", forEach="[0, 1, 2, 3]", failFast=True))
    run = simulate(wf, lambda n, m: ("Failed", None) if n == "each#1" else ("Succeeded", None))
    assert run.started_order() == ["each#0", "each#1"]
    each = node_status(run.status, "each")
    assert each.phase == "Failed" and "failFast: 2 item(s) not started" in each.message
    assert run.status.phase == "Failed" and run.status.reason == "NodeFailed"


def test_empty_list_succeeds_with_no_job_and_an_empty_output() -> None:
    run = simulate(spec(node("each", "after", forEach="[]"), node("after", script="echo $(input)")))
    assert run.started_order() == ["after"]
    assert node_status(run.status, "each").output == []
    assert env_of(run.cluster.manifests[job_name(EXECUTION, "after")])["JOBCHAIN_INPUT"] == "[]"


def test_a_non_list_a_cel_error_and_too_many_items_fail_the_node_before_any_job() -> None:
    # (written so that only a run shows it: a map literal or an unknown param is refused by validation)
    wf = spec(node("not-list", forEach="[{'a': 1}][0]"), node("bad", forEach="[1][5]"),
              node("too-many", forEach="[1, 2, 3]", maxItems=2), parallelism=3)
    run = simulate(wf)
    assert run.started_order() == []
    messages = {m.name: m.message for m in run.status.nodes}
    assert messages["not-list"].startswith("ConditionError: spec.nodes[0].forEach `[{'a': 1}][0]` must give a list, "
                                           "got a map")
    assert messages["bad"].startswith("ConditionError: spec.nodes[1].forEach `[1][5]`: ")
    assert messages["too-many"] == ("TooManyItems: spec.nodes[2].forEach `[1, 2, 3]` gave 3 items, more than "
                                    "maxItems (2); no item was started. Raise maxItems (at most 5000) or split "
                                    "the list")
    assert all(m.phase == "Failed" for m in run.status.nodes)


def test_default_item_limit_is_a_thousand() -> None:
    run = simulate(spec(node("each", forEach="input", script="true"), node("start", "each")),
                   lambda n, m: ("Succeeded", json.dumps(list(range(1001)))))
    each = node_status(run.status, "each")
    assert each.phase == "Failed" and "more than maxItems (1000)" in each.message
    assert run.started_order() == ["start"]


def test_a_missing_item_key_fails_that_item_only() -> None:
    wf = spec(node("each", forEach="[{'f': 'x'}, {'g': 'y'}]", script="echo $(item.f)"))
    run = simulate(wf)
    each = node_status(run.status, "each")
    assert run.started_order() == ["each#0"]
    assert each.phase == "Failed" and "item has no key 'f'" in each.message


def test_a_lost_status_write_adopts_item_jobs_and_never_makes_a_second() -> None:
    wf = spec(node("each", forEach="[1, 2, 3]"), parallelism=2)
    ex = execution(wf)
    first = plan(ex, {}, T0)
    assert created_nodes(first) == ["each#0", "each#1"]
    cluster = FakeOperatorCluster()
    cluster.apply(first)  # the Jobs exist; the status write is lost: ex keeps its old status
    again = plan(ex, cluster.observed(), T0 + timedelta(seconds=1))
    assert created_nodes(again) == []  # both slots are held by the adopted item Jobs
    each = node_status(again.status, "each")
    assert each.items is not None and each.items.running == 2
    cluster.finish("each#0", "Succeeded", '"one"', T0 + timedelta(seconds=2))
    third = plan(with_status(ex, again.status), cluster.observed(), T0 + timedelta(seconds=2))
    assert created_nodes(third) == ["each#2"]
    # the same pass again (a kopf retry, or a lost write of it): the same decision, the same Job name
    assert plan(with_status(ex, again.status), cluster.observed(), T0 + timedelta(seconds=2)).create == third.create


def test_item_outputs_over_the_budget_are_kept_the_same_whether_or_not_a_status_write_was_lost() -> None:
    # Two 150 KB item outputs: the first fits the 256 KiB budget, the second gets what is left (a preview,
    # kept whole in its ConfigMap). Recorded in two passes, or in one after the first pass's write was lost,
    # the limits handed out are the same (the list in status counts as its items, not as list JSON).
    big = [json.dumps({"ok": True, "v": letter * 150_000}) for letter in "xy"]
    wf = spec(node("each", forEach="['a', 'b']")).model_copy(update={"outputLimitBytes": 262144})

    def final(lose_first_record: bool) -> Any:
        ex, cluster = execution(wf), FakeOperatorCluster()
        first = plan(ex, {}, T0)
        cluster.apply(first)
        ex = with_status(ex, first.status)
        cluster.finish("each#0", "Succeeded", big[0], T0 + timedelta(seconds=1))
        second = plan(ex, cluster.observed(), T0 + timedelta(seconds=1))
        cluster.apply(second)
        if not lose_first_record:
            ex = with_status(ex, second.status)
        cluster.finish("each#1", "Succeeded", big[1], T0 + timedelta(seconds=2))
        last = plan(dataclasses.replace(ex, outputs={"each#0": json.loads(big[0])} if not lose_first_record else {}),
                    cluster.observed(), T0 + timedelta(seconds=2))
        cluster.apply(last)
        each = node_status(last.status, "each")
        assert each.phase == "Succeeded" and each.outputRef is not None
        assert cluster.config_maps[each.outputRef.configMap] == [json.loads(b) for b in big]
        return each.output, each.outputTruncated, [e.outputBytes for e in each.itemResults or []]

    steady, crashed = final(False), final(True)
    assert steady == crashed
    assert steady[1] is True and isinstance(steady[0][1], str), "the second item is a preview in status"


def test_cancel_deletes_running_item_jobs_and_cancels_the_items() -> None:
    wf = spec(node("each", forEach="[1, 2, 3]"), parallelism=3)
    ex = execution(wf)
    first = plan(ex, {}, T0)
    cluster = FakeOperatorCluster()
    cluster.apply(first)
    cluster.finish("each#0", "Succeeded", None, T0 + timedelta(seconds=1))
    stopped = plan(with_status(ex, first.status, cancel=True), cluster.observed(), T0 + timedelta(seconds=2))
    assert sorted(stopped.delete) == sorted(job_name(EXECUTION, f"each#{i}") for i in (1, 2))
    each = node_status(stopped.status, "each")
    assert each.phase == "Cancelled"
    assert [str(e.phase) for e in each.itemResults or []] == ["Succeeded", "Cancelled", "Cancelled"]


def test_the_deadline_stops_items_as_it_stops_nodes() -> None:
    wf = spec(node("each", forEach="[1, 2, 3, 4]"), parallelism=2)
    ex = execution(wf, timeout=10, created=T0)
    first = plan(ex, {}, T0)
    cluster = FakeOperatorCluster()
    cluster.apply(first)
    cluster.finish("each#0", "Succeeded", '"done"', T0 + timedelta(seconds=5))
    late = plan(with_status(ex, first.status), cluster.observed(), T0 + timedelta(seconds=11))
    assert late.status.reason == "DeadlineExceeded" and late.create == []
    assert late.delete == [job_name(EXECUTION, "each#1")]  # the finished item's Job (and log) is kept
    each = node_status(late.status, "each")
    assert each.phase == "Cancelled" and each.output == ["done", None, None, None]
    assert [str(e.phase) for e in each.itemResults or []] == ["Succeeded", "Cancelled"]


def test_progress_counts_items_while_a_fan_out_runs() -> None:
    wf = spec(node("each", forEach="[1, 2, 3, 4]"), parallelism=2)
    first = plan(execution(wf), observed(job("x")), T0)
    assert first.status.progress == "0/1 (0/4 items)"


def test_five_thousand_items_stay_within_the_status_budget() -> None:
    items = list(range(5000))
    wf = spec(node("list", "each"), node("each", forEach="input", maxItems=5000, script="true"), parallelism=100)
    run = simulate(wf, lambda n, m: ("Succeeded", json.dumps(items) if n == "list" else
                                     json.dumps({"n": json.loads(env_of(m)["JOBCHAIN_ITEM"]), "pad": "x" * 90})),
                   max_steps=200)
    each = node_status(run.status, "each")
    assert each.phase == "Succeeded" and each.output is not None and len(each.output) == 5000
    size = len(json.dumps(dump_status(run.status), separators=(",", ":")))
    assert size < 1024 * 1024, size  # etcd refuses objects over 1.5 MiB
    # Status holds previews (most items are over their share of the budget), each kept whole in its own
    # ConfigMap until the node finished; then the whole list, complete and in item order, in the node's.
    assert each.outputTruncated and each.outputRef is not None
    assert each.message.endswith(f"item outputs previewed in status, the whole list kept in ConfigMap "
                                 f"{each.outputRef.configMap}")
    kept = run.cluster.config_maps[each.outputRef.configMap]
    assert kept == [{"n": i, "pad": "x" * 90} for i in range(5000)]
    assert ExecutionStatus.model_validate(json.loads(json.dumps(dump_status(run.status)))) == run.status


def test_lint_checks_for_each_like_when() -> None:
    wf = spec(node("a", "b", forEach="inptu.files"), node("b", script="echo $(item)", maxParallel=2))
    problems = [str(p) for p in validate(wf)]
    assert any("spec.nodes[0].forEach" in p and "unknown name 'inptu'" in p for p in problems), problems
    assert any("spec.nodes[1].script" in p and "only a node with forEach has an item" in p for p in problems)
    assert any("spec.nodes[1].maxParallel" in p and "only goes with forEach" in p for p in problems)
    assert validate(spec(node("a", forEach="input.files + params.extra", script="echo $(item.index)"),
                         params=[{"name": "extra", "type": "array", "default": "[]"}])) == []
