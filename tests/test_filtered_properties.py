"""Filtered search against the oracle: reference evaluator + numpy, on random data and filters.

* exact mode returns exactly the top-k of the allowed set (reference evaluator + numpy);
* ANN mode returns min(k, |allowed|) hits, every one passing the filter;
* count / scroll agree with the reference;
* a state machine of upserts, attribute updates and deletes keeps the posting lists and
  numeric indexes equal to a recomputation from the stored attributes, across restarts.
"""

from __future__ import annotations

import tempfile
from unittest import mock
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sievedb_server.core.engine import Engine
from sievedb_server.filters import bitmaps
from sievedb_server.core.types import (
    CollectionSpec,
    FieldSpec,
    FieldType,
    HnswParams,
    Metric,
    SearchParams,
)
from sievedb_server.core.verify import check_collection
from sievedb_server.filters.planner import PlannerConfig
from sievedb_server.filters.model import (
    Filter,
    HasId,
    IsEmpty,
    IsNull,
    Match,
    MatchAny,
    MatchExcept,
    Range,
    ValuesCount,
)
from sievedb_server.filters.reference import matches

DIM = 6
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = (
    FieldSpec("cat", FieldType.KEYWORD),
    FieldSpec("tags", FieldType.KEYWORD_LIST),
    FieldSpec("n", FieldType.INTEGER),
    FieldSpec("f", FieldType.FLOAT),
    FieldSpec("flag", FieldType.BOOLEAN),
    FieldSpec("t", FieldType.DATETIME),
    FieldSpec("slow", FieldType.KEYWORD, indexed=False),
)
CATS = ["a", "b", "c", "d"]
TAGS = ["x", "y", "z"]
TIMES = [T0 + timedelta(days=d) for d in range(4)]

field_values = {
    "cat": st.sampled_from(CATS),
    "tags": st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    "n": st.integers(0, 5),
    "f": st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 1)),
    "flag": st.booleans(),
    "t": st.sampled_from(TIMES),
    "slow": st.sampled_from(CATS),
    "free": st.integers(0, 3),  # undeclared field
}


@st.composite
def attributes(draw: st.DrawFn) -> dict:
    out = {}
    for key, strat in field_values.items():
        choice = draw(st.integers(0, 6))
        if choice == 0:
            continue  # missing
        out[key] = None if choice == 1 else draw(strat)
    return out


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0):
    kind = draw(st.integers(0, 9 if depth < 2 else 8))
    key = draw(st.sampled_from(list(field_values)))
    if kind == 0:
        return Match(draw(st.sampled_from(["cat", "slow", "tags"])), draw(st.sampled_from(CATS + TAGS)))
    if kind == 1:
        if draw(st.booleans()):
            return MatchAny(draw(st.sampled_from(["cat", "tags", "slow"])),
                            draw(st.lists(st.sampled_from(CATS + TAGS), min_size=1, max_size=3)))
        return MatchAny(draw(st.sampled_from(["n", "free"])),
                        draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    if kind == 2:
        which = draw(st.integers(0, 2))
        if which == 0:
            return MatchExcept(draw(st.sampled_from(["cat", "tags"])),
                               draw(st.lists(st.sampled_from(CATS + TAGS), min_size=1, max_size=2)))
        if which == 1:
            return MatchExcept("n", draw(st.lists(st.integers(0, 5), min_size=1, max_size=2)))
        return MatchExcept("flag", [draw(st.booleans())])
    if kind == 3:
        lo, hi = sorted(draw(st.lists(st.integers(-1, 6), min_size=2, max_size=2)))
        ops = draw(st.sampled_from([("gte", "lt"), ("gt", "lte"), ("gte", None), (None, "lte")]))
        kwargs = {op: v for op, v in zip(ops, (lo, hi)) if op}
        return Range(draw(st.sampled_from(["n", "f", "free"])), **kwargs)
    if kind == 4:
        a, b = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2)))
        return Range("t", gte=a, lte=b)
    if kind == 5:
        return Match("t", draw(st.sampled_from(TIMES))) if draw(st.booleans()) else Match(
            "flag", draw(st.booleans()))
    if kind == 6:
        return IsEmpty(key) if draw(st.booleans()) else IsNull(key)
    if kind == 7:
        return ValuesCount(draw(st.sampled_from(["tags", "cat"])), gte=draw(st.integers(0, 2)))
    if kind == 8:
        return HasId(frozenset(draw(st.lists(st.integers(0, 60), max_size=6))))
    return draw(filters(depth + 1))


@st.composite
def filters(draw: st.DrawFn, depth: int = 0) -> Filter:
    must = draw(st.lists(conditions(depth), max_size=3))
    should = draw(st.lists(conditions(depth), max_size=3))
    must_not = draw(st.lists(conditions(depth), max_size=2))
    min_should = draw(st.integers(0, len(should)))
    return Filter(tuple(must), tuple(should), tuple(must_not), min_should)


def oracle(data, attrs, ids, flt, q, k):
    allowed = [i for i, (pid, a) in enumerate(zip(ids, attrs)) if matches(flt, pid, a)]
    if not allowed:
        return [], 0
    sub = data[allowed]
    d = ((sub.astype(np.float64) - q) ** 2).sum(1)
    order = np.lexsort((np.asarray(allowed), d))[:k]
    return [ids[allowed[i]] for i in order], len(allowed)


# Default planner, and two that force the graph strategies on small data.
PLANNERS = {
    "default": PlannerConfig(),
    "graph_filtered": PlannerConfig(exact_budget=0, postfilter_min=1.01),
    "graph_postfilter": PlannerConfig(
        exact_budget=0, postfilter_min=0.0, overfetch=0.5, fallback_exact_budget=0
    ),
}


STRATEGIES: dict[str, set[str]] = {name: set() for name in PLANNERS}


@pytest.mark.parametrize("planner", list(PLANNERS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(attributes(), min_size=1, max_size=60),
    st.lists(filters(), min_size=1, max_size=6),
    st.integers(0, 2**31),
)
def test_filtered_search_matches_oracle(planner, attrs, flts, seed) -> None:
    rng = np.random.default_rng(seed)
    n = len(attrs)
    data = rng.integers(-20, 20, size=(n, DIM)).astype(np.float32)  # integer coords: exact ties
    data += rng.random((n, DIM)).astype(np.float32) * 0.01
    ids = list(range(n))
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(Path(tmp), sync=False, checkpoint_interval_s=3600,
                     planner=PLANNERS[planner])
        try:
            eng.create_collection(
                CollectionSpec("c", DIM, Metric.L2, HnswParams(m=8, ef_construction=40,
                                                              full_scan_threshold=0), SCHEMA)
            )
            eng.upsert("c", ids, data, attrs)
            for flt in flts:
                q = rng.normal(size=DIM).astype(np.float32) * 10
                want, n_allowed = oracle(data, attrs, ids, flt, q, 5)
                got = eng.search("c", q, SearchParams(k=5, exact=True), flt)
                assert [h.id for h in got.hits] == want, str(flt)
                approx = eng.search("c", q, SearchParams(k=5, explain=True), flt)
                STRATEGIES[planner].add(approx.plan.strategy.split("+")[0])
                assert len(approx.hits) == min(5, n_allowed), (str(flt), approx.plan)
                for h in approx.hits:
                    assert matches(flt, h.id, attrs[h.id]), str(flt)
                assert eng.count("c", flt) == n_allowed
                # A range in a conjunction is answered from the label column (few candidates)
                # or as a bitmap intersection (many): both must agree with the reference.
                for among_max in (0, 10**9):
                    with mock.patch.object(bitmaps, "AMONG_MAX_CANDIDATES", among_max):
                        assert eng.count("c", flt) == n_allowed, (str(flt), among_max)
                scrolled = eng.scroll("c", flt, limit=1000).points
                assert sorted(p.id for p in scrolled) == sorted(
                    i for i in ids if matches(flt, i, attrs[i])
                )
        finally:
            eng.close()


def test_forced_planners_took_their_paths() -> None:
    """Guards the test above: the forcing configs really exercised the graph strategies."""
    if not all(STRATEGIES.values()):
        pytest.skip("run together with test_filtered_search_matches_oracle")
    assert "hnsw_filtered" in STRATEGIES["graph_filtered"]
    assert "hnsw_postfilter" in STRATEGIES["graph_postfilter"]


class PostingsMachine(RuleBasedStateMachine):
    """Upserts, attribute updates, deletes (by id and filter) and restarts vs recomputation."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.engine = Engine(Path(self.tmp.name), sync=False, checkpoint_interval_s=3600)
        self.engine.create_collection(
            CollectionSpec("c", DIM, Metric.L2, HnswParams(m=8, ef_construction=40), SCHEMA)
        )
        self.model: dict[int, dict] = {}
        self.rng = np.random.default_rng(0)

    @rule(batch=st.lists(st.tuples(st.integers(0, 40), attributes()), min_size=1, max_size=8))
    def upsert(self, batch) -> None:
        ids = [pid for pid, _ in batch]
        vecs = self.rng.normal(size=(len(batch), DIM)).astype(np.float32)
        self.engine.upsert("c", ids, vecs, [a for _, a in batch])
        for pid, a in batch:
            self.model[pid] = a

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_ids(self, data) -> None:
        victims = data.draw(st.lists(st.sampled_from(sorted(self.model)), max_size=4))
        self.engine.delete("c", victims + [999])
        for pid in victims:
            self.model.pop(pid, None)

    @rule(flt=filters())
    def delete_by_filter(self, flt) -> None:
        if flt.is_empty():
            return
        deleted, _ = self.engine.delete("c", (), flt)
        doomed = [pid for pid, a in self.model.items() if matches(flt, pid, a)]
        assert deleted == len(doomed)
        for pid in doomed:
            del self.model[pid]

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        self.engine.close(checkpoint=clean)
        self.engine = Engine(Path(self.tmp.name), sync=False, checkpoint_interval_s=3600)

    @rule(flt=filters())
    def count_agrees(self, flt) -> None:
        want = sum(1 for pid, a in self.model.items() if matches(flt, pid, a))
        assert self.engine.count("c", flt) == want

    @invariant()
    def indexes_match_recomputation(self) -> None:
        coll = self.engine._collections["c"]
        assert check_collection(coll) == []
        assert coll.live_count == len(self.model)

    def teardown(self) -> None:
        self.engine.close()
        self.tmp.cleanup()


PostingsMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPostingsMachine = PostingsMachine.TestCase


def test_update_schema_backfills_indexes(tmp_path: Path) -> None:
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    eng.create_collection(CollectionSpec("c", 2, Metric.L2))
    eng.upsert("c", [1, 2, 3], np.eye(3, 2, dtype=np.float32),
               [{"k": "a", "n": 1}, {"k": "b", "n": 5}, {"k": "a"}])
    info = eng.update_schema("c", [FieldSpec("k", FieldType.KEYWORD),
                                   FieldSpec("n", FieldType.INTEGER)])
    assert [f.name for f in info.spec.schema] == ["k", "n"]
    coll = eng._collections["c"]
    assert check_collection(coll) == []
    assert eng.count("c", Filter(must=(Match("k", "a"),))) == 2
    assert eng.count("c", Filter(must=(Range("n", gte=2),))) == 1
    eng.close()
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    assert eng.count("c", Filter(must=(Match("k", "a"),))) == 2
    assert [f.name for f in eng.describe_collection("c").spec.schema] == ["k", "n"]
    eng.close()


def test_negative_zero_update_then_delete_leaves_no_numeric_key(tmp_path: Path) -> None:
    """Regression: 0.0 → -0.0 staged no change, so the later delete missed the stored key."""
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    eng.create_collection(CollectionSpec("c", DIM, Metric.L2, HnswParams(m=8), SCHEMA))
    vec = np.ones((1, DIM), dtype=np.float32)
    eng.upsert("c", [32], vec, [{"f": 0.0}])
    eng.upsert("c", [32], vec, [{"f": -0.0}])
    eng.delete("c", [32])
    eng.close()
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    try:
        assert check_collection(eng._collections["c"]) == []
        assert eng.count("c", Filter(must=(Range(key="f", gte=-1.0, lte=1.0),))) == 0
    finally:
        eng.close()


@st.composite
def conjunctions(draw: st.DrawFn) -> Filter:
    """Matches on posting fields and indexed ranges, ANDed: `bitmaps.conjunction_labels`."""
    parts = []
    for _ in range(draw(st.integers(2, 3))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            parts.append(Match(draw(st.sampled_from(["cat", "tags"])),
                               draw(st.sampled_from(CATS + TAGS))))
        elif kind == 1:
            parts.append(MatchAny("n", draw(st.lists(st.integers(0, 5), min_size=1,
                                                     max_size=3))))
        elif kind == 2:
            lo, hi = sorted(draw(st.lists(st.integers(-1, 6), min_size=2, max_size=2)))
            parts.append(Range(draw(st.sampled_from(["n", "f"])), gte=lo, lte=hi))
        else:
            a, b = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2)))
            parts.append(Range("t", gt=a, lte=b))
    return Filter(tuple(parts))


CONJUNCTION_LABELS_TAKEN: list[bool] = []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(attributes(), min_size=1, max_size=60),
    st.lists(conjunctions(), min_size=1, max_size=6),
    st.integers(0, 2**31),
)
def test_conjunction_labels_are_the_allowed_set(attrs, flts, seed) -> None:
    rng = np.random.default_rng(seed)
    n = len(attrs)
    data = rng.normal(size=(n, DIM)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(Path(tmp), sync=False, checkpoint_interval_s=3600)
        try:
            eng.create_collection(CollectionSpec("c", DIM, Metric.L2, schema=SCHEMA))
            eng.upsert("c", list(range(n)), data, attrs)
            # An update and a delete leave stale entries and a tail in the numeric indexes.
            eng.upsert("c", [0], data[:1], [{**attrs[-1]}])
            attrs = [{**attrs[-1]}, *attrs[1:]]
            if n > 1:
                eng.delete("c", [n - 1])
                attrs = attrs[:-1]
            coll = eng.collection("c")
            ctx = bitmaps.BitmapContext(coll.attr_index, coll.live_bitmap, coll.labels_of_ids)
            for flt in flts:
                want = [i for i, a in enumerate(attrs) if matches(flt, i, a)]
                labels = bitmaps.conjunction_labels(flt, ctx)
                CONJUNCTION_LABELS_TAKEN.append(labels is not None)
                if labels is not None:
                    assert labels.dtype == np.uint32
                    assert labels.tolist() == want, str(flt)  # labels are ids here
                q = rng.normal(size=DIM).astype(np.float32)
                expect, _ = oracle(data[: len(attrs)], attrs, list(range(len(attrs))), flt, q, 5)
                got = eng.search("c", q, SearchParams(k=5, exact=True), flt)
                assert [h.id for h in got.hits] == expect, str(flt)
                assert eng.count("c", flt) == len(want)
        finally:
            eng.close()


def test_conjunction_labels_path_was_taken() -> None:
    """Guards the test above: the label path really answered some of its filters."""
    if not CONJUNCTION_LABELS_TAKEN:
        pytest.skip("runs after test_conjunction_labels_are_the_allowed_set")
    assert any(CONJUNCTION_LABELS_TAKEN)
