from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth.models import User
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

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


@pytest.fixture
def browser(tmp_path):
    os.environ["SE_OFFLINE"] = "true"
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def password_user(transactional_db):
    return User.objects.create_user("dana", password="dana-pass-123")


@pytest.fixture
def logged_in(browser, live_server, password_user):
    """A browser logged in through the real login form."""
    browser.get(f"{live_server.url}/login/")
    browser.find_element(By.ID, "id_username").send_keys("dana")
    browser.find_element(By.ID, "id_password").send_keys("dana-pass-123")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 15).until(EC.url_to_be(f"{live_server.url}/"))  # the job list, after the redirect
    WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Jobs"))
    return browser
