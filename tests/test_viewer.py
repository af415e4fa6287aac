"""``memostore serve``: the read-only browser view, driven in a real headless Chromium.

The store is built here; the viewer runs as a real ``python -m memostore serve``
subprocess on a free loopback port; Debian's chromium and chromium-driver,
through selenium, visit and click the pages. Set MEMOSTORE_SCREENSHOTS=DIR to
keep screenshots of the main pages there (the README's come from this).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from memostore import Storage, op

from helpers import REPO_ROOT

pytest.importorskip("starlette", reason='pip install -e ".[viewer]" to test the viewer')
webdriver = pytest.importorskip("selenium.webdriver", reason='pip install -e ".[test]" to test the viewer')
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900"]
START_DEADLINE_S = 60


@op
def load_table(n):
    return pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.arange(n, dtype=float) ** 2})


def normalize_v1(table):
    return table["y"].to_numpy() / table["y"].max()


def normalize_v2(table):
    spread = table["y"].max() - table["y"].min()
    return (table["y"].to_numpy() - table["y"].min()) / spread


# One function edited between two runs, as in a project: the same name and qualname, two versions.
for _edit in (normalize_v1, normalize_v2):
    _edit.__name__ = _edit.__qualname__ = "normalize"
normalize_v1, normalize_v2 = op(normalize_v1), op(normalize_v2)


@op
def fit(features):
    return types.SimpleNamespace(slope=float(features[-1]), intercept=0.0)  # stored pickled


@op
def score(model, features):
    return round(float(np.abs(features - model.slope).mean()), 4)


@op
def plot(features):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2), dpi=60)
    figure.add_subplot().plot(features, marker="o")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@op
def chart(features):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2), dpi=50)
    figure.add_subplot().bar(range(len(features)), features)
    return figure  # stored as its images (a StoredFigure), no pickle


@op
def check(x):
    if x < 0:
        raise ValueError(f"x must not be negative, got {x}")
    return x * 10


def build(db: Path) -> None:
    """Two versions of normalize, a DataFrame, arrays, a pickled value, a PNG, 30 checks (one failed)."""
    storage = Storage(db_path=db)
    with storage.run("first look", tags={"rows": "6"}):
        table = load_table(6)
        features = normalize_v1(table)
        model = fit(features)
        score(model, features)
        plot(features)
        chart(features)
    with storage:
        for n in (4, 6):
            normalize_v2(load_table(n))
    checks = [{"x": -1}] + [{"x": x} for x in range(100, 129)]  # no value shared with the others
    storage.map(check, checks, on_error="record", progress=False)
    storage.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(db: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """``memostore serve DB`` in a subprocess; returns it and its URL once it answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "memostore", "serve", db.name, "--port", str(port), *options],
                               env=env, cwd=db.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=5).close()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the viewer did not start: {process.communicate()[0].decode()}") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.communicate(timeout=30)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("viewer") / "runs.db"
    build(db)
    return db


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    process, url = serve(store)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no browser: install Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """Keep a full-page PNG of the current page when MEMOSTORE_SCREENSHOTS names a directory."""
    directory = os.environ.get("MEMOSTORE_SCREENSHOTS")
    if directory:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(height + 150, 600), 1800))
        driver.save_screenshot(str(Path(directory) / f"viewer_{name}.png"))
        driver.set_window_size(1280, 900)


def follow(driver: webdriver.Chrome, element) -> None:  # type: ignore[no-untyped-def]
    """Click a link or button and wait until the page it leads to has loaded."""
    # A mark on the old page's window: gone once the next page replaced it (no stale-node races).
    driver.execute_script("window.memostoreOldPage = true")
    element.click()
    WebDriverWait(driver, START_DEADLINE_S).until(lambda d: d.execute_script(
        "return !window.memostoreOldPage && document.readyState === 'complete'"))


def link(driver: webdriver.Chrome, text: str):  # type: ignore[no-untyped-def]
    return driver.find_element(By.LINK_TEXT, text)


def cell_texts(driver: webdriver.Chrome, table_id: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def test_click_from_the_overview_to_an_op_to_a_call(server, browser, store):
    browser.get(server + "/")
    assert browser.title.startswith("Overview")
    ops = {row[0]: row for row in cell_texts(browser, "ops")}
    assert set(ops) == {"chart", "check", "fit", "load_table", "normalize", "plot", "score"}
    assert ops["normalize"][1:3] == ["2", "3"] and ops["check"][2] == "30"  # versions, calls
    assert "calls=39" in browser.find_element(By.ID, "counts").text
    assert browser.find_element(By.ID, "size").text.endswith("bytes")
    screenshot(browser, "overview")

    follow(browser, link(browser, "normalize"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "op normalize"
    assert len(cell_texts(browser, "versions")) == 2
    newest = browser.find_element(By.CSS_SELECTOR, "details.version[open]")
    diff = newest.find_element(By.CSS_SELECTOR, "pre.diff").text
    assert '-    return table["y"].to_numpy() / table["y"].max()' in diff
    assert 'spread = table["y"].max()' in newest.find_element(By.CSS_SELECTOR, "pre.source").text
    calls = cell_texts(browser, "calls")
    assert len(calls) == 3 and {row[2] for row in calls} == {"ok"}
    screenshot(browser, "op")

    first_v1 = [row for row in calls if row[1] == cell_texts(browser, "versions")[0][0]][0]
    follow(browser, link(browser, first_v1[0]))
    assert browser.find_element(By.ID, "status").text == "ok"
    table = browser.find_element(By.ID, "input-table")
    assert "DataFrame, 6 rows x 2 columns" in table.text
    assert len(table.find_elements(By.CSS_SELECTOR, "table.value tbody tr")) == 6
    assert "array 6, float64" in browser.find_element(By.ID, "output-output_0").text
    used_by = browser.find_elements(By.CSS_SELECTOR, "#output-output_0 a.consumer")
    consumers = {a.text.split(" call ")[0] for a in used_by}
    assert consumers == {"chart", "fit", "score", "plot"}
    screenshot(browser, "call")

    follow(browser, table.find_element(By.CSS_SELECTOR, "a.creator"))  # to the call that produced the input
    assert browser.find_element(By.TAG_NAME, "h1").text.endswith("of load_table")
    assert browser.find_element(By.CSS_SELECTOR, "#input-n code").text == "6"
    follow(browser, browser.find_element(By.ID, "op-link"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "op load_table"


def open_only_call_of(browser, server: str, op_name: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{server}/op/{op_name}")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#calls tbody tr td a"))


def test_values_the_store_would_unpickle_are_not_loaded_and_images_show(server, browser):
    open_only_call_of(browser, server, "fit")
    assert "pickled, not loaded" in browser.find_element(By.ID, "output-output_0").text
    open_only_call_of(browser, server, "score")
    assert "pickled, not loaded" in browser.find_element(By.ID, "input-model").text
    screenshot(browser, "call_untrusted")
    assert browser.find_element(By.CSS_SELECTOR, "#output-output_0 code").text.startswith("0.")
    open_only_call_of(browser, server, "chart")  # a figure is stored as images: shown without unpickling
    figure = browser.find_element(By.CSS_SELECTOR, "#output-output_0 img.value")
    assert browser.execute_script("return arguments[0].naturalWidth", figure) > 0
    open_only_call_of(browser, server, "plot")
    image = browser.find_element(By.CSS_SELECTOR, "#output-output_0 img.value")
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 180  # 3 in at 60 dpi


def test_runs_on_the_overview_lead_to_a_run_page_and_its_calls(server, browser):
    browser.get(server + "/")
    runs = cell_texts(browser, "runs")  # newest first
    assert [row[1] for row in runs] == ["", "", "first look"] and [row[3] for row in runs] == ["map", "block", "block"]
    assert runs[2][2] == "rows=6" and runs[2][6:9] == ["6", "0", "0"]  # computed, found stored, failed
    assert runs[1][6:8] == ["3", "1"] and runs[0][6:9] == ["29", "0", "1"]  # load_table(6) found stored
    follow(browser, link(browser, runs[2][0]))
    assert browser.find_element(By.TAG_NAME, "h1").text == f"run {runs[2][0]} first look"
    assert browser.find_element(By.ID, "run-tags").text == "rows=6"
    assert browser.find_element(By.ID, "run-computed").text == "6"
    calls = cell_texts(browser, "run-calls")
    assert [row[0] for row in calls] == ["load_table", "normalize", "fit", "score", "plot", "chart"]
    assert {row[2] for row in calls} == {"computed here"}
    screenshot(browser, "run")
    browser.get(server + "/run/" + runs[1][0])
    assert sorted((row[0], row[2]) for row in cell_texts(browser, "run-calls")) == [
        ("load_table", "computed here"), ("load_table", "found stored"),
        ("normalize", "computed here"), ("normalize", "computed here")]
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#run-calls a.call-link"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("call ")
    browser.get(server + "/run/999")
    assert "no run 999" in browser.page_source


def test_calls_table_filters_by_status_and_pages(server, browser):
    browser.get(server + "/op/check")
    assert browser.find_element(By.ID, "calls-total").text == "30 calls"
    assert len(cell_texts(browser, "calls")) == 25
    assert "page 1 of 2" in browser.find_element(By.CLASS_NAME, "pager").text
    follow(browser, browser.find_element(By.ID, "older"))
    assert len(cell_texts(browser, "calls")) == 5 and "page 2 of 2" in browser.find_element(By.CLASS_NAME, "pager").text
    Select(browser.find_element(By.NAME, "status")).select_by_value("failed")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    (row,) = cell_texts(browser, "calls")
    assert row[2] == "failed" and "ValueError: x must not be negative, got -1" in row[6]
    assert row[5] == "x=-1"
    follow(browser, link(browser, row[0]))
    assert browser.find_element(By.ID, "status").text == "failed"
    assert browser.find_element(By.ID, "error").text == "builtins.ValueError: x must not be negative, got -1"
    assert "No outputs: the call failed." in browser.page_source


def test_version_filter_keeps_one_version(server, browser):
    browser.get(server + "/op/normalize")
    old = cell_texts(browser, "versions")[0][0]
    Select(browser.find_element(By.NAME, "version")).select_by_value(old)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    assert [row[1] for row in cell_texts(browser, "calls")] == [old]


def test_op_graph_nodes_link_to_op_pages(server, browser):
    browser.get(server + "/graph")
    parts = [set(svg.text.split()) for svg in browser.find_elements(By.CSS_SELECTOR, "#graph svg")]
    assert len(parts) == 2  # check shares no value with the pipeline
    pipeline, checks = sorted(parts, key=lambda words: "check" in words)
    assert "check" in checks and {"chart", "load_table", "normalize", "fit", "score", "plot"} <= pipeline
    assert "3 calls" in browser.find_element(By.CSS_SELECTOR, '#graph a[*|href="/op/normalize"]').text
    screenshot(browser, "graph")
    follow(browser, browser.find_element(By.CSS_SELECTOR, '#graph a[*|href="/op/fit"]'))
    assert browser.find_element(By.TAG_NAME, "h1").text == "op fit"


def test_unknown_op_or_call_is_a_404_page(server, browser):
    for path, detail in (("/op/nope", "no op named 'nope' is stored"), ("/call/" + "0" * 32, "no call with hid")):
        browser.get(server + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == "404"
        assert detail in browser.find_element(By.ID, "detail").text


def test_nothing_can_write_to_the_store(server, store):
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/op/check", "/graph"):
            request = urllib.request.Request(server + path, data=b"x=1", method=method)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            refused.value.close()
            assert refused.value.code == 405
    for path in ("/", "/op/normalize", "/op/check?page=2", "/graph"):
        urllib.request.urlopen(server + path, timeout=30).close()
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_the_store_is_opened_read_only(store):
    from memostore.viewer import open_read_only

    storage = open_read_only(str(store))
    with pytest.raises(Exception, match="readonly"):
        with storage:
            check(1000)


def test_the_viewer_refuses_a_missing_store_without_creating_it(tmp_path):
    from memostore import StoreLocationError
    from memostore.viewer import open_read_only

    with pytest.raises(StoreLocationError, match="no store at .*none.db.*does not exist") as raised:
        open_read_only(str(tmp_path / "none.db"))
    assert isinstance(raised.value, OSError) and not (tmp_path / "none.db").exists()


def test_a_postgres_store_is_opened_read_only(postgres_url):
    from memostore.viewer import open_read_only
    from memostore.viewer.pages import call_detail

    storage = Storage(db_url=postgres_url)
    storage.map(check, [{"x": 1}, {"x": -1}], on_error="record", progress=False)
    storage.close()
    viewer = open_read_only(postgres_url)
    failed = [c for c in viewer.calls_of("check") if c.status == "failed"]
    assert call_detail(viewer, failed[0].hid)["inputs"][0]["preview"].short == "-1"
    with pytest.raises(Exception, match="read-only transaction"):
        with viewer:
            check(1000)


def test_trusted_viewer_loads_pickled_values(store, browser):
    process, url = serve(store, "--trust")
    try:
        open_only_call_of(browser, url, "fit")
        assert "namespace(slope=1.0, intercept=0.0)" in browser.find_element(By.ID, "output-output_0").text
        open_only_call_of(browser, url, "chart")
        figure = browser.find_element(By.CSS_SELECTOR, "#output-output_0 img.value")
        assert figure.get_attribute("alt") == "matplotlib figure"
        assert browser.execute_script("return arguments[0].naturalWidth", figure) > 0
    finally:
        stop(process)


def test_serve_says_what_to_install_or_what_is_missing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    code = "import sys; sys.modules['starlette'] = None; from memostore.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "serve", str(tmp_path / "runs.db")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and 'pip install "memostore[viewer]"' in result.stderr
    result = subprocess.run([sys.executable, "-m", "memostore", "serve", str(tmp_path / "none.db")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no store at" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_pages_answer_only_requests_that_name_this_machine(server):
    # A page elsewhere pointing a name of its own at 127.0.0.1 (DNS rebinding) gets nothing.
    request = urllib.request.Request(server + "/", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    refused.value.close()
    assert refused.value.code == 400
    for page in ("%C2%B2", "9" * 5000, "-3", "abc"):  # not a plain small number: the first page
        with urllib.request.urlopen(f"{server}/op/check?page={page}", timeout=30) as response:
            assert response.status == 200
