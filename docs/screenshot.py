"""The README's screenshot of `csnln serve`: the app in headless chromium, after upscaling the
bundled butterfly (made small by the benchmarks' protocol) x2 and clicking a pixel.

    python docs/screenshot.py            # -> docs/web_app.png

Needs the [web] extra, selenium, and chromium with its chromedriver (Debian: apt-get install
chromium chromium-driver).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from csnln.data.protocol import prepare_pair
from csnln.demo import SAMPLE
from csnln.web import ServeSettings, create_app

OUT = Path(__file__).with_name("web_app.png")


def main() -> int:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ServeSettings()), host="127.0.0.1", port=8765, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options,
        service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            _, lr = prepare_pair(SAMPLE, 2)  # 128 x 128, as the benchmarks make it
            source = Path(folder) / "butterfly_lr.png"
            Image.fromarray(lr.permute(1, 2, 0).numpy()).save(source)
            driver.get("http://127.0.0.1:8765")
            wait = WebDriverWait(driver, 120)
            wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
            driver.find_element(By.ID, "file").send_keys(str(source))
            driver.find_element(By.ID, "go").click()
            after = driver.find_element(By.ID, "after")
            wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", after))
            driver.find_element(By.ID, "zoom").send_keys("200%")
            time.sleep(0.5)
            # A pixel on the edge of a wing's white spot (output 2x, zoom 2x: 4 screen px).
            ActionChains(driver).move_to_element_with_offset(
                after, 4 * 60 - after.size["width"] // 2, 4 * 44 - after.size["height"] // 2
            ).click().perform()
            picture = driver.find_element(By.ID, "attention")
            wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", picture))
            time.sleep(0.5)
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1100, min(2600, height + 40))
            time.sleep(0.3)
            driver.save_screenshot(str(OUT))
    finally:
        driver.quit()
        server.should_exit = True
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
