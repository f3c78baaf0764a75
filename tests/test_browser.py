"""The explorers in a real browser: JupyterLab on 127.0.0.1 with a token, headless
Chromium driven by selenium, the explorers notebook run with "Run All Cells".

Skips (with the reason) where Chromium, its driver or selenium is missing; `.ci/run`
installs Debian's ``chromium`` and ``chromium-driver`` when it runs as root. Screenshots
go to ``build/browser/`` for a person to look at.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="no chromium/chromedriver (apt-get install chromium "
                              "chromium-driver; .ci/run does it as root)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A warm smoke-profile cache, the explorers notebook set to that profile, and
    JupyterLab serving it; yields (base url, token, notebook name)."""
    from drsl_utils.suite import run_notebook

    work = tmp_path_factory.mktemp("lab")
    cache = work / "cache"
    env = {k: v for k, v in os.environ.items() if k != "DRSL_HEADLESS"}
    env |= {"DRSL_CACHE_DIR": str(cache), "DRSL_THREADS": "1"}
    nb = nbformat.read(ROOT / "notebooks" / "11_explore.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace('profile = "quick"', 'profile = "smoke"')
    params.source = params.source.replace("figures_dir = None",
                                          f"figures_dir = {str(work / 'figs')!r}")
    assert 'profile = "smoke"' in params.source
    nbs = work / "notebooks"
    nbs.mkdir()
    nbformat.write(nb, nbs / "11_explore.ipynb")
    # Warm the cache headless first (models, attacks, UMAP), as the main job would.
    old = os.environ.get("DRSL_CACHE_DIR")
    os.environ["DRSL_CACHE_DIR"] = str(cache)
    try:
        run_notebook(nbs / "11_explore.ipynb", "smoke", work / "warm", work / "figs")
    finally:
        os.environ.pop("DRSL_HEADLESS", None)
        if old is None:
            os.environ.pop("DRSL_CACHE_DIR", None)
        else:
            os.environ["DRSL_CACHE_DIR"] = old
    token, port = secrets.token_hex(16), _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={nbs}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=", "--LabServerApp.workspaces_dir=" + str(work / "ws")]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=nbs, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("jupyter lab exited:\n" + (work / "lab.log").read_text()[-3000:])
        try:
            if _status(f"{base}/api/status?token={token}") == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("jupyter lab did not answer within 60 s")
    yield base, token, "11_explore.ipynb"
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_api_needs_the_token(lab):
    base, token, _ = lab
    assert _status(f"{base}/api/contents") == 403
    assert _status(f"{base}/api/contents?token={token}") == 200


def _driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1500,1700", "--disable-gpu"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def _wait(fn, timeout: float, what: str, poll: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = fn()
        except Exception:  # noqa: BLE001 - the DOM is changing under us
            value = None
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _menu(driver, top: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    for el in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel"):
        if el.text.strip() == top:
            el.click()
            break
    else:
        raise AssertionError(f"no menu {top!r}")
    entry = _wait(lambda: next((e for e in driver.find_elements(
        By.CSS_SELECTOR, ".lm-Menu-itemLabel") if e.text.strip() == item), None), 10,
        f"menu item {item!r}")
    entry.click()


def test_explorers_notebook_runs_and_responds(lab):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, token, name = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    driver = _driver()
    try:
        driver.get(f"{base}/lab/tree/{name}?token={token}")
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 60,
              "the notebook to open")
        _wait(lambda: "Idle" in driver.find_element(By.ID, "jp-main-statusbar").text, 60,
              "the kernel to start")
        start = time.time()
        for _attempt in range(3):  # the menu can swallow a click while the page settles
            _menu(driver, "Run", "Run All Cells")
            try:
                _wait(lambda: any(("*" in p.text or "1" in p.text) for p in
                                  driver.find_elements(By.CSS_SELECTOR, ".jp-InputArea-prompt")),
                      15, "cells to start running")
                break
            except AssertionError:
                driver.find_element(By.TAG_NAME, "body").click()
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".drsl-sweep-explorer .js-plotly-plot"),
              120, "the sweep explorer")
        timings["first_view_s"] = time.time() - start
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR,
                                           ".drsl-sample-explorer .js-plotly-plot .point"),
              120, "the sample explorer's points")

        def done():
            prompts = [p.text for p in driver.find_elements(By.CSS_SELECTOR,
                                                            ".jp-InputArea-prompt")]
            return prompts and not any("*" in p for p in prompts) and all(
                p.strip() not in ("[ ]:", "") for p in prompts[1:2])
        _wait(done, 120, "all cells to finish")
        timings["run_all_s"] = time.time() - start
        driver.save_screenshot(str(SHOTS / "01_run_all.png"))

        errors = driver.find_elements(
            By.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"], '
                             ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        assert not errors, errors[0].text[:2000]
        text = " ".join(o.text for o in driver.find_elements(By.CSS_SELECTOR,
                                                             ".jp-OutputArea-output"))
        assert "HBox(" not in text and "VBox(" not in text and "FigureWidget(" not in text

        # A widget change redraws the figure.
        sweep = driver.find_element(By.CSS_SELECTOR, ".drsl-sweep-explorer")
        driver.execute_script("arguments[0].scrollIntoView()", sweep)
        caption = sweep.find_elements(By.CSS_SELECTOR, ".widget-html-content")[-1]
        svg_before = sweep.find_element(By.CSS_SELECTOR, ".js-plotly-plot").get_attribute(
            "innerHTML")
        text_before = caption.text
        select = Select(sweep.find_elements(By.CSS_SELECTOR, "select")[1])  # the model
        other = next(o.text for o in select.options if o.text != select.first_selected_option.text)
        t0 = time.time()
        select.select_by_visible_text(other)
        _wait(lambda: caption.text != text_before and sweep.find_element(
            By.CSS_SELECTOR, ".js-plotly-plot").get_attribute("innerHTML") != svg_before,
            10, "the sweep figure to redraw", poll=0.01)
        timings["widget_redraw_ms"] = 1000 * (time.time() - t0)
        assert f"model={other}" in caption.text
        driver.save_screenshot(str(SHOTS / "02_sweep_changed.png"))

        # Clicking a point shows that sample.
        panel = driver.find_element(By.CSS_SELECTOR, ".drsl-sample-explorer")
        driver.execute_script("arguments[0].scrollIntoView()", panel)
        sample_caption = panel.find_element(By.CSS_SELECTOR, ".drsl-sample-caption")
        before = sample_caption.text
        points = panel.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .point")
        assert len(points) > 10
        clicked = None
        t0 = time.time()
        for point in points[5::7][:15]:
            ActionChains(driver).move_to_element(point).click().perform()
            try:
                _wait(lambda: sample_caption.text != before, 2, "the sample panel", poll=0.01)
                clicked = sample_caption.text
                break
            except AssertionError:
                continue
        assert clicked, "no click on a point changed the sample panel"
        timings["click_to_panel_ms"] = 1000 * (time.time() - t0)
        assert "sample" in clicked and "runner-up" in clicked
        driver.save_screenshot(str(SHOTS / "03_sample_clicked.png"))
    except BaseException:
        driver.save_screenshot(str(SHOTS / "failure.png"))
        raise
    finally:
        (SHOTS / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
        driver.quit()
    print("browser timings:", timings)
