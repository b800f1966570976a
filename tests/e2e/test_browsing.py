"""The browser tests' waiting helper: a document replaced mid-look is looked at again, other errors still fail."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import WebDriverException

from tests.e2e.browsing import wait


def replaced_once_then(result):
    calls = []

    def condition(driver):
        calls.append(driver)
        if len(calls) == 1:
            raise WebDriverException(
                'unknown error: unhandled inspector error: {"code":-32000,'
                '"message":"Node with given id does not belong to the document"}'
            )
        return result

    return condition, calls


def test_a_document_replaced_during_a_look_is_looked_at_again():
    condition, calls = replaced_once_then("found")
    assert wait(object(), 5).until(condition) == "found"
    assert len(calls) == 2


def test_any_other_driver_error_still_fails_the_wait_at_once():
    def condition(driver):
        raise WebDriverException("chrome not reachable")

    with pytest.raises(WebDriverException, match="chrome not reachable"):
        wait(object(), 5).until(condition)
