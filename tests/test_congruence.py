"""Congruence: the same requests through gRPC and in-process return the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sievedb import F
from sievedb.synthetic import clustered_vectors, demo_attributes
from sievedb_server.core.types import (
    CollectionSpec,
    FieldSpec,
    FieldType,
    HnswParams,
    Metric,
    SearchParams,
)
from sievedb_server.filters.parser import parse

N, DIM = 4000, 24

TEXT_FILTERS = [
    None,
    'category == "cs.LG"',
    "year >= 2010 and year < 2015",
    '"rag" in tags or category in ["cs.CV", "physics"]',
    'not (category == "cs.CL") and stamp >= datetime("2024-01-01T00:00:00Z")',
    "id in [1, 2, 3, 4, 5, 77]",
    "count(tags) >= 2",
    "score between 0.25 and 0.5",
    "missing is null or missing is empty",
]


@pytest.fixture
def loaded(server):
    client, engine = server
    vecs, assign = clustered_vectors(N, DIM, seed=21)
    attrs = demo_attributes(assign, seed=21)
    rng = np.random.default_rng(21)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i, a in enumerate(attrs):
        a["stamp"] = base + timedelta(hours=int(rng.integers(-5000, 5000)))
        a["score"] = float(rng.random())
    engine.create_collection(
        CollectionSpec(
            "c", DIM, Metric.COSINE, HnswParams(full_scan_threshold=500),
            (
                FieldSpec("category", FieldType.KEYWORD),
                FieldSpec("year", FieldType.INTEGER),
                FieldSpec("tags", FieldType.KEYWORD_LIST),
                FieldSpec("stamp", FieldType.DATETIME),
                FieldSpec("score", FieldType.FLOAT, indexed=False),
            ),
        )
    )
    client.upsert("c", list(range(N)), vecs, attrs, batch_size=1000)
    return client, engine, vecs


def test_search_congruent(loaded) -> None:
    client, engine, vecs = loaded
    for text in TEXT_FILTERS:
        flt = parse(text) if text else None
        for exact in (False, True):
            for q in vecs[:10]:
                remote = client.search("c", q, k=7, filter=text, exact=exact)
                local = engine.search("c", q, SearchParams(k=7, exact=exact), flt)
                assert [h.id for h in remote.hits] == [h.id for h in local.hits], text
                np.testing.assert_allclose(
                    [h.score for h in remote.hits], [h.score for h in local.hits], rtol=1e-6
                )
                assert [h.attributes for h in remote.hits] == [h.attributes for h in local.hits]
        assert client.count("c", filter=text) == engine.count("c", flt)


def test_batch_builder_and_scroll_congruent(loaded) -> None:
    client, engine, vecs = loaded
    builder = F.eq("category", "cs.LG") & F.range("year", gte=2010) & ~F.eq("tags", "rag")
    text = 'category == "cs.LG" and year >= 2010 and not ("rag" in tags)'
    remote = client.search_batch("c", vecs[:20], k=5, filters=builder)
    local = engine.search_batch("c", vecs[:20], SearchParams(k=5), [parse(text)])
    assert [list(r.ids) for r in remote] == [[h.id for h in r.hits] for r in local]
    remote_ids = [p.id for p in client.iter_points("c", filter=text, page_size=37)]
    page, local_ids, cursor = None, [], b""
    while True:
        page = engine.scroll("c", parse(text), limit=37, cursor=cursor)
        local_ids += [p.id for p in page.points]
        cursor = page.next_cursor
        if not cursor:
            break
    assert remote_ids == local_ids and len(remote_ids) == engine.count("c", parse(text))
