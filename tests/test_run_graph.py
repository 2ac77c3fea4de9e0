"""The run's graph: topological columns, rows that follow their upstreams, one line per pair of nodes
with every edge's label, the badges and their colours, and the graph of a real valohai.yaml."""

from __future__ import annotations

from pathlib import Path

from airflow_valohai_reuse.plugins.graph import BOX_W, GAP_X, badge, badge_class, columns, layout

ROOT = Path(__file__).resolve().parent.parent


def test_a_node_is_one_column_right_of_its_furthest_upstream():
    nodes = ["a", "b", "c", "d"]
    # a → b → c, and a → c directly: c follows b, not a; d stands alone
    found = columns(nodes, [("a", "b"), ("b", "c"), ("a", "c")])
    assert found == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_a_cycle_is_drawn_after_the_rest_instead_of_failing():
    assert columns(["a", "b", "c"], [("b", "c"), ("c", "b")]) == {"a": 0, "b": 1, "c": 1}


def test_boxes_sit_in_their_columns_and_rows_follow_their_upstreams():
    # the pipeline lists the two branches' second nodes in the opposite order to their first ones
    nodes = ["top", "bottom", "after_bottom", "after_top"]
    edges = [("top", "after_top", ""), ("bottom", "after_bottom", "")]
    graph = layout(nodes, edges)
    boxes = {b.name: b for b in graph.boxes}
    assert [boxes[n].column for n in nodes] == [0, 0, 1, 1]
    assert boxes["after_top"].row == boxes["top"].row == 0  # beside its upstream: no crossing
    assert boxes["after_bottom"].row == boxes["bottom"].row == 1
    assert boxes["after_top"].x - boxes["top"].x == BOX_W + GAP_X
    assert graph.width >= 2 * BOX_W + GAP_X and graph.columns == 2
    assert [b.name for b in graph.boxes] == nodes  # drawn in the pipeline's order


def test_edges_between_one_pair_are_one_line_with_every_label():
    edges = [
        ("prep", "train", "prep.output.a.csv → train.input.data"),
        ("prep", "train", "prep.output.b.csv → train.input.data"),
        ("prep", "train", ""),  # the task dependency the factory made of them
        ("prep", "gone", "prep.output.a.csv → gone.input.x"),  # a node not drawn (a deployment)
    ]
    graph = layout(["prep", "train"], edges)
    assert len(graph.lines) == 1
    (line,) = graph.lines
    assert line.label == "prep.output.a.csv → train.input.data; prep.output.b.csv → train.input.data"
    prep, train = graph.boxes
    start, end = line.path.split(" C")[0], line.path.split()[-1]
    assert start == f"M{prep.x + prep.width:.0f},{prep.y + prep.height / 2:.0f}"  # right side of prep
    assert end == f"{train.x:.0f},{train.y + train.height / 2:.0f}"  # left side of train


def test_badges_say_what_each_node_did():
    assert badge(["reused"]) == "reused"
    assert badge(["pinned"]) == "pinned"
    assert badge(["reused", "reused", "ran"]) == "2 reused · 1 ran"  # a task node's variants
    assert badge(["ran", "ran"]) == "2 ran"
    assert badge([], "upstream_failed") == "upstream failed"
    assert badge([], None) == "not run yet"
    assert badge([], "failed", refused="no execution abc") == "pin refused"
    assert badge(["reused"], None, refused="another node's pin") == "reused"


def test_a_badges_colour_is_reused_ran_or_failed():
    assert badge_class("reused") == badge_class("3 pinned") == "reused"
    assert badge_class("ran") == badge_class("2 reused · 1 ran") == "ran"
    assert badge_class("pin refused") == badge_class("upstream failed") == "failed"
    assert badge_class("running") == badge_class("not run yet") == "unknown"


def test_the_example_pipelines_shape_is_its_valohai_yaml(monkeypatch):
    """The shape the page reads, from the example's valohai.yaml as the drop-in finds it."""
    from airflow_valohai_reuse.pipeline.analysis import analyses

    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", str(ROOT / "examples"))
    ((_, analysis),) = list(analyses(ROOT / "examples/nightly/valohai.yaml", None, "", "nightly-training"))
    edges = [(e.source_node, e.target_node, "") for e in analysis.pipeline.edges]
    graph = layout(list(analysis.task_ids), edges, {"preprocess": "reused"})
    assert [(b.name, b.column, b.badge) for b in graph.boxes] == [
        ("preprocess", 0, "reused"),
        ("train", 1, ""),
        ("evaluate", 2, ""),
    ]
    assert [(line.source, line.target) for line in graph.lines] == [
        ("preprocess", "train"),
        ("train", "evaluate"),
    ]


def test_a_refused_pin_is_kept_per_dag_and_run_and_replaced_by_a_later_try(tmp_path):
    from sqlalchemy import create_engine

    from airflow_valohai_reuse.cache import refusals

    engine = create_engine(f"sqlite:///{tmp_path / 'cache.db'}")
    with engine.begin() as conn:
        assert refusals.read(conn, "prod", "r1") == {}  # no refusal ever: no table yet
    with engine.begin() as conn:
        refusals.record(conn, "prod", "r1", {"train": "no execution abc", "": "reuse_nodes is not a map"})
        refusals.record(conn, "stg", "r1", {"train": "staging's own reason"})
        refusals.record(conn, "prod", "r1", {"train": "no execution abcd"})  # the next try's words
    with engine.connect() as conn:
        assert refusals.read(conn, "prod", "r1") == {
            "": "reuse_nodes is not a map",
            "train": "no execution abcd",
        }
        assert refusals.read(conn, "stg", "r1") == {"train": "staging's own reason"}
        assert refusals.read(conn, "prod", "r2") == {}


def test_a_box_writes_airflow_s_run_ids_short_enough_to_be_read_whole():
    from airflow_valohai_reuse.plugins.display import runs_short

    assert runs_short("from manual__2026-12-03T07:22:31.742793+00:00") == "from manual 12-03 07:22:31"
    assert runs_short("from scheduled__2026-12-03T00:00:00+00:00") == "from scheduled 12-03 00:00"
    assert runs_short("asset_triggered__2026-01-02T03:04:05+00:00") == "asset_triggered 01-02 03:04:05"
    assert runs_short("from my-own-run-id") == "from my-own-run-id"  # one a caller chose: as it is
    assert runs_short("step train") == "step train" and runs_short(None) == ""
