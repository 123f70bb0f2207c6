"""ContextStore: bounded by bytes, LRU, TTL, longest-prefix lookup, thread-safe."""

from __future__ import annotations

import threading

import torch

from avp_core import AVPContext, ContextStore


def _context(tokens, nbytes=1024):
    seq = len(tokens)
    dim = max(1, nbytes // (4 * 2 * max(seq, 1)))
    kv = ((torch.zeros(1, 1, seq, dim), torch.zeros(1, 1, seq, dim)),)
    return AVPContext(sequence=tuple(tokens), kv=kv, identity=None)


def test_never_holds_more_than_max_bytes():
    store = ContextStore(max_bytes=64 << 20)
    for i in range(1000):
        store.put(_context([i, i + 1, i + 2, i + 3], nbytes=1 << 20))
        assert store.nbytes <= 64 << 20
    assert 60 <= len(store) <= 64


def test_lru_eviction_keeps_recently_used():
    store = ContextStore(max_bytes=3 * 8192)
    a, b, c, d = (_context([i] * 4, nbytes=8192) for i in range(4))
    for ctx in (a, b, c):
        store.put(ctx)
    assert store.get(a.context_id) is a  # a becomes most recent
    store.put(d)
    assert store.get(b.context_id) is None and store.get(a.context_id) is a


def test_too_large_context_is_not_stored():
    store = ContextStore(max_bytes=1000)
    assert store.put(_context([1, 2], nbytes=4096)) is False
    assert len(store) == 0


def test_ttl_expires_entries():
    now = [0.0]
    store = ContextStore(max_bytes=1 << 20, ttl_s=10, clock=lambda: now[0])
    ctx = _context([1, 2, 3])
    store.put(ctx)
    now[0] = 9.0
    assert store.get(ctx.context_id) is ctx
    now[0] = 10.5
    assert store.get(ctx.context_id) is None and store.nbytes == 0


def test_longest_prefix_and_pop():
    store = ContextStore()
    short, long_, other = _context([1, 2, 3]), _context([1, 2, 3, 4, 5]), _context([9, 9])
    for ctx in (short, long_, other):
        store.put(ctx)
    assert store.longest_prefix([1, 2, 3, 4, 7]) == (long_, 4)
    assert store.longest_prefix([1, 2, 3, 4, 7], accept=lambda c: c is not long_) == (short, 3)
    assert store.longest_prefix([5]) == (None, 0)
    assert store.pop(long_.context_id) is long_ and long_.context_id not in store


def test_concurrent_puts_stay_bounded():
    store = ContextStore(max_bytes=16 * 4096)

    def worker(offset):
        for i in range(200):
            store.put(_context([offset, i, i], nbytes=4096))
            store.longest_prefix([offset, i])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.nbytes <= 16 * 4096
    assert store.nbytes == sum(store.get(k).nbytes for k in list(store._entries))
