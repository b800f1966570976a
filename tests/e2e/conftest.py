from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.e2e.browsing import wait

# Flags that work with Debian's chromium 156 and Selenium 4.51 here, without workarounds; nothing is downloaded.
CHROME_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
]


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """One Chromium for the whole run (starting one costs seconds); `browser` hands it to each test clean."""
    os.environ["SE_OFFLINE"] = "true"
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium, live_server):
    """The run's Chromium as a new one would be: one blank tab at 1280x900, no cookies, no stored data, no
    network throttling, downloads refused. Reset after each test, whatever the test changed."""
    yield chromium
    for handle in chromium.window_handles[1:]:
        chromium.switch_to.window(handle)
        chromium.close()
    chromium.switch_to.window(chromium.window_handles[0])
    chromium.execute_cdp_cmd("Network.emulateNetworkConditions", NO_THROTTLING)  # first: a test may be offline
    chromium.get(f"{live_server.url}/api/health/")  # a page of the server's origin, to clear what it stored
    chromium.execute_script("window.localStorage.clear(); window.sessionStorage.clear();")
    chromium.delete_all_cookies()
    chromium.execute_cdp_cmd("Network.emulateNetworkConditions", NO_THROTTLING)
    chromium.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "default"})
    chromium.set_window_size(1280, 900)
    chromium.get("about:blank")


NO_THROTTLING = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}


@pytest.fixture
def password_user(transactional_db):
    return User.objects.create_user("dana", password="dana-pass-123")


@pytest.fixture
def logged_in(browser, live_server, password_user):
    """A browser with a session of `password_user` (logging in through the form is its own test)."""
    client = Client()
    client.force_login(password_user)
    browser.get(f"{live_server.url}/api/health/")  # a cookie is set for the origin of the page open
    browser.add_cookie(
        {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    browser.get(f"{live_server.url}/")
    wait(browser, 15).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Jobs"))
    return browser
