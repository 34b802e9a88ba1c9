"""The web app: its API and limits, the job queue, a headless browser, a load test."""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the [web] extra is not installed")
pytest.importorskip("httpx", reason="httpx (for Starlette's test client) is not installed")
import httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from csnln.web import ServeSettings, create_app  # noqa: E402
from csnln.web.jobs import Cancelled, Job, JobQueue, QueueFull  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

#: SEM steps of the bundled x2 model: the attention view shows two maps per step.
_X2_STEPS = load_model("small", 2).depth


def _png(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 4), max(1, width // 4), 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _wait(client: TestClient | httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["state"] not in ("queued", "running"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = ServeSettings(max_upload_bytes=300_000, max_pixels=40_000)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# --- API ---------------------------------------------------------------------------------


def test_upscale_job_gives_result_bicubic_and_download_name(client: TestClient) -> None:
    models = client.get("/api/models").json()
    assert {"name": "small", "scales": [2, 3, 4]} in models["models"]
    response = client.post(
        "/api/jobs?model=small&scale=3&precision=fp32&filename=../../etc/pass wd.png",
        content=_png(30, 21),
    )
    assert response.status_code == 202
    status = _wait(client, response.json()["id"])
    assert status["state"] == "done", status
    assert status["done"] == status["total"] >= 2
    info = status["info"]
    assert (info["width"], info["height"], info["precision"]) == (90, 63, "fp32")
    result = client.get(f"/api/jobs/{status['id']}/result.png")
    assert Image.open(io.BytesIO(result.content)).size == (90, 63)
    # The download name is made of the upload's name, never a path.
    assert result.headers["content-disposition"] == 'attachment; filename="pass_wd_x3.png"'
    bicubic = client.get(f"/api/jobs/{status['id']}/bicubic.png")
    assert Image.open(io.BytesIO(bicubic.content)).size == (90, 63)
    # Only the named images are served: a job's other fields are not (they once gave a 500,
    # or a 200 image/png whose body was the text "small").
    for field in ("scale", "seconds", "tiles", "model", "download", "width", "nothing"):
        answer = client.get(f"/api/jobs/{status['id']}/{field}.png")
        assert answer.status_code == 404, field
        assert "no such image" in answer.json()["error"]
    inputs = client.get(f"/api/jobs/{status['id']}/input.png")
    assert inputs.status_code == 200 and Image.open(io.BytesIO(inputs.content)).size == (30, 21)


def test_attention_job_reports_maps_in_image_coordinates(client: TestClient) -> None:
    job = client.post("/api/jobs?model=small&scale=2", content=_png(40, 32)).json()
    assert _wait(client, job["id"])["state"] == "done"
    attention = client.post(f"/api/jobs/{job['id']}/attention?x=30&y=5").json()
    status = _wait(client, attention["id"])
    assert status["state"] == "done", status
    maps = status["info"]["maps"]
    assert len(maps) == 2 * _X2_STEPS  # the bundled x2's SEM steps x (in-scale, cross-scale)
    for m in maps:
        assert 0 < m["entropy_bits"] <= np.log2(m["positions"]) + 1e-6
        for top in m["top"]:
            x, y, w, h = top["box"]
            assert 0 <= x < 40 and 0 <= y < 32 and w > 0 and h > 0
    picture = client.get(f"/api/jobs/{attention['id']}/picture.png")
    assert Image.open(io.BytesIO(picture.content)).size[0] > 600
    assert client.post(f"/api/jobs/{job['id']}/attention?x=40&y=0").status_code == 400
    bicubic = client.post("/api/jobs?model=bicubic&scale=2", content=_png(20, 20)).json()
    _wait(client, bicubic["id"])
    refused = client.post(f"/api/jobs/{bicubic['id']}/attention?x=1&y=1")
    assert refused.status_code == 400 and "bicubic has no attention" in refused.json()["error"]


@pytest.mark.parametrize(
    ("body", "query", "status", "message"),
    [
        (b"x" * 400_000, "", 413, "larger than this server's limit of 0.3 MiB"),
        (_png(300, 200), "", 413, "300x200 (0.06 Mpx); this server takes at most 0.04 Mpx"),
        (_bomb_png(100_000, 100_000), "", 413, "refused"),
        (_bomb_png(5_000, 5_000), "", 413, "5000x5000"),
        (b"GIF89a not really", "", 415, "not an image"),
        (b"", "", 400, "no image"),
        (_png(2, 8), "", 400, "at least 3x3"),
        (_png(20, 20), "?scale=5", 400, "scale must be one of 2, 3, 4"),
        (_png(20, 20), "?model=../weights", 400, "model must be one of small, bicubic"),
        (_png(20, 20), "?precision=fp8", 400, "precision must be one of"),
    ],
)
def test_bad_uploads_get_a_clear_refusal(
    client: TestClient, body: bytes, query: str, status: int, message: str
) -> None:
    response = client.post(f"/api/jobs{query}", content=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_unknown_and_expired_jobs(client: TestClient) -> None:
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/result.png").status_code == 404
    assert client.post("/api/jobs/nope/cancel").json() == {"cancelled": False}


# --- the queue ---------------------------------------------------------------------------


def _slow(steps: int, seconds: float = 0.05):  # noqa: ANN202
    def work(job: Job) -> dict:
        job.progress(0, steps)
        for _ in range(steps):
            time.sleep(seconds)
            job.progress()
        return {"value": steps}

    return work


def test_queue_runs_one_at_a_time_shows_positions_and_refuses_when_full() -> None:
    queue = JobQueue(max_waiting=2, keep_results=2, heartbeat_s=60)
    try:
        first, second, third = Job("t", _slow(20)), Job("t", _slow(2)), Job("t", _slow(2))
        assert queue.submit(first) == 0
        time.sleep(0.2)
        assert first.state == "running"
        assert queue.submit(second) == 1 and queue.submit(third) == 2
        assert queue.position(second) == 1 and queue.position(third) == 2
        with pytest.raises(QueueFull, match="busy"):
            queue.submit(Job("t", _slow(1)))
        assert second.state == "queued"  # never two at once
        for job in (first, second, third):
            assert queue.wait(job.id, 10) is not None
        assert [j.state for j in (first, second, third)] == ["done"] * 3
        assert first.started is not None and second.started is not None
        assert second.started >= first.finished  # type: ignore[operator]
        # Only the last keep_results ended jobs are kept (memory stays bounded).
        assert queue.get(first.id) is None and first.result == {}
        assert queue.get(third.id) is not None and third.result == {"value": 2}
    finally:
        queue.close()


def test_cancel_stops_a_running_job_and_removes_a_waiting_one() -> None:
    queue = JobQueue(max_waiting=4, heartbeat_s=60)
    try:
        running, waiting = Job("t", _slow(200)), Job("t", _slow(2))
        queue.submit(running)
        queue.submit(waiting)
        time.sleep(0.2)
        assert queue.cancel(waiting.id) and waiting.state == "cancelled"
        assert queue.cancel(running.id)
        queue.wait(running.id, 5)
        assert running.state == "cancelled" and running.done < 200
        assert not queue.cancel(running.id)
    finally:
        queue.close()


def test_a_job_nobody_asks_about_is_cancelled() -> None:
    queue = JobQueue(max_waiting=4, heartbeat_s=0.5)
    try:
        job = Job("t", _slow(400, 0.01))
        queue.submit(job)
        queue.wait(job.id, 10)
        assert job.state == "cancelled" and "stopped asking" in job.message
        polled = Job("t", _slow(10, 0.1))
        queue.submit(polled)
        while polled.active:
            queue.get(polled.id)  # what the page's polling does
            time.sleep(0.1)
        assert polled.state == "done"
    finally:
        queue.close()


def test_a_failing_job_is_reported_and_the_queue_goes_on() -> None:
    def boom(job: Job) -> dict:
        raise RuntimeError("no luck")

    queue = JobQueue()
    try:
        bad, good = Job("t", boom), Job("t", _slow(1))
        queue.submit(bad)
        queue.submit(good)
        queue.wait(good.id, 10)
        assert bad.state == "failed" and "no luck" in bad.message and good.state == "done"
        with pytest.raises(Cancelled):
            cancelled = Job("t", _slow(1))
            cancelled.cancel_event.set()
            cancelled.progress()
    finally:
        queue.close()


# --- a real server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``csnln serve`` in its own process (so its memory can be measured)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "csnln", "serve", "--port", str(port), "--queue", "2",
         "--max-pixels", "20000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/api/models", timeout=2)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                out = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"csnln serve did not start: {out}") from None
            time.sleep(0.2)
    try:
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for memory")
def test_load_concurrent_clients(server_process: tuple[str, subprocess.Popen]) -> None:
    """Rounds of 6 simultaneous uploads against a queue of 2: every request gets its result
    or a clear refusal, the server stays up, and its memory does not grow round by round."""
    url, process = server_process
    image = _png(48, 40)

    def one(results: list, index: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            response = http.post("/api/jobs?model=small&scale=2", content=image)
            if response.status_code == 503:
                results[index] = ("refused", response.json()["error"])
                return
            assert response.status_code == 202, response.text
            status = _wait(http, response.json()["id"])
            png = http.get(f"/api/jobs/{status['id']}/result.png")
            results[index] = (status["state"], Image.open(io.BytesIO(png.content)).size)

    def round_of(clients: int) -> list:
        results: list = [None] * clients
        threads = [threading.Thread(target=one, args=(results, i)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        return results

    round_of(1)  # warm-up: the model is loaded, the allocator has its arenas
    baseline = _rss_kb(process.pid, "VmRSS")
    outcomes = []
    for _ in range(3):
        outcomes += round_of(6)
    assert None not in outcomes
    done = [o for o in outcomes if o[0] == "done"]
    refused = [o for o in outcomes if o[0] == "refused"]
    assert len(done) + len(refused) == len(outcomes)
    assert all(size == (96, 80) for _, size in done)
    assert done and all("busy" in message for _, message in refused)
    assert process.poll() is None and httpx.get(f"{url}/api/models").status_code == 200
    grown_mb = (_rss_kb(process.pid, "VmRSS") - baseline) / 1024
    assert grown_mb < 150, f"server memory grew {grown_mb:.0f} MB over 3 rounds"


# --- a real browser ----------------------------------------------------------------------


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    found = _chromium()
    if found is None:
        pytest.skip(
            "no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,1000"):  # fmt: skip
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=found[1])
        )
    except Exception as exc:  # noqa: BLE001 - any start failure is a skip, with its reason
        pytest.skip(f"chromium could not start: {str(exc).splitlines()[0]}")
    yield driver
    driver.quit()


LIVE_APPS: list = []


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    import uvicorn

    settings = ServeSettings(max_upload_bytes=60_000, max_pixels=30_000)
    port = _free_port()
    app = create_app(settings)
    LIVE_APPS.append(app)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _until(driver, condition, timeout: float = 90):  # noqa: ANN001, ANN202
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def test_browser_upload_slider_zoom_attention(
    browser,
    live_server: str,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    picture = tmp_path / "photo.png"
    picture.write_bytes(_png(64, 48))
    driver.get(live_server)
    _until(driver, lambda d: d.find_element(By.ID, "model").get_attribute("value") == "small")
    driver.find_element(By.ID, "file").send_keys(str(picture))
    driver.find_element(By.ID, "go").click()
    after = driver.find_element(By.ID, "after")
    _until(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", after) == 128)
    before = driver.find_element(By.ID, "before")
    _until(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", before) == 128)
    assert driver.execute_script("return arguments[0].naturalHeight", after) == 96
    assert "done in" in driver.find_element(By.ID, "status").text
    assert driver.find_element(By.ID, "download").get_attribute("download") == "photo_x2.png"
    # The slider moves the line between bicubic and csnln.
    slider = driver.find_element(By.ID, "slider")
    slider.click()
    slider.send_keys(Keys.HOME)
    for _ in range(20):
        slider.send_keys(Keys.ARROW_RIGHT)
    assert slider.get_attribute("value") == "20"
    assert "20%" in after.value_of_css_property("clip-path")
    assert driver.find_element(By.ID, "divider").get_attribute("style").find("20%") >= 0
    # Zoom 400%: both images four times the output's width.
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "zoom")).select_by_value("4")
    assert after.size["width"] == before.size["width"] == 512
    Select(driver.find_element(By.ID, "zoom")).select_by_value("1")
    # A click on the image asks for that pixel's attention maps: 100% zoom, so the output
    # pixel (40, 20) from the image's top left is LR pixel (20, 10), give or take a rounding.
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element_with_offset(after, 40 - 64, 20 - 48).click().perform()
    attention = driver.find_element(By.ID, "attention")
    _until(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", attention) > 0)
    rows = driver.find_elements(By.CSS_SELECTOR, "#attention-table tbody tr")
    assert len(rows) == 2 * _X2_STEPS
    said = driver.find_element(By.ID, "attention-status").text
    x, y = (int(part.split("=")[1]) for part in said.split(",")[:2])
    assert abs(x - 20) <= 1 and abs(y - 10) <= 1, said


def test_browser_refuses_oversized_uploads(
    browser,
    live_server: str,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(live_server)
    _until(driver, lambda d: d.find_element(By.ID, "model").get_attribute("value") == "small")
    error = driver.find_element(By.ID, "error")
    too_heavy = tmp_path / "heavy.bmp"  # 200x100 BMP: 60 kB, over the 60,000-byte limit
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(too_heavy)
    driver.find_element(By.ID, "file").send_keys(str(too_heavy))
    driver.find_element(By.ID, "go").click()
    _until(driver, lambda d: error.is_displayed(), 10)
    assert "larger than this server's limit" in error.text
    too_many = tmp_path / "wide.png"  # few bytes, too many pixels: refused by the server
    Image.new("RGB", (400, 100), "white").save(too_many)
    assert os.path.getsize(too_many) < 60_000
    driver.find_element(By.ID, "file").send_keys(str(too_many))
    driver.find_element(By.ID, "go").click()
    _until(driver, lambda d: "takes at most" in error.text, 20)
    assert "400x100" in error.text


def _start_slow_job(driver, tmp_path: Path) -> None:  # noqa: ANN001
    """Upload an image at x4 (many tiles: seconds of work) and wait until it runs."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    slow = tmp_path / "slow.png"
    slow.write_bytes(_png(150, 150))
    driver.find_element(By.ID, "file").send_keys(str(slow))
    Select(driver.find_element(By.ID, "scale")).select_by_value("4")
    Select(driver.find_element(By.ID, "precision")).select_by_visible_text("fp32")
    driver.find_element(By.ID, "go").click()
    _until(driver, lambda d: "running" in d.find_element(By.ID, "status").text, 30)


def test_browser_cancel_and_closed_page_stop_the_job(
    browser,
    live_server: str,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    queue = LIVE_APPS[-1].state.queue
    driver.get(live_server)
    _until(driver, lambda d: d.find_element(By.ID, "model").get_attribute("value") == "small")
    _start_slow_job(driver, tmp_path)
    driver.find_element(By.ID, "cancel").click()
    _until(driver, lambda d: "cancelled" in d.find_element(By.ID, "error").text, 30)
    cancelled = [j for j in queue.jobs.values() if j.state == "cancelled"]
    assert cancelled and cancelled[-1].done < cancelled[-1].total
    # Leaving the page (a closed tab sends the same beacon) cancels the running job.
    driver.get(live_server)
    _until(driver, lambda d: d.find_element(By.ID, "model").get_attribute("value") == "small")
    _start_slow_job(driver, tmp_path)
    (running,) = [j for j in queue.jobs.values() if j.state == "running"]
    driver.get("about:blank")
    deadline = time.monotonic() + 15
    while running.active and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running.state == "cancelled" and running.done < running.total
