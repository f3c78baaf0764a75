"""The walkthrough book (``scripts/build_book.py``, ``make book``).

Fast tests check what the builder decides without Sphinx: a missing or stale executed
notebook is named with the command that refreshes it, claims are anchored at the cell
that declares them, every public name of the package gets an API entry, links point
inside the book. The slow tests execute one notebook in the smoke profile, build the
book from it, serve it on 127.0.0.1 and open every page in headless Chromium with every
other host unreachable: no console error, no failed request, every internal link and
image resolves, and the kernel-free explorer redraws when its slider moves. Screenshots
go to ``build/book-shots/`` (kept for a person to look at, and on failure).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from drsl_utils import suite

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "book-shots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_book",
                                                  ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_book"] = module
    spec.loader.exec_module(module)
    return module


book = _load_builder()


# ----------------------------------------------------------------- without Sphinx

def _fresh(nb_dir: Path, fig_dir: Path, stem: str, profile: str = "smoke",
           status: str = "ok") -> None:
    """Make ``stem`` look as the main job leaves a notebook it ran successfully."""
    src = nb_dir / f"{stem}.ipynb"
    executed = nb_dir / "executed"
    executed.mkdir(exist_ok=True)
    shutil.copy(src, executed / src.name)
    (executed / f".{stem}.inputs").write_text(suite._inputs_hash(src, profile, fig_dir) + "\n")
    (fig_dir / "meta").mkdir(parents=True, exist_ok=True)
    (fig_dir / "meta" / f"{stem}.json").write_text(json.dumps({
        "notebook": stem, "profile": profile, "status": status, "evidence": [],
        "figures": [{"name": f"{stem}_fig", "caption": f"A figure of {stem}."}]}))
    (fig_dir / f"{stem}_fig.png").write_bytes(b"\x89PNG not really")


@pytest.fixture()
def two_notebooks(tmp_path):
    nb_dir, fig_dir = tmp_path / "nbs", tmp_path / "figs"
    nb_dir.mkdir()
    fig_dir.mkdir()
    for name in ("00_tour", "03_second_softmax"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", nb_dir)
    return nb_dir, fig_dir


def test_missing_notebooks_are_named_with_the_command_that_runs_them(two_notebooks):
    nb_dir, fig_dir = two_notebooks
    stale = book.check_executed("smoke", fig_dir, nb_dir)
    assert [s.notebook for s in stale] == ["00_tour", "03_second_softmax"]
    assert all("never executed" in s.reason for s in stale)
    with pytest.raises(book.BookError) as err:
        book.stage("smoke", fig_dir, nb_dir, src_dir=nb_dir.parent / "src")
    msg = str(err.value)
    assert "00_tour" in msg and "03_second_softmax" in msg
    assert (f"python -m drsl_utils.suite --profile smoke --figures-dir {fig_dir} "
            f"--notebook-dir {nb_dir}") in msg
    # A missing notebook stays an error even when stale pages are allowed.
    with pytest.raises(book.BookError, match="never executed"):
        book.stage("smoke", fig_dir, nb_dir, src_dir=nb_dir.parent / "src", allow_stale=True)


def test_fresh_notebook_passes_and_stale_ones_say_why(two_notebooks):
    nb_dir, fig_dir = two_notebooks
    _fresh(nb_dir, fig_dir, "00_tour")
    _fresh(nb_dir, fig_dir, "03_second_softmax")
    assert book.check_executed("smoke", fig_dir, nb_dir) == []
    # The notebook's source changes: its inputs hash no longer matches.
    nb = json.loads((nb_dir / "00_tour.ipynb").read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "new", "metadata": {}, "source": "x"})
    (nb_dir / "00_tour.ipynb").write_text(json.dumps(nb))
    # The other failed in its last run; another profile's stamps do not count.
    _fresh(nb_dir, fig_dir, "03_second_softmax", status="failed")
    reasons = {s.notebook: s.reason for s in book.check_executed("smoke", fig_dir, nb_dir)}
    assert "inputs changed" in reasons["00_tour"]
    assert "failed" in reasons["03_second_softmax"]
    assert {s.notebook for s in book.check_executed("quick", fig_dir, nb_dir)} == {
        "00_tour", "03_second_softmax"}
    with pytest.raises(book.BookError) as err:
        book.stage("smoke", fig_dir, nb_dir, src_dir=nb_dir.parent / "src")
    # Both are stale: the command re-runs the folder, no --only.
    assert str(err.value).split("Refresh them with:\n  ")[1].startswith(
        f".venv/bin/python -m drsl_utils.suite --profile smoke --figures-dir {fig_dir} "
        f"--notebook-dir {nb_dir}\n")


def test_refresh_command_matches_how_the_main_job_was_run(tmp_path):
    one = [book.Stale("02_attacks", "x")]
    assert book.refresh_command("quick", one) == 'make figures SUITE_ARGS="--only 02"'
    assert book.refresh_command("smoke", one, everything=True) == "make figures PROFILE=smoke"
    assert book.refresh_command("smoke", one, tmp_path) == (
        f".venv/bin/python -m drsl_utils.suite --profile smoke --figures-dir {tmp_path} "
        "--only 02")


def test_staged_source_links_claims_to_cells_and_covers_the_api(two_notebooks):
    from drsl_utils import claims as C

    nb_dir, fig_dir = two_notebooks
    _fresh(nb_dir, fig_dir, "00_tour")
    _fresh(nb_dir, fig_dir, "03_second_softmax")
    tour = C.CLAIMS["tour-drsl-harder"]
    (fig_dir / "claims.md").write_text(
        "# Claims report\n\n## Primary claims (one Holm family)\n\n"
        "1 claims: 1 holds, 0 does not hold, 0 inconclusive\n\n"
        "| claim | estimand (SESOI) | measured | bounds | p | verdict | replication | power | "
        "seeds needed | note | context | notebook |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {tour.statement} | e | m | [1, 2] | 0.1 | **holds** | 0.9 | 0.8 | 3 | n \\| x | c "
        "| `00_tour` |\n\n"
        "## Attack calibration\n\n| claim | decided by | flagged |\n|---|---|---|\n"
        "| `tour-drsl-harder` | pgd | no |\n\n"
        "## Smallest effects of interest\n\n| claim id | SESOI | why |\n|---|---|---|\n"
        "| `tour-drsl-harder` | 2.0 pp | because |\n")
    src = book.stage("smoke", fig_dir, nb_dir, src_dir=nb_dir.parent / "src")
    claims_page = (src / "claims.md").read_text()
    assert "{ref}`00_tour <claim-tour-drsl-harder>`" in claims_page
    assert claims_page.count("{ref}`tour-drsl-harder <claim-tour-drsl-harder>`") == 2
    # The verdict and the link sit next to the claim; the long columns follow.
    assert ("| claim | verdict | measured | bounds | p | notebook | estimand (SESOI) | "
            "replication | power | seeds needed | note | context |") in claims_page
    assert (f"| {tour.statement} | **holds** | m | [1, 2] | 0.1 | "
            "{ref}`00_tour <claim-tour-drsl-harder>` | e | 0.9 | 0.8 | 3 | n \\| x | c |"
            ) in claims_page
    staged = json.loads((src / "notebooks" / "00_tour.ipynb").read_text())
    anchors = [i for i, c in enumerate(staged["cells"])
               if "(claim-tour-drsl-harder)=" in "".join(c["source"])]
    assert len(anchors) == 1
    assert '"tour-drsl-harder"' in "".join(staged["cells"][anchors[0] + 1]["source"])
    landing = (src / "index.md").read_text()
    assert "{{" not in landing and "1 primary claims (1 holds" in landing
    # A link to a notebook that is not in this build is plain text, not a broken link.
    assert "(notebooks/02_attacks.ipynb)" not in landing
    assert "(notebooks/00_tour.ipynb)" in landing
    assert (src / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert (src / "figures" / "00_tour_fig.png").exists()
    # Every public name of every module has an entry on its API page.
    for path in sorted((ROOT / "drsl_utils").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        page = (src / "api" / f"{path.stem}.md").read_text()
        names, _ = book._public_names(path)
        for name in names:
            assert re.search(rf"^\.\. (autoclass|autofunction|py:data):: {name}$", page,
                             re.MULTILINE), f"{path.stem}.{name} has no API entry"
    # The README sections the book includes are there, and so is the verdict rule.
    readme = (ROOT / "README.md").read_text()
    for title in (*book.README_SECTIONS, book.VERDICT_SECTION):
        assert f"\n## {title}\n" in readme, f"README.md lost its section {title!r}"
    assert f"## {book.VERDICT_SECTION}" in claims_page
    # Pages included from the README and docs/cluster.md link only inside the book.
    for page in ("reproducibility.md", "cluster.md", "claims.md"):
        text = (src / page).read_text()
        for target in re.findall(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)", text):
            assert re.match(r"[a-z]+://", target) or target.startswith("#") or (
                target.split("#")[0] in {"cluster.md", "claims.md", "gallery.md", "index.md"}
                or target.startswith("notebooks/")), f"{page} links to {target}, outside the book"


def test_teaching_page_is_staged_and_links_only_notebooks_in_the_build(two_notebooks):
    nb_dir, fig_dir = two_notebooks
    _fresh(nb_dir, fig_dir, "00_tour")
    _fresh(nb_dir, fig_dir, "03_second_softmax")
    src = book.stage("smoke", fig_dir, nb_dir, src_dir=nb_dir.parent / "src")
    teaching = (src / "teaching.md").read_text()
    assert "](notebooks/00_tour.ipynb#exercises)" in teaching
    assert "](notebooks/03_second_softmax.ipynb)" in teaching
    # 02 is not in this build: its links are plain text, not broken links.
    assert "notebooks/02_attacks.ipynb" not in teaching and "02 · every attack" in teaching
    assert "\nteaching\n" in (src / "index.md").read_text().split("```{toctree}")[1]


def test_relink_keeps_links_inside_the_book():
    text = ("[a](docs/cluster.md) [b](#profiles) [c](#elsewhere) [d](drsl_utils/claims.py) "
            "[e](figures/claims.md) ![img](x.png) [f](https://example.org/)")
    out = book._relink(text, {"profiles"})
    assert out == ("[a](cluster.md) [b](#profiles) c d [e](claims.md) ![img](x.png) "
                   "[f](https://example.org/)")


def test_external_resources_are_found_and_plain_links_are_not(tmp_path):
    (tmp_path / "a.html").write_text(
        '<a href="https://example.org/">a link is not a load</a>'
        '<script src="https://cdn.example.org/x.js"></script>')
    (tmp_path / "b.css").write_text("body{background:url(//fonts.example.org/f.woff)}")
    (tmp_path / "c.html").write_text('<script src="_static/plotly.min.js"></script>')
    found = book.external_resources(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("a.html") and found[1].startswith("b.css")


# ----------------------------------------------------------------- the built book

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One notebook with a kernel-free explorer (03) executed by the main job in the
    smoke profile, the book built from it, and a server for it on 127.0.0.1."""
    work = tmp_path_factory.mktemp("book")
    for old_shot in SHOTS.glob("failure_*.png"):  # only this run's failures stay
        old_shot.unlink()
    nb_dir, fig_dir = work / "nbs", work / "figs"
    nb_dir.mkdir()
    shutil.copy(ROOT / "notebooks" / "03_second_softmax.ipynb", nb_dir)
    old = os.environ.get("DRSL_CACHE_DIR")
    os.environ["DRSL_CACHE_DIR"] = str(work / "cache")
    try:
        suite.run_suite("smoke", fig_dir=fig_dir, notebook_dir=nb_dir, jobs=1)
    finally:
        if old is None:
            os.environ.pop("DRSL_CACHE_DIR", None)
        else:
            os.environ["DRSL_CACHE_DIR"] = old
    start = time.perf_counter()
    # The staleness rule has tests of its own (above); here an edit of the package while
    # the notebook ran (another process in the same checkout) must not stop the build.
    index = book.build_book("smoke", fig_dir, nb_dir, out_dir=work / "site",
                            src_dir=work / "src", allow_stale=True)
    print(f"book built in {time.perf_counter() - start:.1f} s")
    out = index.parent
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - keep the test log readable
        pass


def _pages(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.html")
                  if not {"_static", "_sources", "_images"} & set(p.relative_to(out).parts))


class _Refs(HTMLParser):
    """Every link, image, script and stylesheet of a page, and every id in it."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self._last = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if "name" in a and tag == "a":
            self.ids.add(a["name"])
        if "problematic" in (a.get("class") or "").split():
            # docutils' marker of a reST error in a docstring (the builder counts those):
            # its link points at an error message that the page does not show.
            if self.refs and self.refs[-1][0] == "a" and self._last == "a":
                self.refs.pop()
        self._last = tag
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "script", "link"):
                self.refs.append((tag, a[key]))


@functools.cache
def _parse(path: Path) -> _Refs:
    parser = _Refs()
    parser.feed(path.read_text())
    return parser


@pytest.mark.slow
def test_site_is_offline_light_and_complete(site):
    out, _ = site
    assert book.external_resources(out) == []
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 50 * 2**20, f"the site is {size / 2**20:.1f} MB"
    # plotly.js ships once, and every page loads that one copy.
    assert len(list(out.rglob("plotly*.js"))) == 1
    pages = _pages(out)
    names = {p.relative_to(out).as_posix() for p in pages}
    assert {"index.html", "claims.html", "gallery.html", "reproducibility.html",
            "cluster.html", "api/index.html", "notebooks/03_second_softmax.html"} <= names
    for page in pages:  # loaded where an output calls Plotly, and only there
        loads = any(urlsplit(src).path.endswith("_static/plotly.min.js")
                    for tag, src in _parse(page).refs if tag == "script")
        assert loads == ("Plotly" in page.read_text().replace("plotly.min.js", "")), page.name
    assert "Plotly" in (out / "notebooks" / "03_second_softmax.html").read_text()
    # Every public function and class of the package has its entry in the API pages.
    ids = set().union(*(_parse(p).ids for p in pages if p.parts[-2] == "api"))
    for path in sorted((ROOT / "drsl_utils").glob("*.py")):
        if not path.stem.startswith("_"):
            for name in book._public_names(path)[0]:
                assert f"drsl_utils.{path.stem}.{name}" in ids, f"no API entry for {name}"
    # The claims report links the notebook's cell that declares the claim.
    claims_refs = [h for t, h in _parse(out / "claims.html").refs if t == "a"]
    assert any(re.match(r"notebooks/03_second_softmax\.html#claim-", h) for h in claims_refs)


@pytest.mark.slow
def test_teaching_page_is_built_and_linked_from_the_landing_page(site):
    out, _ = site
    assert "teaching.html" in {h for t, h in _parse(out / "index.html").refs if t == "a"}
    refs = {h for t, h in _parse(out / "teaching.html").refs if t == "a"}
    assert "notebooks/03_second_softmax.html#exercises" in refs
    # The notebook's solutions are folded: MyST-NB's <details>, with our prompt.
    page = (out / "notebooks" / "03_second_softmax.html").read_text()
    assert page.count("Show the solution") >= 2 and "hide-cell" in page


@pytest.mark.slow
def test_every_internal_link_and_image_resolves(site):
    out, _ = site
    broken = []
    for page in _pages(out):
        for tag, ref in _parse(page).refs:
            if re.match(r"[a-z][a-z0-9+.-]*:", ref) or ref.startswith("//"):
                continue  # another scheme (mailto:, https: links in text) is not a load
            path, frag = urldefrag(ref)
            target = page if not path else (page.parent / unquote(urlsplit(path).path))
            target = target.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists() or out.resolve() not in target.parents:
                broken.append(f"{page.relative_to(out)}: <{tag}> {ref}")
            elif frag and target.suffix == ".html" and frag not in _parse(target).ids:
                broken.append(f"{page.relative_to(out)}: <{tag}> {ref} (no id {frag!r})")
    assert not broken, "\n".join(broken[:40])


def _driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1500,1200", "--disable-gpu",
                "--allow-file-access-from-files",
                # Nothing but the local server answers: a fetch elsewhere fails loudly.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def _problems(driver) -> list[str]:
    """Console errors and failed requests since the last call."""
    out = [f"console: {e['message']}" for e in driver.get_log("browser")
           if e["level"] == "SEVERE"]
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.loadingFailed" and not msg["params"].get("canceled"):
            out.append(f"request failed: {msg['params'].get('errorText')}")
        elif msg["method"] == "Network.responseReceived":
            resp = msg["params"]["response"]
            if resp.get("status", 200) >= 400:
                out.append(f"HTTP {resp['status']}: {resp['url']}")
    return out


def _open(driver, url: str) -> None:
    driver.get(url)
    end = time.time() + 30
    while driver.execute_script("return document.readyState") != "complete":
        if time.time() > end:
            raise AssertionError(f"{url} did not finish loading")
        time.sleep(0.05)


_BROKEN_IMAGES = ("return Array.from(document.images).filter("
                  "i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no chromium/chromedriver (apt-get install chromium chromium-driver)")


@pytest.mark.slow
@needs_browser
def test_every_page_loads_in_a_browser_with_no_error(site):
    out, base = site
    SHOTS.mkdir(parents=True, exist_ok=True)
    keep = {"index.html": "landing", "claims.html": "claims", "api/stats.html": "api",
            "notebooks/03_second_softmax.html": "notebook"}
    driver = _driver()
    failures = []
    try:
        for page in _pages(out):
            rel = page.relative_to(out).as_posix()
            _open(driver, f"{base}/{rel}")
            time.sleep(0.2)  # late console messages and image decodes
            problems = _problems(driver) + [f"image did not load: {src}" for src in
                                            driver.execute_script(_BROKEN_IMAGES)]
            if problems:
                failures.append(f"{rel}: " + "; ".join(problems))
                driver.save_screenshot(str(SHOTS / f"failure_{rel.replace('/', '_')}.png"))
            if rel in keep:
                driver.save_screenshot(str(SHOTS / f"{keep[rel]}.png"))
        # The same site from disk, with no server at all.
        for rel in ("index.html", "notebooks/03_second_softmax.html"):
            _open(driver, (out / rel).as_uri())
            time.sleep(0.2)
            problems = _problems(driver) + driver.execute_script(_BROKEN_IMAGES)
            if problems:
                failures.append(f"file://{rel}: {problems}")
                driver.save_screenshot(str(SHOTS / f"failure_file_{rel.replace('/', '_')}.png"))
    finally:
        driver.quit()
    assert not failures, "\n".join(failures[:20])


@pytest.mark.slow
@needs_browser
def test_kernel_free_explorer_redraws_when_its_slider_moves(site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out, base = site
    page = out / "notebooks" / "03_second_softmax.html"
    if "drsl-sweep-static" not in page.read_text():
        pytest.skip("the executed 03 has no kernel-free explorer")
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver = _driver()
    try:
        _open(driver, f"{base}/notebooks/03_second_softmax.html")
        box = driver.find_element(By.CSS_SELECTOR, ".drsl-sweep-static")
        driver.execute_script("arguments[0].scrollIntoView()", box)
        plot = box.find_element(By.CSS_SELECTOR, ".drsl-plot")
        caption = box.find_element(By.CSS_SELECTOR, ".drsl-caption")
        end = time.time() + 20
        while not (plot.is_displayed() and box.find_elements(By.CSS_SELECTOR,
                                                             ".drsl-plot.js-plotly-plot")):
            assert time.time() < end, "the explorer never drew its plotly figure"
            time.sleep(0.05)
        driver.save_screenshot(str(SHOTS / "explorer_before.png"))
        before = (caption.text, plot.get_attribute("innerHTML"))
        slider = box.find_element(By.CSS_SELECTOR, "input[type=range]")
        slider.click()
        slider.send_keys(Keys.HOME)  # from one end of the sweep to the other
        first = (caption.text, plot.get_attribute("innerHTML"))
        slider.send_keys(Keys.END)
        end = time.time() + 10
        while (caption.text, plot.get_attribute("innerHTML")) in (first, ):
            assert time.time() < end, "moving the slider changed nothing"
            time.sleep(0.05)
        after = (caption.text, plot.get_attribute("innerHTML"))
        assert after != first and (before != first or before != after)
        driver.save_screenshot(str(SHOTS / "explorer_after.png"))
        assert not _problems(driver)
    except BaseException:
        driver.save_screenshot(str(SHOTS / "failure_explorer.png"))
        raise
    finally:
        driver.quit()
