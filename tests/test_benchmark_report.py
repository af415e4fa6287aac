"""benchmarks/report.py renders results.json: each target's ✓/✗ beside the right figure, — where none."""

import importlib.util
import re

import pytest

from helpers import REPO_ROOT

spec = importlib.util.spec_from_file_location("report", REPO_ROOT / "benchmarks" / "report.py")
assert spec is not None and spec.loader is not None
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

RESULTS = {
    "machine": {"platform": "Linux", "python": "3.11", "cores": 2, "date": "2026-12-03",
                "versions": {"memostore": "0.2", "joblib": "1.6", "mandala": "0.2"}},
    "W4": {
        "memostore": {
            "1000": {"seconds": 0.1, "bytes_per_call": 500},
            "10000": {"seconds": 0.2, "new_call_us": 40.0, "bytes_per_call": 350},
            "100000": {"seconds": 0.8, "new_call_us": 45.0, "bytes_per_call": 360},
            "1000000": {"seconds": 3.5, "cold_seconds": 9.0, "peak_mb": 1500, "new_call_us": 60.0,
                        "bytes_per_call": 450, "cold_how": "drop_caches"},
        },
        "joblib": {"10000": {"new_call_us": 900.0, "bytes_per_call": 8000, "over_budget": True}},
        "mandala": {"1000": {"seconds": 0.6}, "10000": {"seconds": 7.0, "new_call_us": 8000.0, "over_budget": True}},
    },
    "W6": {"memostore": {"10000": {"seconds": 0.05}}, "mandala": {"10000": {"seconds": 0.14}}},
    "W7": {"memostore": {"16 x 0.25 s": {"seconds": 2.0, "how": "storage.map"}},
           "joblib": {"16 x 0.25 s": {"seconds": 2.1, "how": "Parallel"}}},
    "W8": {"memostore": {"10,000 calls": {"unwrap_us": 10.0, "load_ref_us": 30.0}},
           "mandala": {"error": {"message": "boom"}}},
}


def row(markdown: str, label: str) -> list[str]:
    """The cells of the table row whose first cell starts with ``label``."""
    for line in markdown.splitlines():
        if line.startswith(f"| {label}"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row {label!r} in:\n{markdown}")


@pytest.fixture(scope="module")
def markdown() -> str:
    return report.render_markdown(RESULTS)


def test_new_call_cost_as_the_store_grows_is_held_to_its_10k_cost(markdown):
    assert row(markdown, "New call on disk, store of 10,000 calls") == [
        row(markdown, "New call on disk, store of 10,000 calls")[0], "40.0", "900.0 (22x) †", "8,000.0 (200x) †",
        "≤ 50 µs ✓"]
    assert row(markdown, "New call on disk, store of 100,000 calls")[1:] == ["45.0", "—", "—", ""]
    assert row(markdown, "New call on disk, store of 1,000,000 calls")[1:] == [
        "60.0", "—", "—", "≤ 1.3 × its 10k cost = 52.0 µs ✗"]
    assert row(markdown, "New call on disk, store of 10,000,000 calls")[1:] == [
        "—", "—", "—", "≤ 1.3 × its 10k cost = 52.0 µs (not run)"]


def test_bytes_per_call_and_the_frame_at_a_million_calls(markdown):
    assert row(markdown, "Bytes on disk per stored call, 10,000 calls")[1:] == [
        "350", "8,000 (23x) †", "—", "≤ 400 bytes ✓"]
    assert row(markdown, "Bytes on disk per stored call, 1,000,000 calls")[-1] == "≤ 400 bytes ✗"
    assert row(markdown, "Table of a whole store: `cf(op).expand_all().df()`, 1,000,000 calls")[1:] == [
        "3.50", "—", "—", "< 4 s ✓"]
    assert row(markdown, "Table of a whole store: `cf(op).expand_all().df()`, 10,000 calls")[1:] == [
        "0.20", "—", "7.00 (35x) †", ""]
    assert row(markdown, "The same table right after the page cache was dropped")[1:] == ["9.00", "—", "—", "< 8 s ✗"]
    assert row(markdown, "The same table, peak memory")[1:] == ["1,500", "—", "—", "< 2 GB (2,048 MB) ✓"]
    assert "The page cache was dropped by: drop_caches." in markdown


def test_drop_lookups_and_the_parallel_map(markdown):
    assert row(markdown, "Drop half of 10,000 calls")[1:] == ["0.050", "—", "0.140 (3x)", "< 0.1 s ✓"]
    assert row(markdown, "Load one small stored value")[1:] == ["10.0", "—", "failed (results.json)", "≤ 20 µs ✓"]
    assert row(markdown, "`load_ref(hid)`")[-1] == "≤ 20 µs ✗"
    assert row(markdown, "`get_consumers(ref)`")[1:] == ["—", "—", "failed (results.json)", "≤ 20 µs (not run)"]
    assert row(markdown, "16 calls of 0.25 s on 2 processes")[1:] == ["2.00", "2.10 (1.1x)", "—", "≤ joblib's 2.10 s ✓"]
    assert row(markdown, "The same map over 10,000 items, all stored")[1:] == ["—", "—", "—", "< 0.2 s (not run)"]


def test_the_rendered_text_names_workloads_by_what_they_do(markdown):
    assert not re.search(r"\bW\d\b|issue|seed", markdown, re.IGNORECASE)


def test_an_empty_run_renders_every_figure_as_missing():
    markdown = report.render_markdown({})
    assert row(markdown, "New call on disk, store of 1,000,000 calls")[1:] == [
        "—", "—", "—", "≤ 1.3 × its 10k cost (not run)"]
    assert row(markdown, "Bytes on disk per stored call, 10,000 calls")[1:] == ["—", "—", "—", "≤ 400 bytes (not run)"]


def test_write_report_keeps_the_dask_section_and_draws_the_plot(tmp_path):
    pytest.importorskip("matplotlib")
    markdown, plot = tmp_path / "RESULTS.md", tmp_path / "scaling.png"
    dask = "<!-- dask-figures:start -->\n## Dask\nfigures\n<!-- dask-figures:end -->"
    markdown.write_text("# old table\n\n" + dask + "\n")
    report.write_report(RESULTS, markdown, plot)
    text = markdown.read_text()
    assert text.startswith("# memostore against its peers") and "# old table" not in text
    assert text.count(dask) == 1
    assert plot.read_bytes().startswith(b"\x89PNG")
