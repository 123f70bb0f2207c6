"""Saved contexts on every backend: round trips, prefix dedup, retention, collection, trust.

The PostgreSQL and Redis cases run against real servers (see tests/services.py) and carry
the ``services`` mark, so the tox ``stores`` env runs them.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from services import postgres_dsn, redis_url, require, unique_name

from avp_core import AVPContext, ContextStore
from avp_core.errors import (
    AuthenticationError,
    ContextNotFoundError,
    DecodeError,
    InvalidRequestError,
    StoreError,
    StoreUnavailableError,
)
from avp_core.store import ContextRef, DirectoryBackend, MemoryBackend, SQLiteBackend, open_backend

BACKENDS = [
    "memory",
    "directory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.services),
    pytest.param("redis", marks=pytest.mark.services),
]


@pytest.fixture(params=BACKENDS)
def backend_factory(request, tmp_path):
    """A function opening the same storage again (a fresh process would), with options."""
    kind = request.param
    opened = []
    if kind == "memory":
        shared = {}

        def make(**options):
            if "one" not in shared:
                shared["one"] = MemoryBackend(**{"max_bytes": None, **options})
            return shared["one"]
    elif kind == "directory":

        def make(**options):
            return DirectoryBackend(tmp_path / "contexts", **options)
    elif kind == "sqlite":

        def make(**options):
            return SQLiteBackend(tmp_path / "contexts.db", **options)
    elif kind == "postgres":
        from avp_core.store.network import PostgresBackend

        dsn, table = postgres_dsn(), unique_name()

        def make(**options):
            return PostgresBackend(dsn, table=table, **options)
    else:
        from avp_core.store.network import RedisBackend

        url, prefix = redis_url(), unique_name() + ":"

        def make(**options):
            return RedisBackend(url, prefix=prefix, **options)

    def tracked(**options):
        backend = make(**options)
        opened.append(backend)
        return backend

    tracked.kind = kind
    yield tracked
    if opened:
        opened[-1].delete([entry.key for entry in opened[-1].entries()])
    if kind in ("postgres", "redis"):
        opened[-1].drop()  # the shared servers keep nothing of the test
    for backend in opened:
        backend.close()


def _conversation(connector, turns):
    """Contexts of a real multi-turn chat, each continuing the previous one."""
    chat = [{"role": "system", "content": "You answer in a few words."}]
    contexts, context = [], None
    for turn in range(turns):
        chat.append({"role": "user", "content": f"Tell me about topic number {turn}."})
        generation = connector.generate(chat, context=context, max_new_tokens=6)
        chat.append({"role": "assistant", "content": generation.text})
        context = generation.context
        contexts.append(context)
    return contexts


def _same(a: AVPContext, b: AVPContext) -> bool:
    return a.sequence == b.sequence and all(
        torch.equal(k1, k2) and torch.equal(v1, v2) for (k1, v1), (k2, v2) in zip(a.kv, b.kv)
    )


def _synthetic(tokens, seed=0, layers=2):
    generator = torch.Generator().manual_seed(seed)
    n = len(tokens)
    kv = tuple(
        (torch.randn(1, 2, n, 8, generator=generator), torch.randn(1, 2, n, 8, generator=generator))
        for _ in range(layers)
    )
    return AVPContext(sequence=tuple(tokens), kv=kv, identity=None, text="t")


def _extend(context, tokens, seed):
    extra = _synthetic(tokens, seed, layers=len(context.kv))
    kv = tuple(
        (torch.cat([k, k2], dim=-2), torch.cat([v, v2], dim=-2))
        for (k, v), (k2, v2) in zip(context.kv, extra.kv)
    )
    return AVPContext(sequence=context.sequence + tuple(tokens), kv=kv, identity=None)


def test_conversation_round_trips_and_grows_linearly(qwen, backend_factory):
    contexts = _conversation(qwen, 12)
    store = ContextStore(backend=backend_factory())
    refs = [store.save(context) for context in contexts]
    final = contexts[-1]
    stored = store.backend.nbytes()
    # each turn stored only its new positions: all twelve cost about the last one alone
    assert final.nbytes <= stored <= 1.25 * final.nbytes
    assert sum(c.nbytes for c in contexts) > 5 * stored

    reader = ContextStore(backend=backend_factory())  # as another process would open it
    for ref, context in zip(refs, contexts):
        loaded = reader.load(ref)
        assert loaded is not context and _same(loaded, context)
        assert loaded.context_id == context.context_id and loaded.text == context.text
    # a loaded context continues exactly as the live one does
    chat = [{"role": "user", "content": "One more question."}]
    live = qwen.generate(chat, context=contexts[-1], layout="handoff", max_new_tokens=5)
    resumed = qwen.generate(chat, context=reader.load(refs[-1]), layout="handoff", max_new_tokens=5)
    assert resumed.token_ids == live.token_ids and resumed.usage.reused_tokens > 0


def test_same_content_is_stored_once(backend_factory):
    store = ContextStore(backend=backend_factory())
    context = _synthetic(range(40))
    first = store.save(context)
    twin = AVPContext(sequence=context.sequence, kv=context.kv, identity=None)  # same content
    assert store.save(context) == first
    assert ContextStore(backend=backend_factory()).save(twin).key != ""
    assert len(store.backend.entries()) <= 2


def test_only_bit_identical_positions_come_from_the_parent(backend_factory):
    store = ContextStore(backend=backend_factory())
    base = _synthetic(range(64))
    store.save(base)
    changed_kv = tuple((k.clone(), v.clone()) for k, v in base.kv)
    changed_kv[1][1][0, 0, 40, 3] += 1.0  # position 40 differs in one value of one layer
    child = _extend(AVPContext(sequence=base.sequence, kv=changed_kv, identity=None), [7] * 8, 1)
    ref = store.save(child)
    loaded = ContextStore(backend=backend_factory()).load(ref)
    assert _same(loaded, child)
    entry = {e.key: e for e in store.backend.entries()}[ref.key]
    assert entry.parent is not None and entry.size < base.nbytes  # positions 0-39 shared


def test_missing_bytes_raise_context_not_found(backend_factory):
    store = ContextStore(backend=backend_factory())
    root = _synthetic(range(32))
    child = _extend(root, range(100, 132), 2)
    root_ref, child_ref = store.save(root), store.save(child)
    store.backend.delete([root_ref.key])
    del root, child  # nothing live in this process: loads go to the backend
    with pytest.raises(ContextNotFoundError, match="is not in"):
        ContextStore(backend=backend_factory()).load(child_ref)
    with pytest.raises(ContextNotFoundError):
        ContextStore(backend=backend_factory()).load("0" * 64)
    with pytest.raises(DecodeError, match="64 hex"):
        store.load("../../etc/passwd")


def test_max_bytes_evicts_leaves_before_what_they_build_on(backend_factory):
    probe = _synthetic(range(32))
    limit = int(probe.nbytes * 3.5)
    store = ContextStore(backend=backend_factory(max_bytes=limit))
    chain = [probe]
    for step in range(2):
        chain.append(_extend(chain[-1], range(1000 + 32 * step, 1032 + 32 * step), step + 5))
    refs = [store.save(context) for context in chain]
    others = [store.save(_synthetic(range(5000 + i, 5032 + i), seed=50 + i)) for i in range(3)]
    assert store.backend.nbytes() <= limit
    held = {entry.key for entry in store.backend.entries()}
    assert others[-1].key in held
    for ref, parent in zip(refs[1:], refs):  # no record outlives the record it builds on
        assert ref.key not in held or parent.key in held


def test_a_conversation_larger_than_max_bytes_starts_a_new_chain(backend_factory):
    probe = _synthetic(range(32))
    limit = int(probe.nbytes * 5.5)
    store = ContextStore(backend=backend_factory(max_bytes=limit))
    context, refs = probe, []
    for step in range(5):  # 32 positions more each turn: the chain outgrows the store
        refs.append(store.save(context))
        assert store.backend.nbytes() <= limit
        context = _extend(context, range(100 + 32 * step, 132 + 32 * step), step + 20)
    reader = ContextStore(backend=backend_factory(max_bytes=limit))
    assert reader.load(refs[-1]).seq_len == refs[-1].seq_len  # the latest is always whole
    with pytest.raises(StoreError, match="does not fit"):
        store.save(_synthetic(range(200), seed=7))


def test_a_prefix_saved_by_one_process_is_found_by_another(qwen, backend_factory):
    contexts = _conversation(qwen, 4)  # well over one 64-position block
    writer = ContextStore(backend=backend_factory())  # write_through: a backend was given
    for context in contexts:
        writer.put(context)
    assert ContextStore(backend="memory:").write_through  # a URI is a backend too
    assert not ContextStore().write_through
    reader = ContextStore(backend=backend_factory())  # nothing live: as another process
    prompt = [*contexts[-1].sequence, 42, 43]
    found, shared = reader.longest_prefix(prompt, identity=qwen.identity)
    assert found is not None and shared == contexts[-1].seq_len
    assert _same(found, contexts[-1])
    # only block-aligned prefixes are indexed: a prompt diverging before the first block
    # finds nothing, and another model's identity finds nothing
    assert ContextStore(backend=backend_factory()).longest_prefix(
        prompt[:40], identity=qwen.identity
    ) == (None, 0)
    assert reader.longest_prefix(prompt, identity=None)[1] <= shared
    other = dataclasses.replace(qwen.identity, weights_fingerprint="0" * 16)
    assert ContextStore(backend=backend_factory()).longest_prefix(prompt, identity=other) == (
        None,
        0,
    )


def test_ttl_expires_records(backend_factory):
    now = [time.time()]
    store = ContextStore(backend=backend_factory(ttl_s=60, clock=lambda: now[0]))
    ref = store.save(_synthetic(range(20)))
    reader = ContextStore(backend=backend_factory(ttl_s=60, clock=lambda: now[0]))
    now[0] += 30
    assert reader.load(ref.key).seq_len == 20
    now[0] += 61
    with pytest.raises(ContextNotFoundError):
        ContextStore(backend=backend_factory(ttl_s=60, clock=lambda: now[0])).load(ref.key)


def test_collect_frees_what_nothing_refers_to(backend_factory):
    store = ContextStore(backend=backend_factory())
    root = _synthetic(range(32))
    kept = _extend(root, range(200, 232), 3)
    dropped = _extend(root, range(300, 332), 4)
    stray = _synthetic(range(900, 940), seed=9)
    refs = [store.save(c) for c in (root, kept, dropped, stray)]
    del root, kept, dropped, stray  # the contexts are gone from this process
    assert store.collect([refs[1]], grace_s=3600) == 0  # all used within the grace period
    assert store.collect([refs[1]], grace_s=0) == 2
    held = {entry.key for entry in store.backend.entries()}
    assert held == {refs[0].key, refs[1].key}  # kept, and the root it builds on
    assert ContextStore(backend=backend_factory()).load(refs[1]).seq_len == 64


def test_tampered_record_is_refused(backend_factory):
    store = ContextStore(backend=backend_factory())
    ref = store.save(_synthetic(range(24)))
    backend = store.backend
    ((_, data),) = backend.get_chain(ref.key)
    forged = bytearray(data)
    forged[-5] ^= 0xFF  # a KV byte
    backend.delete([ref.key])
    backend.put(ref.key, bytes(forged))
    with pytest.raises(DecodeError):
        ContextStore(backend=backend_factory()).load(ref.key)


def test_signed_records_need_the_key(backend_factory):
    store = ContextStore(backend=backend_factory(), key=b"k" * 32)
    ref = store.save(_synthetic(range(24)))
    assert ContextStore(backend=backend_factory(), key=b"k" * 32).load(ref).seq_len == 24
    with pytest.raises(AuthenticationError):
        ContextStore(backend=backend_factory(), key=b"x" * 32).load(ref)


def test_references_are_small_checked_json():
    ref = ContextStore().save(_synthetic(range(10)))
    data = ref.to_dict()
    assert ContextRef.from_dict(data) == ref and len(str(data)) < 300
    for bad in ({**data, "key": "zz"}, {**data, "seq_len": -1}, {**data, "model": 3}, [1]):
        with pytest.raises(DecodeError):
            ContextRef.from_dict(bad)


def test_open_backend_names(tmp_path):
    assert isinstance(open_backend("memory:"), MemoryBackend)
    assert isinstance(open_backend(str(tmp_path / "d")), DirectoryBackend)
    assert isinstance(open_backend(f"dir:{tmp_path / 'e'}"), DirectoryBackend)
    assert isinstance(open_backend(f"sqlite:{tmp_path / 'x.db'}"), SQLiteBackend)
    with pytest.raises(InvalidRequestError, match="unknown store URI scheme"):
        open_backend("mongodb://localhost")
    with pytest.raises(InvalidRequestError, match="max_bytes"):
        MemoryBackend(max_bytes=0)


@pytest.mark.services
def test_a_postgres_dsn_keeps_its_own_options():
    import psycopg

    dsn, schema = postgres_dsn(), unique_name()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = ContextStore(backend=f"{dsn}?options=-csearch_path%3D{schema}")
        store.save(_synthetic(range(20)))
        with psycopg.connect(dsn, autocommit=True) as admin:
            (count,) = admin.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
        assert count == 3  # the store's tables went where the DSN said
        store.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_unreachable_server_is_a_clear_error_at_once(kind):
    require(*(("psycopg", "psycopg") if kind == "postgres" else ("redis", "redis")))
    from avp_core.store.network import PostgresBackend, RedisBackend

    start = time.perf_counter()
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        if kind == "postgres":
            PostgresBackend("postgresql://postgres:secret@127.0.0.1:1/test", timeout_s=2)
        else:
            RedisBackend("redis://:secret@127.0.0.1:1/0", timeout_s=2)
    assert time.perf_counter() - start < 30  # refused, not hung
