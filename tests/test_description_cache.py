"""The description JSONL cache after a crash mid-write (issue 13, item 3): a truncated line
never swallows the next record, and unreadable lines are skipped and counted."""

import logging

from vlmrec.features.cache import JsonlCache


def test_cache_appends_after_a_truncated_line_and_skips_bad_lines(tmp_path, caplog):
    """Before: the record appended after a truncated line was glued onto it and lost at the next
    load; a line such as `[1, 2]` or invalid UTF-8 stopped the load with a traceback."""
    path = tmp_path / "d.jsonl"
    cache = JsonlCache(path)
    cache.put("a", {"text": "first"})
    cache.put("b", {"text": "second"})
    good = path.read_bytes()
    path.write_bytes(good + b'{"key": "c", "text": "cut o')  # killed mid-write
    with caplog.at_level(logging.WARNING):
        resumed = JsonlCache(path)
    assert set(resumed.records) == {"a", "b"} and resumed.skipped == [3]
    assert "line 3" in caplog.text
    resumed.put("c", {"text": "third"})
    reloaded = JsonlCache(path)
    assert {k: r["text"] for k, r in reloaded.records.items()} == {"a": "first", "b": "second", "c": "third"}
    assert reloaded.skipped == [3]  # the broken line stays broken, on its own line
    # corrupt lines in the middle: skipped and counted, the records around them kept
    path.write_bytes(good + b'[1, 2]\n{"foo": 1}\n\xff\xfe not utf-8\n{"key": "d", "text": "after"}\n')
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        cache = JsonlCache(path)
    assert set(cache.records) == {"a", "b", "d"} and cache.skipped == [3, 4, 5]
    assert all(f"line {n}" in caplog.text for n in (3, 4, 5))
