"""Waiting on a page that changes under the test: polling swaps parts of it, and a form submit replaces it."""

from __future__ import annotations

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# What ChromeDriver answers when an element is looked up while the document holding it is being replaced (seen
# after a form submit: an "unknown error", not a stale element). The next look finds the new document.
REPLACED_DOCUMENT = "does not belong to the document"


class PageWait(WebDriverWait):
    """A WebDriverWait that looks again when the element, or its whole document, was replaced meanwhile."""

    def __init__(self, browser, seconds):
        super().__init__(browser, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])

    def until(self, method, message=""):
        def looked_again_after_a_replaced_document(driver):
            try:
                return method(driver)
            except WebDriverException as error:
                if REPLACED_DOCUMENT in str(error):
                    return False
                raise

        return super().until(looked_again_after_a_replaced_document, message)


def wait(browser, seconds=60):
    return PageWait(browser, seconds)


def text_of(browser, selector):
    """The element's text, looked up again if the page swapped it out between find and read."""
    for _ in range(10):
        try:
            return browser.find_element(By.CSS_SELECTOR, selector).text
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{selector} kept being replaced")


def click(browser, selector):
    """Click, looking the element up again if polling swapped it out in between."""
    for _ in range(10):
        try:
            browser.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{selector} kept being replaced")
