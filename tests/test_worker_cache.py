"""The one per-process cache: built once per key, least recently used dropped first, emptied by clear_all."""
from bodydata.worker_cache import WorkerCache, cache_key, clear_all


def test_worker_cache_builds_once_per_key_and_is_bounded():
    c = WorkerCache("test", maxsize=2)
    made = []

    def build(v):
        return lambda: made.append(v) or v

    assert c.get(cache_key("a", {"k": 1}), build("A")) == "A"
    assert c.get(cache_key("a", {"k": 1}), build("other")) == "A"
    c.get("b", build("B"))
    c.get(cache_key("a", {"k": 1}), build("x"))  # a is now the most recent
    c.get("c", build("C"))  # drops b
    assert made == ["A", "B", "C"] and len(c) == 2 and c.builds == 3
    c.get("b", build("B2"))
    assert made[-1] == "B2"
    clear_all()
    assert len(c) == 0
    assert cache_key("p", 1.5, None) == cache_key("p", 1.5, None) != cache_key("p", 1.5, 0)
