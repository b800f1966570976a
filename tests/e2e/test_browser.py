"""The pages in a real headless Chromium, against the live server, a real qcluster and real FFmpeg."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from jobs import storage
from jobs.models import Job, OutputFile, Status, Team, Upload
from jobs.services.cancel import cancel_job, delete_job_with_files
from jobs.services.output_names import job_tag
from jobs.web.templatetags.jobs_extras import expiry
from jobs.worker import runner
from tests.e2e.browsing import click, text_of, wait
from tests.workers import PACED_FFMPEG

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]  # one worker, one Chromium

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"

# Test-side interception of window.fetch: delay or fail the cancel request, count status polls.
FETCH_HOOK = """
const mode = arguments[0];
window.__statusPolls = 0;
const realFetch = window.fetch.bind(window);
window.fetch = async function (url, options) {
  const text = String(url);
  if (text.includes("/status/")) window.__statusPolls += 1;
  if (text.includes("/cancel/")) {
    if (mode === "fail") return new Response(JSON.stringify({detail: "Server error."}), {status: 500});
    await new Promise(function (resolve) { setTimeout(resolve, 800); });
  }
  return realFetch(url, options);
};
"""


def button_state(browser, element_id):
    """(enabled, label) read in one step, so a polling swap cannot split the two."""
    enabled, label = browser.execute_script(
        "const b = document.getElementById(arguments[0]); return [!b.disabled, b.textContent.trim()];", element_id
    )
    return enabled, label


def screenshot(browser, name):
    """The README's pictures: written only on request (`make screenshots`), so a test run leaves the tree clean."""
    if os.environ.get("SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def cookie_session(browser) -> requests.Session:
    session = requests.Session()
    for cookie in browser.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"])
    return session


def named_copy(clip: Path, folder: Path, name: str) -> Path:
    target = folder / name
    shutil.copyfile(clip, target)
    return target


def test_upload_two_clips_and_watch_the_job_complete(logged_in, live_server, start_cluster, clips, tmp_path):
    browser = logged_in
    start_cluster(BATCH_SIZE="2")
    first = named_copy(clips(seconds=2.0), tmp_path, "spring-sale.mp4")
    second = named_copy(clips(seconds=1.0, audio=False), tmp_path, "teaser.mov")

    browser.get(f"{live_server.url}/upload/")
    browser.find_element(By.ID, "id_videos").send_keys(f"{first}\n{second}")
    names = [el.text for el in browser.find_elements(By.CSS_SELECTOR, "#file-list .file-name")]
    assert names == ["spring-sale.mp4", "teaser.mov"]
    variations = browser.find_element(By.ID, "id_variations")
    variations.clear()
    variations.send_keys("2")
    screenshot(browser, "upload")
    browser.find_element(By.ID, "upload-button").click()

    wait(browser, 30).until(EC.url_matches(r"/jobs/[0-9a-f]{32}/$"))
    browser.execute_script("window.__sameDocument = true;")
    wait(browser, 90).until(EC.text_to_be_present_in_element((By.ID, "job-badge"), "Completed"))
    assert browser.execute_script("return window.__sameDocument === true;")  # updated without a reload
    assert "4 of 4 variations done" in text_of(browser, ".overall label")
    assert browser.find_elements(By.ID, "partial-note") == []

    download = cookie_session(browser).get(browser.find_element(By.ID, "download").get_attribute("href"))
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    tag = job_tag(Job.objects.get().pk)  # each file carries its job's tag
    assert sorted(archive.namelist()) == [
        "manifest.json",
        f"spring-sale/spring-sale_v01_{tag}.mp4",
        f"spring-sale/spring-sale_v02_{tag}.mp4",
        f"teaser/teaser_v01_{tag}.mp4",
        f"teaser/teaser_v02_{tag}.mp4",
    ]


def test_three_formats_at_strong_strength_give_a_grid_in_three_shapes(
    logged_in, live_server, start_cluster, clips, settings
):
    browser = logged_in
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the notify URL below is on this machine
    start_cluster()
    browser.get(f"{live_server.url}/upload/")
    browser.find_element(By.ID, "id_videos").send_keys(str(clips(seconds=1.0)))
    variations = browser.find_element(By.ID, "id_variations")
    variations.clear()
    variations.send_keys("2")
    for value in ("source", "9:16", "1:1", "16:9"):  # source is ticked by default: untick it
        browser.find_element(By.CSS_SELECTOR, f'input[name="formats"][value="{value}"]').click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="strength"][value="strong"]').click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="fit"][value="blur"]').click()
    assert text_of(browser, "#output-count").startswith("1 video × 2 variations × 3 formats = 6 videos")
    browser.find_element(By.CSS_SELECTOR, ".notify-choice summary").click()
    browser.find_element(By.ID, "id_notify_url").send_keys("http://127.0.0.1:9/hooks/videojobs")
    screenshot(browser, "upload-choices")
    browser.find_element(By.ID, "upload-button").click()

    wait(browser, 30).until(EC.url_matches(r"/jobs/[0-9a-f]{32}/$"))
    wait(browser, 90).until(EC.text_to_be_present_in_element((By.ID, "job-badge"), "Completed"))
    job = Job.objects.get()
    assert (job.formats, job.strength, job.fit) == (["9:16", "1:1", "16:9"], "strong", "blur")
    assert job.notify_url == "http://127.0.0.1:9/hooks/videojobs"
    groups = browser.find_elements(By.CSS_SELECTOR, ".format-group")
    assert [group.get_attribute("data-format") for group in groups] == ["9:16", "1:1", "16:9"]
    for group, ratio in zip(groups, (9 / 16, 1.0, 16 / 9), strict=True):
        images = group.find_elements(By.CSS_SELECTOR, ".variation img")
        assert len(images) == 2
        for image in images:  # each thumbnail in its format's shape, as the page lays it out
            wait(browser, 10).until(lambda _, image=image: image.get_attribute("naturalWidth") not in (None, "0"))
            assert image.size["width"] / image.size["height"] == pytest.approx(ratio, rel=0.06)
        assert all("zoom" in el.text for el in group.find_elements(By.CSS_SELECTOR, ".effects"))
        assert all("like the original" in el.text for el in group.find_elements(By.CSS_SELECTOR, ".closeness"))
    browser.execute_script("arguments[0].scrollIntoView();", groups[0])
    screenshot(browser, "job-formats")


def test_cancel_from_the_detail_page(logged_in, live_server, start_cluster, password_user, post_job):
    browser = logged_in
    start_cluster(BATCH_SIZE="1", **PACED_FFMPEG)
    job = post_job(["long-ad.mp4", "other-ad.mp4"], owner=password_user, variations=3, seconds=3.0, audio=False)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    wait(browser).until(lambda b: OutputFile.objects.filter(job=job).exists())
    # Shown without a reload: at least one variation done, not all of them.
    wait(browser).until(lambda b: re.search(r"\b[1-5] of 6\b", text_of(b, ".overall label")))
    assert text_of(browser, "#job-badge").startswith("Processing")
    screenshot(browser, "detail-processing")

    browser.execute_script(FETCH_HOOK, "delay")
    click(browser, "#cancel-button")
    alert = wait(browser, 5).until(EC.alert_is_present())
    assert "Finished variations are kept" in alert.text
    alert.accept()
    assert button_state(browser, "cancel-button") == (False, "Cancelling...")

    wait(browser, 30).until(EC.text_to_be_present_in_element((By.ID, "job-badge"), "Cancelled ("))
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    badge = browser.find_element(By.ID, "job-badge")
    assert badge.text == f"Cancelled ({job.completed_variations}/6)"
    assert "badge-cancelled" in badge.get_attribute("class")
    assert badge.value_of_css_property("background-color") == "rgba(156, 163, 175, 1)"  # gray
    assert "Partial results available" in text_of(browser, "#partial-note")
    assert browser.find_elements(By.ID, "cancel-button") == []
    source_badges = [el.text for el in browser.find_elements(By.CSS_SELECTOR, ".source .badge")]
    assert source_badges[1] == "Cancelled" and set(source_badges) <= {"Completed", "Cancelled"}  # none looks busy
    screenshot(browser, "detail-cancelled")

    download = cookie_session(browser).get(browser.find_element(By.ID, "download").get_attribute("href"))
    assert download.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(download.content)).namelist()) == job.completed_variations + 1

    # Polling stopped at the terminal status: stopped, and no timer left that could poll again.
    assert browser.execute_script("const p = window.videojobs.testHooks.detailPoller; return p.stopped && !p.pending;")


def test_cancel_inline_from_the_job_list(logged_in, live_server, start_cluster, password_user, post_job):
    browser = logged_in
    done = post_job(["finished-ad.mp4"], owner=password_user, variations=1)
    runner.run_job(done.pk)
    earlier = post_job(["early-cancel.mp4"], owner=password_user, variations=2)
    cancel_job(earlier)
    start_cluster(BATCH_SIZE="1", **PACED_FFMPEG)
    job = post_job(["running-ad.mp4"], owner=password_user, variations=3, seconds=3.0, audio=False)
    wait(browser).until(lambda b: Job.objects.get(pk=job.pk).status == Status.PROCESSING)

    browser.get(f"{live_server.url}/")
    card = f".job-card[data-job='{job.pk}']"
    wait(browser, 30).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, f"{card} .badge"), "Processing"))
    screenshot(browser, "list")
    click(browser, f"{card} .cancel-form button")
    wait(browser, 5).until(EC.alert_is_present()).accept()

    wait(browser, 30).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, f"{card} .badge"), "Cancelled ("))
    assert browser.find_elements(By.CSS_SELECTOR, f"{card} .cancel-form") == []
    link = browser.find_element(By.CSS_SELECTOR, f"{card} .job-title a")
    assert link.get_attribute("href").endswith(f"/jobs/{job.pk}/") and "running-ad.mp4" in link.text
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    assert len(browser.find_elements(By.CSS_SELECTOR, ".job-card")) == 3


def test_a_failed_cancel_shows_the_error_and_restores_the_button(logged_in, live_server, password_user, post_job):
    browser = logged_in
    job = post_job(["queued.mp4"], owner=password_user, variations=2)  # no worker: it stays queued
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    browser.execute_script(FETCH_HOOK, "fail")
    enabled, label = button_state(browser, "cancel-button")
    assert enabled
    click(browser, "#cancel-button")
    wait(browser, 5).until(EC.alert_is_present()).accept()
    wait(browser, 10).until(EC.visibility_of_element_located((By.ID, "cancel-error")))
    assert text_of(browser, "#cancel-error") == "Could not cancel the job: Server error."
    assert button_state(browser, "cancel-button") == (True, label) and label == "Cancel job"
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_an_invalid_upload_shows_the_servers_message(logged_in, live_server, tmp_path):
    browser = logged_in
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    wrong_type = tmp_path / "notes.txt"
    wrong_type.write_text("text")

    browser.get(f"{live_server.url}/upload/")
    browser.find_element(By.ID, "id_videos").send_keys(str(wrong_type))
    assert "notes.txt: only MP4 and MOV files are accepted" in text_of(browser, "#upload-error")
    assert browser.find_elements(By.CSS_SELECTOR, "#file-list li") == []  # refused in the page

    browser.find_element(By.ID, "id_videos").send_keys(str(fake))
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "upload-error"), "not a usable video"))
    assert "notes.mp4" in text_of(browser, "#upload-error")
    assert browser.current_url == f"{live_server.url}/upload/"
    assert browser.find_element(By.ID, "upload-button").is_enabled()
    assert Job.objects.count() == 0


def test_logging_in_through_the_form_opens_the_job_list(browser, live_server, password_user):
    browser.get(f"{live_server.url}/login/")
    browser.find_element(By.ID, "id_username").send_keys("dana")
    browser.find_element(By.ID, "id_password").send_keys("dana-pass-123")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(browser, 15).until(EC.url_to_be(f"{live_server.url}/"))  # the job list, after the redirect
    wait(browser, 15).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Jobs"))


def test_every_page_redirects_to_login_when_logged_out(browser, live_server, password_user):
    job = Job.objects.create(owner=password_user, variations_per_video=1)
    for path in ["/", "/upload/", f"/jobs/{job.pk}/"]:
        browser.get(f"{live_server.url}{path}")
        assert re.match(rf"{live_server.url}/login/\?next=", browser.current_url), path
        assert browser.find_element(By.ID, "id_username")
    # The parts the pages poll answer 401 instead, so a page can say its session ended (tested above).
    for path in [f"/jobs/{job.pk}/status/", f"/jobs/{job.pk}/card/"]:
        assert requests.get(f"{live_server.url}{path}", allow_redirects=False).status_code == 401, path


@pytest.mark.parametrize("path", ["/", "/upload/", "detail"])
def test_pages_fit_a_375_px_phone(logged_in, live_server, password_user, post_job, path):
    browser = logged_in
    job = post_job(["a-rather-long-file-name-for-a-small-screen.mp4"], owner=password_user, variations=2)
    browser.set_window_size(375, 800)
    browser.get(f"{live_server.url}{f'/jobs/{job.pk}/' if path == 'detail' else path}")
    width = browser.execute_script("return document.documentElement.clientWidth;")
    assert browser.execute_script("return document.documentElement.scrollWidth;") <= width


HIDE_TAB = """
const hidden = arguments[0];
Object.defineProperty(document, "hidden", {configurable: true, get: function () { return hidden; }});
document.dispatchEvent(new Event("visibilitychange"));
"""

RECORD_NOTIFICATIONS = """
window.__notifications = [];
window.Notification = function (title, options) { window.__notifications.push(title); };
window.Notification.permission = "granted";
"""


def test_polling_pauses_while_the_tab_is_hidden_and_a_notification_says_the_job_finished(
    logged_in, live_server, start_cluster, password_user, post_job
):
    browser = logged_in
    job = post_job(["watched.mp4"], owner=password_user, variations=1)  # queued: no worker yet
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    browser.execute_script(FETCH_HOOK, "count")
    browser.execute_script(RECORD_NOTIFICATIONS)  # the page's own call is what we check, not the OS popup

    # The live server is a WSGI one: its event stream is refused, and the page polls.
    wait(browser, 10).until(lambda b: b.execute_script("return window.videojobs.testHooks.detailPoller !== null;"))
    browser.execute_script(HIDE_TAB, True)
    # Hidden: no timer is pending, so no poll can come, however long the tab stays hidden.
    assert browser.execute_script("return window.videojobs.testHooks.detailPoller.pending;") is False
    polls = browser.execute_script("return window.__statusPolls;")
    start_cluster()
    wait(browser, 60).until(lambda b: Job.objects.get(pk=job.pk).status == Status.COMPLETED)
    assert browser.execute_script("return window.videojobs.testHooks.detailPoller.pending;") is False
    assert browser.execute_script("return window.__statusPolls;") == polls
    assert text_of(browser, "#job-badge") == "Queued"  # nothing fetched while hidden

    browser.execute_script(HIDE_TAB, False)
    wait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "job-badge"), "Completed"))
    assert browser.execute_script("return window.__notifications;") == ["videojobs: job Completed"]
    assert browser.execute_script("const p = window.videojobs.testHooks.detailPoller; return p.stopped && !p.pending;")


DROP_FILE = """
const zone = document.getElementById("dropzone");
const data = new DataTransfer();
data.items.add(new File([new Uint8Array(arguments[1])], arguments[0], {type: "video/mp4"}));
zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: data, bubbles: true, cancelable: true}));
const dragging = zone.classList.contains("dragging");
zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
return [dragging, zone.classList.contains("dragging")];
"""


def test_drop_zone_feedback_and_refusals_in_the_page(logged_in, live_server, settings):
    browser = logged_in
    settings.MAX_UPLOAD_BYTES = 2000
    browser.get(f"{live_server.url}/upload/")
    assert browser.execute_script(DROP_FILE, "dropped.mp4", 100) == [True, False]  # highlighted while dragging
    assert [el.text for el in browser.find_elements(By.CSS_SELECTOR, "#file-list .file-name")] == ["dropped.mp4"]
    browser.execute_script(DROP_FILE, "huge.mp4", 5000)
    assert "huge.mp4: larger than the limit of 2.0 KB" in text_of(browser, "#upload-error")
    browser.find_element(By.CSS_SELECTOR, "#file-list button").click()  # Remove
    assert browser.find_elements(By.CSS_SELECTOR, "#file-list li") == []


def test_the_upload_progress_bar_moves(logged_in, live_server, clips, tmp_path):
    browser = logged_in
    clip = named_copy(clips(seconds=2.0, size="640x480"), tmp_path, "slow-upload.mp4")
    browser.get(f"{live_server.url}/upload/")
    browser.find_element(By.ID, "id_videos").send_keys(str(clip))
    browser.set_network_conditions(
        latency=0, download_throughput=10_000_000, upload_throughput=clip.stat().st_size // 3
    )
    browser.find_element(By.ID, "upload-button").click()
    seen = wait(browser, 20).until(
        lambda b: b.execute_script(
            "const w = document.getElementById('upload-progress-wrap');"
            "const v = document.getElementById('upload-progress').value;"
            "return !w.hidden && v > 0 && v < 100 ? v : false;"
        )
    )
    assert 0 < seen < 100
    assert not browser.find_element(By.ID, "upload-button").is_enabled()  # no double submit
    wait(browser, 30).until(EC.url_matches(r"/jobs/[0-9a-f]{32}/$"))


COUNTDOWN_IN = """
const el = document.querySelector(".countdown");
el.dataset.expiresAt = new Date(Date.now() + arguments[0] * 1000).toISOString();
window.videojobs.updateTimes();
return el.textContent;
"""


def test_the_page_counts_down_in_the_servers_own_words(logged_in, live_server, password_user, post_job):
    browser = logged_in
    job = post_job(["queued.mp4"], owner=password_user, variations=1)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    now = timezone.now()
    for seconds in (3 * 3600 + 150, 630, -5):  # mid-minute: the few ms between the two clocks cannot matter
        assert browser.execute_script(COUNTDOWN_IN, seconds) == expiry(now + timedelta(seconds=seconds)), seconds


def test_logging_out_in_another_tab_makes_the_polling_page_say_so_and_stop(
    logged_in, live_server, password_user, post_job
):
    browser = logged_in
    job = post_job(["queued.mp4"], owner=password_user, variations=1)  # no worker: it stays queued
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    polling_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"{live_server.url}/logout/")  # typed into the address bar: the page asks first
    assert text_of(browser, "h1") == "Log out?"
    browser.find_element(By.ID, "logout-button").click()
    wait(browser, 15).until(EC.url_to_be(f"{live_server.url}/login/"))
    browser.close()
    browser.switch_to.window(polling_tab)
    browser.execute_script("window.videojobs.testHooks.detailPoller.now();")  # the next poll, without waiting
    wait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "gone-notice"), "You have been logged out."))
    link = browser.find_element(By.CSS_SELECTOR, "#gone-notice a")
    assert link.get_attribute("href") == f"{live_server.url}/login/?next=%2Fjobs%2F{job.pk}%2F"
    assert text_of(browser, "#job-badge") == "Queued"  # the job card is still there, not a login form
    assert not browser.find_element(By.CSS_SELECTOR, ".topbar nav").is_displayed()  # no "Log out" that lies
    assert browser.execute_script("const p = window.videojobs.testHooks.detailPoller; return p.stopped && !p.pending;")
    screenshot(browser, "logged-out")


def test_a_page_whose_job_was_deleted_says_so_and_stops_polling(logged_in, live_server, password_user, post_job):
    browser = logged_in
    job = post_job(["doomed.mp4"], owner=password_user, variations=1)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    delete_job_with_files(job)
    browser.execute_script("window.videojobs.testHooks.detailPoller.now();")
    wait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "gone-notice"), "This job no longer exists"))
    assert browser.find_element(By.CSS_SELECTOR, "#gone-notice a").get_attribute("href") == f"{live_server.url}/"
    assert browser.execute_script("const p = window.videojobs.testHooks.detailPoller; return p.stopped && !p.pending;")


def test_back_after_logout_shows_no_job_from_the_cache(logged_in, live_server, password_user, make_job):
    browser = logged_in
    job = make_job(status=Status.COMPLETED, outputs=1, owner=password_user)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    download = browser.find_element(By.ID, "download").get_attribute("href")
    click(browser, ".topbar nav form button")  # Log out
    wait(browser, 15).until(EC.url_to_be(f"{live_server.url}/login/"))
    browser.back()
    wait(browser, 15).until(EC.url_contains("/login/?next="))  # fetched again, not shown from the cache
    assert browser.find_elements(By.ID, "download") == []
    browser.get(download)  # a Download link kept from before leads to the login page, not an API error
    assert browser.current_url == f"{live_server.url}/login/?next=/jobs/{job.pk}/download/"
    assert browser.find_element(By.ID, "id_username")


def test_the_zip_downloaded_from_the_page_is_named_after_the_job(
    logged_in, live_server, password_user, post_job, tmp_path
):
    browser = logged_in
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    job = post_job(["clip.mp4"], owner=password_user, variations=1, name="Spring sale", run=True)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    assert browser.title == "Spring sale · videojobs" and text_of(browser, "#job-title") == "Spring sale"
    click(browser, "#download")
    wait(browser, 30).until(lambda b: (downloads / "Spring sale.zip").is_file())
    names = zipfile.ZipFile(downloads / "Spring sale.zip").namelist()
    assert sorted(names) == [f"clip/clip_v01_{job_tag(job.pk)}.mp4", "manifest.json"]


def _video_state(browser) -> tuple[int, float]:
    return tuple(
        browser.execute_script(
            "const v = document.getElementById('player-video'); return [v.readyState, v.currentTime];"
        )
    )


def test_the_variation_grid_plays_one_downloads_a_selection_and_makes_more(
    logged_in, live_server, password_user, post_job, tmp_path, start_cluster
):
    browser = logged_in
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    job = post_job(["clip.mp4"], owner=password_user, variations=3, name="Grid", seconds=3.0, run=True)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")

    # One thumbnail per variation, each loaded (128 px wide WebP), with its number and effect values.
    thumbnails = browser.find_elements(By.CSS_SELECTOR, ".variation img")
    assert len(thumbnails) == 3
    wait(browser, 15).until(
        lambda b: all(b.execute_script("return arguments[0].naturalWidth", i) == 128 for i in thumbnails)
    )
    assert [el.text for el in browser.find_elements(By.CSS_SELECTOR, ".variation-number")] == ["v01", "v02", "v03"]
    assert all("rotated" in el.text for el in browser.find_elements(By.CSS_SELECTOR, ".variation .effects"))
    screenshot(browser, "variations")

    # A click plays it in the page: the player has data to show, and its time moves on.
    click(browser, ".variation a.play")
    wait(browser, 30).until(lambda b: _video_state(b)[0] >= 2)
    started = _video_state(browser)[1]
    wait(browser, 30).until(lambda b: _video_state(b)[1] > started)
    assert text_of(browser, "#player-title") == "clip.mp4 · variation 1"
    screenshot(browser, "player")

    # Close the player (it opens over the grid, below the thumbnail), pick two, then download them.
    click(browser, "#player-close")
    assert button_state(browser, "download-selected-button")[0] is False  # nothing picked yet
    boxes = browser.find_elements(By.CSS_SELECTOR, "input[name=outputs]")
    boxes[0].click()
    boxes[2].click()
    assert button_state(browser, "download-selected-button") == (True, "Download selected")
    click(browser, "#download-selected-button")
    wait(browser, 30).until(lambda b: (downloads / "Grid (selected 2).zip").is_file())
    names = zipfile.ZipFile(downloads / "Grid (selected 2).zip").namelist()
    tag = job_tag(job.pk)
    assert sorted(names) == [f"clip/clip_v01_{tag}.mp4", f"clip/clip_v03_{tag}.mp4", "manifest.json"]

    # Make 2 more from the same video, then follow the new job to completion on its own page.
    start_cluster()
    count = browser.find_element(By.ID, "make-more-count")
    count.clear()
    count.send_keys("2")
    click(browser, "#make-more-button")
    wait(browser, 30).until(lambda b: b.current_url.rstrip("/") != f"{live_server.url}/jobs/{job.pk}")
    new = Job.objects.get(origin=job)
    assert browser.current_url == f"{live_server.url}/jobs/{new.pk}/"
    assert text_of(browser, "#origin-link") == "Grid"
    wait(browser, 120).until(lambda b: text_of(b, "#job-badge") == "Completed")
    new_thumbnails = browser.find_elements(By.CSS_SELECTOR, ".variation img")
    assert len(new_thumbnails) == 2
    wait(browser, 15).until(
        lambda b: all(b.execute_script("return arguments[0].naturalWidth", i) == 128 for i in new_thumbnails)
    )
    screenshot(browser, "made-more")
    assert [s.original_name for s in new.sources.all()] == ["clip.mp4"] and new.completed_variations == 2


def test_the_browsable_api_creates_a_job_from_its_form(logged_in, live_server, start_cluster, clips, tmp_path):
    browser = logged_in
    start_cluster()
    first = named_copy(clips(seconds=1.0), tmp_path, "api-one.mp4")
    second = named_copy(clips(seconds=1.0, audio=False), tmp_path, "api-two.mov")
    browser.get(f"{live_server.url}/api/jobs/")
    form = browser.find_element(By.CSS_SELECTOR, "#post-object-form form")
    assert form.find_elements(By.NAME, "status") == [] and form.find_elements(By.NAME, "error") == []
    form.find_element(By.ID, "id_api_videos").send_keys(f"{first}\n{second}")
    variations = form.find_element(By.NAME, "variations")
    variations.clear()
    variations.send_keys("2")
    form.find_element(By.NAME, "name").send_keys("Made in the API form")
    screenshot(browser, "api-form")
    form.find_element(By.CSS_SELECTOR, "button[type=submit], .form-actions button").click()
    wait(browser, 30).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".response-info"), "201 Created"))
    job = Job.objects.get(name="Made in the API form")
    assert [s.original_name for s in job.sources.all()] == ["api-one.mp4", "api-two.mov"]
    wait(browser, 90).until(lambda b: Job.objects.get(pk=job.pk).status == Status.COMPLETED)
    assert OutputFile.objects.filter(job=job).count() == 4


def test_the_api_docs_render_from_local_files(logged_in, live_server):
    browser = logged_in
    browser.get(f"{live_server.url}/api/docs/")
    wait(browser, 30).until(
        EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".swagger-ui .info .title"), "videojobs API")
    )
    assert browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/api/jobs/']")
    screenshot(browser, "api-docs")


def test_a_queued_job_shows_its_place_in_the_queue(logged_in, live_server, password_user, post_job, user):
    browser = logged_in
    post_job(["someone-elses.mp4"], owner=user, variations=1)  # no worker: both wait
    job = post_job(["mine.mp4"], owner=password_user, variations=2, name="Waiting its turn")
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    assert text_of(browser, "#queue-position") == "Number 2 in the queue (1 job ahead)"
    screenshot(browser, "detail-queued")
    browser.get(f"{live_server.url}/")
    assert "Number 2 in the queue" in text_of(browser, f".job-card[data-job='{job.pk}'] .status-line")


def test_the_admin_asks_before_deleting_jobs_with_their_files(browser, live_server, password_user, make_job):
    User.objects.create_superuser("root", password="root-pass-123")
    finished = make_job(status=Status.COMPLETED, outputs=2, owner=password_user, name="Old campaign")
    running = make_job(status=Status.PROCESSING, outputs=0, owner=password_user, name="Still running")
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.ID, "id_username").send_keys("root")
    browser.find_element(By.ID, "id_password").send_keys("root-pass-123")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser, 15).until(EC.url_to_be(f"{live_server.url}/admin/"))  # logged in before moving on
    browser.get(f"{live_server.url}/admin/jobs/job/")
    width = browser.execute_script("return document.documentElement.clientWidth;")
    assert browser.execute_script("return document.documentElement.scrollWidth;") <= width  # 1280 px: no scroll
    assert "Old campaign" in text_of(browser, "#result_list") and "dana" in text_of(browser, "#result_list")
    for job in (finished, running):
        browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{job.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("delete_with_files")
    browser.find_element(By.NAME, "index").click()  # Go

    wait(browser, 15).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Delete these jobs"))
    rows = {
        row.find_element(By.CSS_SELECTOR, "td").text: row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#jobs-to-delete tbody tr")
    }
    assert "cancelled first" in rows["Still running"] and "cancelled first" not in rows["Old campaign"]
    assert text_of(browser, "#bytes-freed") == filesizeformat(
        storage.job_bytes(finished) + storage.job_bytes(running)
    ).replace("\xa0", " ")
    assert Job.objects.count() == 2  # asked, not done
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value='Yes, delete them']").click()

    wait(browser, 15).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messagelist"), "Deleted 2 jobs"))
    assert not Job.objects.exists()
    browser.get(f"{live_server.url}/admin/")
    recent = text_of(browser, "#recent-actions-module")
    assert "Old campaign" in recent and "Still running" in recent


def test_the_upload_page_refuses_a_file_twice_marks_the_one_the_server_refused_and_can_cancel(
    logged_in, live_server, clips, tmp_path
):
    browser = logged_in
    good = named_copy(clips(seconds=2.0, size="640x480"), tmp_path, "good.mp4")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video\n" * 100)
    browser.get(f"{live_server.url}/upload/")
    file_input = browser.find_element(By.ID, "id_videos")
    file_input.send_keys(str(good))
    file_input.send_keys(str(good))
    assert "good.mp4: this file is already in the list" in text_of(browser, "#upload-error")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#file-list li")) == 1

    file_input.send_keys(str(fake))
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, 15).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#file-list li.refused")))
    refused = browser.find_element(By.CSS_SELECTOR, "#file-list li.refused")
    assert "fake.mp4" in refused.text and "not a usable video" in refused.text
    assert "good.mp4" not in refused.text
    click(browser, "#file-list li.refused button")  # Remove the file the server refused
    assert browser.find_elements(By.CSS_SELECTOR, "#file-list li.refused") == []
    assert not browser.find_element(By.ID, "upload-error").is_displayed()  # the old error went with it
    # The refused file's upload went from the server; good.mp4's stays there, for the form sent again.
    assert list(Upload.objects.values_list("filename", "offset")) == [("good.mp4", good.stat().st_size)]
    click(browser, "#file-list li button")  # removed from the list: from the server too
    deadline = timezone.now() + timedelta(seconds=10)
    while Upload.objects.exists():
        assert timezone.now() < deadline, "the removed file's upload is still on the server"

    slow = named_copy(clips(seconds=2.0, size="640x480"), tmp_path, "slow.mp4")
    file_input.send_keys(str(slow))
    browser.set_network_conditions(
        latency=0, download_throughput=10_000_000, upload_throughput=slow.stat().st_size // 4
    )
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, 10).until(EC.visibility_of_element_located((By.ID, "upload-cancel")))
    controls = ["#upload-button", "#id_variations", "#id_name", "#id_videos", "#file-list button"]
    for selector in controls:
        assert not browser.find_element(By.CSS_SELECTOR, selector).is_enabled(), selector
    leaving = (
        "const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented;"
    )
    assert browser.execute_script(leaving) is True  # leaving the page asks first
    screenshot(browser, "upload-in-progress")
    browser.find_element(By.ID, "upload-cancel").click()
    wait(browser, 10).until(EC.text_to_be_present_in_element((By.ID, "upload-error"), "Upload cancelled"))
    for selector in controls:
        assert browser.find_element(By.CSS_SELECTOR, selector).is_enabled(), selector
    assert browser.execute_script(leaving) is False
    assert not browser.find_element(By.ID, "upload-cancel").is_displayed()
    assert Job.objects.count() == 0

    deadline = timezone.now() + timedelta(seconds=10)  # the cancel terminated the upload on the server too
    while Upload.objects.exists():
        assert timezone.now() < deadline, "the cancelled upload is still on the server"

    # Sent again at full speed: the job is made of the uploads.
    browser.set_network_conditions(latency=0, download_throughput=10_000_000, upload_throughput=10_000_000)
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, 30).until(EC.url_matches(r"/jobs/[0-9a-f]{32}/$"))
    assert Job.objects.get().sources.get().original_name == "slow.mp4" and not Upload.objects.exists()


PAGE_SENT = "const r = window.videojobs.testHooks.uploadRequest(); return r ? r.files[0].sent : -1;"


def _in_parts(browser, size: int) -> None:
    """The page sends the file in parts of a tenth of `size` (its own are 8 MiB)."""
    browser.execute_script("document.getElementById('upload-form').dataset.chunkBytes = arguments[0];", size // 10)


def _send_slowly_in_parts(browser, live_server, clip) -> int:
    """Start sending `clip` from the upload page, in parts, at a sixth of its size a second; its size."""
    size = clip.stat().st_size
    browser.get(f"{live_server.url}/upload/")
    browser.find_element(By.ID, "id_videos").send_keys(str(clip))
    browser.set_network_conditions(latency=0, download_throughput=10_000_000, upload_throughput=size // 6)
    _in_parts(browser, size)
    browser.find_element(By.ID, "upload-button").click()
    return size


def test_a_reload_halfway_then_the_same_file_again_goes_on_from_the_servers_offset(
    logged_in, live_server, clips, tmp_path
):
    browser = logged_in
    clip = named_copy(clips(seconds=2.0, size="640x480"), tmp_path, "reloaded.mp4")
    size = _send_slowly_in_parts(browser, live_server, clip)
    wait(browser, 20).until(lambda b: (upload := Upload.objects.first()) is not None and upload.offset >= size // 3)
    browser.get(f"{live_server.url}/upload/")  # a reload (the driver does not stop at "leave the page?")
    kept = Upload.objects.get().offset
    assert 0 < kept < size
    browser.set_network_conditions(latency=0, download_throughput=10_000_000, upload_throughput=10_000_000)
    browser.find_element(By.ID, "id_videos").send_keys(str(clip))  # the same file, chosen again
    _in_parts(browser, size)
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, 30).until(EC.url_matches(r"/jobs/[0-9a-f]{32}/$"))
    job = Job.objects.get()
    assert storage.upload_path(job.sources.get()).read_bytes() == clip.read_bytes()
    # One upload all along (a new one would have started from 0 beside it), taken by the job.
    assert not Upload.objects.exists()


def test_an_upload_cut_off_the_network_halfway_resumes_from_the_servers_offset(logged_in, live_server, clips, tmp_path):
    browser = logged_in
    clip = named_copy(clips(seconds=2.0, size="640x480"), tmp_path, "wifi.mp4")
    size = _send_slowly_in_parts(browser, live_server, clip)
    wait(browser, 20).until(lambda b: b.execute_script(PAGE_SENT) >= size // 2)
    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    retries = "return window.videojobs.testHooks.uploadRequest().files[0].retries;"
    wait(browser, 20).until(lambda b: b.execute_script(retries) > 0)  # a part failed: the network is cut
    # The server keeps what arrived before the connection died: its offset is where the upload resumes.
    cut_at = Upload.objects.get().offset
    assert 0 < cut_at < size
    browser.set_network_conditions(latency=0, download_throughput=10_000_000, upload_throughput=10_000_000)
    wait(browser, 60).until(EC.url_matches(r"/jobs/[0-9a-f]{32}/$"))
    job = Job.objects.get()
    assert storage.upload_path(job.sources.get()).read_bytes() == clip.read_bytes()
    # The server takes a PATCH only at the offset it stands at: the upload went on from cut_at, not from 0.
    assert cut_at > 0 and not Upload.objects.exists()


def test_list_cards_keep_their_thumbnail_size_and_equal_buttons(logged_in, live_server, password_user, make_job):
    browser = logged_in
    make_job(status=Status.COMPLETED, outputs=1, owner=password_user)
    make_job(status=Status.QUEUED, outputs=0, owner=password_user)
    for width in (1280, 375):
        browser.set_window_size(width, 900)
        browser.get(f"{live_server.url}/")
        sizes = browser.execute_script(
            "return Array.from(document.querySelectorAll('.thumb img, .thumb-placeholder'))"
            ".map(function (e) { const r = e.getBoundingClientRect();"
            " return [Math.round(r.width), Math.round(r.height)]; });"
        )
        assert sizes == [[128, 72], [128, 72]], (width, sizes)
        if width == 1280:
            widths = browser.execute_script(
                "return Array.from(document.querySelectorAll('.job-card-actions .button'))"
                ".map(function (e) { return Math.round(e.getBoundingClientRect().width); });"
            )
            # Download, Details, Delete; Cancel, Details
            assert len(widths) == 5 and len(set(widths)) == 1, widths


def test_a_team_made_on_its_page_shares_its_jobs_and_the_list_filters_them(
    logged_in, live_server, password_user, post_job
):
    browser = logged_in
    teammate = User.objects.create_user("erin", password="erin-pass-123")
    browser.get(f"{live_server.url}/teams/")
    browser.find_element(By.ID, "id_team_name").send_keys("Spring campaigns")
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait(browser, 10).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Spring campaigns"))
    browser.find_element(By.ID, "id_username").send_keys("erin")
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait(browser, 10).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "table.members"), "erin"))

    team = Team.objects.get(name="Spring campaigns")
    post_job(["spring-hero.mp4"], owner=password_user, variations=1, fields={"team": team.pk})
    post_job(["erins-cut.mp4"], owner=teammate, variations=1, fields={"team": team.pk})
    post_job(["solo-draft.mp4"], owner=password_user, variations=1, fields={"team": Team.personal(password_user).pk})
    browser.get(f"{live_server.url}/?team={team.pk}")
    titles = lambda: [el.text for el in browser.find_elements(By.CSS_SELECTOR, ".job-title")]  # noqa: E731
    assert sorted(titles()) == ["erins-cut.mp4", "spring-hero.mp4"]
    assert "by erin in Spring campaigns" in browser.find_element(By.ID, "job-cards").text
    screenshot(browser, "team-list")

    Select(browser.find_element(By.NAME, "mine")).select_by_value("1")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait(browser, 10).until(lambda b: titles() == ["spring-hero.mp4"])
    search = browser.find_element(By.NAME, "search")
    search.clear()
    search.send_keys("draft")
    Select(browser.find_element(By.NAME, "team")).select_by_value("")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait(browser, 10).until(lambda b: titles() == ["solo-draft.mp4"])


def test_the_notification_offer_says_when_the_browser_blocks_it_and_can_ask_again(
    logged_in, live_server, password_user, post_job
):
    browser = logged_in
    job = post_job(["waiting.mp4"], owner=password_user, variations=1)  # queued: no worker runs here
    origin = {"origin": live_server.url, "permission": {"name": "notifications"}}
    for setting, words, button in (
        ("denied", "Notifications are blocked for this site", "Ask again"),
        ("granted", "You will get a browser notification", ""),
    ):
        browser.execute_cdp_cmd("Browser.setPermission", {**origin, "setting": setting})
        browser.get(f"{live_server.url}/jobs/{job.pk}/")
        wait(browser, 10).until(lambda b, words=words: words in text_of(b, "#notify"))
        shown = browser.execute_script(
            "const b = document.getElementById('notify-button'); return [b.hidden, b.textContent];"
        )
        assert shown == [not button, button]
    browser.execute_cdp_cmd("Browser.resetPermissions", {})


def test_the_player_opens_by_its_thumbnail_steps_with_the_arrows_closes_on_escape_and_times_are_local(
    logged_in, live_server, password_user, post_job
):
    browser = logged_in
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    job = post_job(["steps.mp4"], owner=password_user, variations=3, run=True)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    created = browser.find_element(By.CSS_SELECTOR, ".job-status time.local")
    utc = job.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    assert created.get_attribute("title") == f"{utc} UTC" and "UTC" not in created.text  # shown in Tokyo's time

    thumbs = browser.find_elements(By.CSS_SELECTOR, ".variation a.play")
    thumbs[1].click()
    wait(browser, 10).until(lambda b: b.find_element(By.ID, "player").is_displayed())
    below = browser.execute_script(
        "const t = document.querySelectorAll('.variation a.play')[1].getBoundingClientRect();"
        " const p = document.getElementById('player').getBoundingClientRect(); return p.top - t.bottom;"
    )
    assert 0 <= below <= 40, below  # right below the thumbnail that was clicked
    assert text_of(browser, "#player-title") == "steps.mp4 · variation 2"
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    wait(browser, 5).until(lambda b: text_of(b, "#player-title") == "steps.mp4 · variation 3")
    body.send_keys(Keys.ARROW_LEFT)
    body.send_keys(Keys.ARROW_LEFT)
    wait(browser, 5).until(lambda b: text_of(b, "#player-title") == "steps.mp4 · variation 1")
    body.send_keys(Keys.ESCAPE)
    wait(browser, 5).until(lambda b: not b.find_element(By.ID, "player").is_displayed())
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


def test_a_job_with_a_failed_video_is_amber_with_true_figures_and_a_cause(
    logged_in, live_server, password_user, post_job
):
    browser = logged_in
    job = post_job(["good.mp4", "broken.mp4"], owner=password_user, variations=2)
    storage.upload_path(job.sources.get(position=1)).write_bytes(b"garbage" * 100)  # broken after the upload
    runner.run_job(job.pk)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    badge = browser.find_element(By.ID, "job-badge")
    assert badge.text == "Completed with 1 failed video"
    assert badge.value_of_css_property("background-color") == "rgba(180, 83, 9, 1)"  # amber
    assert "2 of 4 variations done · 50%" in text_of(browser, ".overall label")
    assert "The video could not be decoded" in text_of(browser, ".source-error")
    screenshot(browser, "failed-video")


def test_rename_then_delete_a_job_from_its_page(logged_in, live_server, password_user, post_job):
    browser = logged_in
    job = post_job(["old-name.mp4"], owner=password_user, variations=1, run=True)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    browser.find_element(By.CSS_SELECTOR, "#rename summary").click()
    field = browser.find_element(By.ID, "id_rename")
    field.clear()
    field.send_keys("Summer teaser")
    browser.find_element(By.CSS_SELECTOR, "#rename button[type=submit]").click()
    wait(browser, 10).until(lambda b: text_of(b, "#job-title") == "Summer teaser")
    assert "Renamed to Summer teaser." in text_of(browser, "main")

    click(browser, "#delete-link")
    wait(browser, 10).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Delete Summer teaser?"))
    assert "1 finished variation" in text_of(browser, "main") and "It cannot be undone." in text_of(browser, "main")
    click(browser, "#confirm-delete")
    wait(browser, 10).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "Deleted Summer teaser"))
    assert not Job.objects.filter(pk=job.pk).exists() and not storage.job_folder(job.pk).exists()


def test_the_job_page_follows_its_event_stream_on_the_real_server_and_never_polls(browser, tmp_path, clips):
    """The stack as `make run` serves it (gunicorn, uvicorn workers, a worker): the page's EventSource opens,
    each change reaches the page through it, and the polling fallback never starts."""
    from bench.service import Service

    service = Service(tmp_path / "service", **PACED_FFMPEG)  # the job still runs when its page opens
    try:
        browser.get(f"{service.url}/login/")
        browser.find_element(By.ID, "id_username").send_keys("bench")
        browser.find_element(By.ID, "id_password").send_keys("bench-pass-123")
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait(browser, 15).until(EC.url_to_be(f"{service.url}/"))
        with clips(seconds=3.0).open("rb") as video:
            job = service.http.post(
                f"{service.url}/api/jobs/", files={"videos": ("live.mp4", video)}, data={"variations": 3}
            ).json()
        browser.get(f"{service.url}/jobs/{job['id']}/")
        assert text_of(browser, "#job-badge") != "Completed"  # else the page would not listen at all
        opened = "const e = window.videojobs.testHooks.events; return !!e && e.readyState === 1;"
        wait(browser, 15).until(lambda b: b.execute_script(opened))
        wait(browser, 90).until(EC.text_to_be_present_in_element((By.ID, "job-badge"), "Completed"))
        assert "3 of 3 variations done" in text_of(browser, ".overall label")
        assert browser.execute_script("return window.videojobs.testHooks.detailPoller;") is None  # never polled
        closed = "return window.videojobs.testHooks.events.readyState === 2;"  # `end` came, and it closed
        wait(browser, 5).until(lambda b: b.execute_script(closed))
    finally:
        service.stop()
