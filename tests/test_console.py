"""The web console at `GET /`, driven in a real Chromium (Debian's `chromium` through its
`chromedriver`, headless) against a real `coderunner serve`.

Nothing here is skipped: `./run test` installs both packages.  Every wait is a condition
(WebDriverWait, generous timeouts), never a sleep or a timing assertion.  Two canonical
screenshots (a successful run, an error) are written where CODERUNNER_SCREENSHOTS says
(docs/screenshots/ for the README; a temporary folder by default);
the others go to the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from _server import SMALL_POOLS, ServerProcess, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The README's two screenshots are refreshed on request only (a test run leaves the
# checkout clean): CODERUNNER_SCREENSHOTS=docs/screenshots ./run test tests/test_console.py
SCREENSHOTS = Path(
    os.environ.get("CODERUNNER_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-shots-")
).resolve()
WAIT_S = 60  # generous: the machine is small and other suites may run beside these
CONSOLE_KEY = "console-test-key"


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One server without API keys for the console's tests (its own data directory)."""
    with running_server(*SMALL_POOLS) as process:
        yield process


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """A fresh headless Chromium (its own profile), 1280 by 800."""
    # Selenium Manager must not look for (or download) a driver or a browser.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        set_viewport(driver, 1280, 800)
        yield driver
    finally:
        driver.quit()


# -- helpers --------------------------------------------------------------------------------


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """An exact viewport (the window size includes the browser's own frame)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait until `condition` is truthy (stale elements are retried); fail naming `what`."""

    def check(d: WebDriver) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(check, f"waiting for {what}")


def open_console(driver: WebDriver, url: str) -> None:
    driver.get(url)
    wait_for(
        driver, lambda d: d.execute_script("return document.body.dataset.ready"), "the console"
    )


def by_label(driver: WebDriver, text: str) -> WebElement:
    """The form control whose <label> says exactly `text`."""
    label = driver.find_element(By.XPATH, f"//label[normalize-space()={xpath_string(text)}]")
    return driver.find_element(By.ID, label.get_attribute("for") or "")


def xpath_string(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"


def button(driver: WebDriver, text: str) -> WebElement:
    """The visible button named exactly `text`."""
    found = [
        b
        for b in driver.find_elements(By.XPATH, f"//button[normalize-space()={xpath_string(text)}]")
        if b.is_displayed()
    ]
    assert found, f"no visible button {text!r}"
    return found[0]


def click_when_shown(driver: WebDriver, selector: str, what: str) -> str:
    """Wait for an element and click it (found afresh if a list re-renders under us);
    returns its text."""

    def attempt(d: WebDriver) -> str | bool:
        found = d.find_elements(By.CSS_SELECTOR, selector)
        if not found:
            return False
        text = found[0].text
        found[0].click()
        return text or True

    return str(wait_for(driver, attempt, what))


def region(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[role="region"][aria-label="{name}"]')


def code_editor(driver: WebDriver) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, '[aria-label="Code"]')


def editor_text(driver: WebDriver) -> str:
    return str(
        driver.execute_script(
            "return [...document.querySelectorAll('.cm-content .cm-line')]"
            ".map((line) => line.textContent).join('\\n')"
        )
    )


def type_code(driver: WebDriver, code: str) -> None:
    """Replace the editor's code by typing it, as a user would.  The editor indents a new
    line itself; each typed line replaces that indentation with its own."""
    content = code_editor(driver)
    content.click()
    content.send_keys(Keys.CONTROL, "a")
    content.send_keys(Keys.DELETE)
    for index, line in enumerate(code.split("\n")):
        if index:
            content.send_keys(Keys.ENTER)
            content.send_keys(Keys.SHIFT, Keys.HOME)  # select the automatic indentation
        if line:
            content.send_keys(line)
        elif index:
            content.send_keys(Keys.DELETE)  # an empty line: drop the indentation
    wait_for(driver, lambda d: editor_text(d) == code, f"the editor to hold {code!r}")


def set_inputs(driver: WebDriver, inputs: dict[str, Any]) -> None:
    area = by_label(driver, "Inputs")
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    area.send_keys(json.dumps(inputs))


def run_and_wait(driver: WebDriver) -> None:
    """Click Run and wait for the answer (the execution id changes)."""
    before = driver.find_element(By.ID, "execution-id").get_attribute("title")
    button(driver, "Run").click()
    wait_for_new_result(driver, before)


def wait_for_new_result(driver: WebDriver, before: str | None) -> None:
    wait_for(
        driver,
        lambda d: (
            d.find_element(By.ID, "execution-id").get_attribute("title") not in ("", before)
            and d.find_element(By.ID, "run").get_attribute("aria-busy") == "false"
        ),
        "a new result",
    )


def shown_result(driver: WebDriver) -> Any:
    return json.loads(region(driver, "Result").find_element(By.TAG_NAME, "pre").text)


def stream(driver: WebDriver, name: str) -> str:
    return region(driver, "Output").find_element(By.ID, name).text


def duration_text(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "duration").text


def no_horizontal_overflow(driver: WebDriver, width: int) -> None:
    scroll_width = driver.execute_script("return document.documentElement.scrollWidth")
    assert scroll_width <= width + 2, f"the page is {scroll_width}px wide at {width}px"


def only_local_requests(driver: WebDriver, base_url: str) -> None:
    """Nothing the page loaded came from anywhere but the service."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert urls, "the page loaded nothing?"
    assert all(u.startswith(base_url + "/") for u in urls), urls


def press(driver: WebDriver, *keys: str, holding: str | None = None) -> None:
    """Keys sent to whatever has the focus, as a keyboard would (no element is clicked),
    with a modifier (Shift, Control) held down if `holding` names one."""
    actions = ActionChains(driver)
    if holding:
        actions.key_down(holding)
    actions.send_keys(*keys)
    if holding:
        actions.key_up(holding)
    actions.perform()


def focused_id(driver: WebDriver) -> str:
    return str(driver.execute_script("return document.activeElement?.id ?? ''"))


def gutter_line_numbers(driver: WebDriver) -> list[str]:
    """The line numbers the editor's gutter shows (not its hidden width spacer)."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('.cm-gutters .cm-lineNumbers .cm-gutterElement')]"
            ".filter((e) => getComputedStyle(e).visibility !== 'hidden' && e.offsetHeight > 0)"
            ".map((e) => e.textContent)"
        )
    )


def gutter_aligned_with_lines(driver: WebDriver) -> bool:
    """Each number sits left of the code, on the same row as its line."""
    return bool(
        driver.execute_script(
            """
            const numbers = [...document.querySelectorAll(
              '.cm-gutters .cm-lineNumbers .cm-gutterElement')].filter(
              (e) => getComputedStyle(e).visibility !== 'hidden' && e.offsetHeight > 0);
            const lines = [...document.querySelectorAll('.cm-content .cm-line')];
            if (!numbers.length || numbers.length !== lines.length) return false;
            return numbers.every((n, i) => {
              const a = n.getBoundingClientRect(), b = lines[i].getBoundingClientRect();
              return a.width > 0 && a.right <= b.left + 1 && Math.abs(a.top - b.top) <= 2;
            });
            """
        )
    )


def token_styles(driver: WebDriver, *words: str) -> dict[str, Any]:
    """How the editor draws each of `words` (the first token with that exact text) and
    plain text: {"plain": style, word: style or None}; a style is
    [color, font-weight, font-style, CSS class of the token's span]."""
    return dict(
        driver.execute_script(
            """
            const words = arguments[0];
            const style = (e) => {
              const s = getComputedStyle(e);
              return [s.color, s.fontWeight, s.fontStyle];
            };
            const content = document.querySelector('.cm-content');
            const found = {plain: [...style(content.querySelector('.cm-line')), '']};
            for (const word of words) found[word] = null;
            for (const span of content.querySelectorAll('.cm-line span')) {
              const text = span.textContent;
              if (words.includes(text) && found[text] === null) {
                found[text] = [...style(span), span.className];
              }
            }
            return found;
            """,
            list(words),
        )
    )


def assert_highlighted(driver: WebDriver, keywords: list[str], others: list[str]) -> None:
    """Every keyword is drawn alike, in a highlighting class whose look differs from plain
    text; each of `others` (strings, numbers) is highlighted, and differently from the
    keywords."""
    words = [*keywords, *others]
    styles = wait_for(
        driver,
        lambda d: (found := token_styles(d, *words)) and all(found[w] for w in words) and found,
        f"the tokens {words} to be highlighted",
    )
    plain = styles["plain"][:3]
    first = styles[keywords[0]]
    for word in keywords:
        assert styles[word][3], f"{word!r} has no highlighting class"
        assert styles[word][:3] == first[:3], f"{word!r} is drawn unlike {keywords[0]!r}: {styles}"
        assert styles[word][:3] != plain, f"{word!r} looks like plain text: {styles}"
    for word in others:
        assert styles[word][3] and styles[word][:3] != plain, f"{word!r} not highlighted: {styles}"
        assert styles[word][:3] != first[:3], f"{word!r} is drawn like a keyword: {styles}"


# -- tests ----------------------------------------------------------------------------------


def test_a_python_run_shows_result_output_and_duration(
    server: ServerProcess, browser: WebDriver
) -> None:
    open_console(browser, f"{server.base_url}/")
    assert Select(by_label(browser, "Language")).first_selected_option.text == "Python"
    code = (
        "def main(orders, rate=1.0):\n"
        '    print(f"{len(orders)} orders")\n'
        '    total = sum(o["amount"] for o in orders)\n'
        '    return {"total": round(total * rate, 2)}'
    )
    type_code(browser, code)
    set_inputs(browser, {"orders": [{"amount": 2.5}, {"amount": 4}], "rate": 1.5})
    run_and_wait(browser)
    assert shown_result(browser) == {"total": 9.75}
    assert stream(browser, "stdout") == "2 orders"
    assert stream(browser, "stderr") == "(empty)"
    assert duration_text(browser).endswith(" ms")
    assert float(duration_text(browser).removesuffix(" ms")) > 0
    assert "ok" in browser.find_element(By.ID, "status").text
    assert "No error" in region(browser, "Error").text
    only_local_requests(browser, server.base_url)
    # The page's scripts and style come from the package, with a policy that allows
    # nothing but this origin.
    page = httpx.get(f"{server.base_url}/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "console-run.png"))


def test_a_javascript_run_with_ctrl_enter(
    server: ServerProcess, browser: WebDriver, tmp_path: Path
) -> None:
    open_console(browser, f"{server.base_url}/")
    Select(by_label(browser, "Language")).select_by_visible_text("JavaScript")
    # The untouched Python sample became the JavaScript one.
    wait_for(browser, lambda d: "function main" in editor_text(d), "the JavaScript sample")
    type_code(
        browser, 'function main(a, b) { console.log("adding", a, b); return { sum: a + b }; }'
    )
    set_inputs(browser, {"a": 2, "b": 3})
    before = browser.find_element(By.ID, "execution-id").get_attribute("title")
    code_editor(browser).send_keys(Keys.CONTROL, Keys.ENTER)  # from the editor, no click
    wait_for_new_result(browser, before)
    assert shown_result(browser) == {"sum": 5}
    assert stream(browser, "stdout") == "adding 2 3"
    assert duration_text(browser).endswith(" ms")
    # Ctrl+Enter ran the code; it did not add a line to it.
    assert "\n" not in editor_text(browser)
    browser.save_screenshot(str(tmp_path / "javascript.png"))


def test_an_error_marks_its_line_in_the_editor(server: ServerProcess, browser: WebDriver) -> None:
    open_console(browser, f"{server.base_url}/")
    type_code(
        browser,
        "def main(x):\n"
        "    y = x + 1\n"
        '    print("about to divide")\n'
        "    return y / 0\n"
        "\n"
        "# the traceback points at line 4",
    )
    set_inputs(browser, {"x": 1})
    run_and_wait(browser)
    error = region(browser, "Error")
    assert "ZeroDivisionError" in error.text
    assert "line 4" in error.text
    assert "division by zero" in error.text
    assert "failed" in (browser.find_element(By.ID, "status").get_attribute("class") or "")
    assert stream(browser, "stdout") == "about to divide"
    # The line is marked (a line decoration and a gutter marker) with the message under it.
    marked = wait_for(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".cm-content .cm-errorLine"), "a mark"
    )
    assert [m.get_attribute("textContent") for m in marked] == ["    return y / 0"]
    message = browser.find_element(By.CSS_SELECTOR, ".cm-content .cm-errorMessage")
    assert "ZeroDivisionError" in message.text and "division by zero" in message.text
    assert browser.find_elements(By.CSS_SELECTOR, ".cm-errorGutter .cm-errorMarker")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "console-error.png"))
    # An edit clears the stale mark.
    code_editor(browser).send_keys(Keys.CONTROL, Keys.END)
    code_editor(browser).send_keys(" (edited)")
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, ".cm-errorLine"), "no mark")


def test_a_syntax_error_is_marked_too(server: ServerProcess, browser: WebDriver) -> None:
    open_console(browser, f"{server.base_url}/")
    Select(by_label(browser, "Language")).select_by_value("javascript")
    type_code(browser, "const a = 1;\nconst b = ;\nreturn a;")
    run_and_wait(browser)
    assert "syntax_error" in region(browser, "Error").text
    marked = wait_for(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".cm-content .cm-errorLine"), "a mark"
    )
    assert [m.text for m in marked] == ["const b = ;"]


def test_the_form_generated_from_main(
    server: ServerProcess, browser: WebDriver, tmp_path: Path
) -> None:
    open_console(browser, f"{server.base_url}/")
    type_code(browser, "def main(name: str, times: int = 2):\n    return name * times")
    button(browser, "Form").click()
    # (The sample's main has the same parameter names: wait for this main's defaults.)
    wait_for(
        browser,
        lambda d: (
            [e.text for e in d.find_elements(By.CSS_SELECTOR, "#inputs-form label")]
            == ["name", "times"]
            and by_label(d, "times").get_attribute("placeholder") == "2"
        ),
        "the fields name and times",
    )
    name, times = by_label(browser, "name"), by_label(browser, "times")
    assert name.get_attribute("type") == "text" and name.get_attribute("required") is not None
    assert times.get_attribute("type") == "number" and times.get_attribute("placeholder") == "2"
    name.clear()
    name.send_keys("ab")
    times.clear()
    times.send_keys("3")
    browser.save_screenshot(str(tmp_path / "form.png"))
    run_and_wait(browser)
    assert shown_result(browser) == "ababab"
    # The form writes the JSON inputs (one state for both views).
    button(browser, "JSON").click()
    assert json.loads(by_label(browser, "Inputs").get_attribute("value") or "") == {
        "name": "ab",
        "times": 3,
    }
    # Code that does not parse: the form says where.
    type_code(browser, "def main name:\n    return name")
    button(browser, "Form").click()
    wait_for(
        browser,
        lambda d: "does not parse" in d.find_element(By.ID, "form-note").text,
        "the parse problem",
    )


def test_save_search_open_and_load_from_the_library(
    server: ServerProcess, browser: WebDriver, tmp_path: Path
) -> None:
    open_console(browser, f"{server.base_url}/")
    code = 'def main(name: str):\n    return f"Hi {name}, twice: {name}{name}"'
    type_code(browser, code)
    set_inputs(browser, {"name": "Bo"})
    run_and_wait(browser)
    assert shown_result(browser) == "Hi Bo, twice: BoBo"

    button(browser, "Save to library…").click()
    dialog = browser.find_element(By.ID, "save-dialog")
    wait_for(browser, lambda d: dialog.is_displayed(), "the save dialog")
    by_label(browser, "Name").send_keys("greet-twice")
    by_label(browser, "Description").send_keys("Greets someone, twice.")
    browser.save_screenshot(str(tmp_path / "save-dialog.png"))
    button(browser, "Save").click()
    wait_for(browser, lambda d: not dialog.is_displayed(), "the dialog to close")
    assert "greet-twice version 1" in browser.find_element(By.ID, "status").text
    stored = httpx.get(f"{server.base_url}/v1/snippets/greet-twice").json()
    assert stored["code"] == code
    assert stored["description"] == "Greets someone, twice."
    assert stored["examples"] == [
        {"name": None, "inputs": {"name": "Bo"}, "expected": "Hi Bo, twice: BoBo"}
    ]

    search = by_label(browser, "Search the library")
    search.send_keys("nothing-like-it")
    wait_for(
        browser,
        lambda d: "No snippet matches" in d.find_element(By.ID, "library-note").text,
        "an empty search",
    )
    search.clear()
    search.send_keys("TWICE")  # the description and the name are searched, any case
    click_when_shown(
        browser, '#library-list button[data-snippet="greet-twice"]', "the snippet in the list"
    )
    versions = wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#snippet-detail .versions > li"),
        "its versions",
    )
    assert "Version 1" in versions[0].text
    assert "1 example(s), 1 passed" in versions[0].text
    browser.save_screenshot(str(tmp_path / "library.png"))

    # Load it back after the editor changed.
    type_code(browser, "print('something else')")
    set_inputs(browser, {})
    browser.find_element(By.CSS_SELECTOR, '[aria-label="Load version 1 of greet-twice"]').click()
    wait_for(browser, lambda d: editor_text(d) == code, "the loaded code")
    assert json.loads(by_label(browser, "Inputs").get_attribute("value") or "") == {"name": "Bo"}

    # Run it by name, with other inputs.
    set_inputs(browser, {"name": "Cy"})
    before = browser.find_element(By.ID, "execution-id").get_attribute("title")
    button(browser, "Run by name").click()
    wait_for_new_result(browser, before)
    assert shown_result(browser) == "Hi Cy, twice: CyCy"
    assert "greet-twice v1" in browser.find_element(By.ID, "status").text

    # A save the service refuses shows its message (script style has no main).
    type_code(browser, "1 + 1")
    set_inputs(browser, {})
    run_and_wait(browser)
    button(browser, "Save to library…").click()
    name = by_label(browser, "Name")
    assert name.get_attribute("value") == "greet-twice"  # the loaded snippet's, a new version
    assert by_label(browser, "Description").get_attribute("value") == "Greets someone, twice."
    name.clear()
    name.send_keys("scripty")  # another snippet: the loaded one's description does not follow
    assert by_label(browser, "Description").get_attribute("value") == ""
    button(browser, "Save").click()
    error = browser.find_element(By.ID, "save-error")
    wait_for(browser, lambda d: "main" in error.text, "the refusal")
    assert dialog.is_displayed()
    browser.save_screenshot(str(tmp_path / "save-refused.png"))


def test_recent_executions_list_and_open_one(server: ServerProcess, browser: WebDriver) -> None:
    open_console(browser, f"{server.base_url}/")
    type_code(browser, 'print("from history")\n{"answer": 42}')
    set_inputs(browser, {})
    run_and_wait(browser)
    execution_id = browser.find_element(By.ID, "execution-id").get_attribute("title")
    # Replace what is shown, then open the first run again from the history.
    type_code(browser, "2")
    run_and_wait(browser)
    assert shown_result(browser) == 2
    button(browser, "Recent executions").click()
    entry = click_when_shown(
        browser, f'#history-list [data-execution="{execution_id}"]', "the run in the history"
    )
    assert "python" in entry and "ms" in entry
    wait_for(
        browser,
        lambda d: "from history" in d.find_element(By.ID, "status").text,
        "the execution to open",
    )
    assert browser.find_element(By.ID, "execution-id").get_attribute("title") == execution_id
    assert shown_result(browser) == {"answer": 42}
    assert stream(browser, "stdout") == "from history"


def test_a_server_with_an_api_key_asks_for_it(browser: WebDriver, tmp_path: Path) -> None:
    with running_server(*SMALL_POOLS, "--api-key", CONSOLE_KEY) as server:
        # The page and its files need no key; the API does.
        for path in ("/", "/console/console.js", "/console/console.css", "/console/editor.js"):
            assert httpx.get(f"{server.base_url}{path}").status_code == 200, path
        assert httpx.get(f"{server.base_url}/v1/snippets").status_code == 401
        assert httpx.get(f"{server.base_url}/console/nothing.js").status_code == 401

        open_console(browser, f"{server.base_url}/")
        dialog = browser.find_element(By.ID, "key-dialog")
        wait_for(browser, lambda d: dialog.is_displayed(), "the key prompt")
        field = by_label(browser, "API key")
        assert field.get_attribute("type") == "password"
        assert browser.switch_to.active_element == field
        field.send_keys("not-the-key")
        button(browser, "Use this key").click()
        wait_for(
            browser,
            lambda d: "refused" in d.find_element(By.ID, "key-error").text,
            "the refusal",
        )
        browser.save_screenshot(str(tmp_path / "key-prompt.png"))
        field.send_keys(CONSOLE_KEY, Keys.ENTER)
        wait_for(browser, lambda d: not dialog.is_displayed(), "the prompt to close")
        assert browser.execute_script("return sessionStorage.getItem('coderunner.apiKey')") == (
            CONSOLE_KEY
        )
        assert browser.execute_script("return localStorage.length") == 0
        set_inputs(browser, {"name": "Key"})
        run_and_wait(browser)
        assert shown_result(browser) == {"greeting": "Hello, Key!", "length": 11}
        wait_for(
            browser,
            lambda d: "The library is empty" in d.find_element(By.ID, "library-note").text,
            "the library, read with the key",
        )


def test_a_shared_link_restores_the_page(server: ServerProcess, browser: WebDriver) -> None:
    code = "function main(xs = []) {\n  return xs.map((x) => x * 2 + 1);\n}"
    inputs = {"xs": [1, 2, 3], "note": "a & b = c + d#"}
    fragment = (
        f"#language=javascript&code={quote(code, safe='')}"
        f"&inputs={quote(json.dumps(inputs), safe='')}"
    )
    open_console(browser, f"{server.base_url}/{fragment}")
    assert Select(by_label(browser, "Language")).first_selected_option.get_attribute("value") == (
        "javascript"
    )
    assert editor_text(browser) == code
    assert json.loads(by_label(browser, "Inputs").get_attribute("value") or "") == inputs
    run_and_wait(browser)
    assert shown_result(browser) == [3, 5, 7]
    # The page keeps the fragment up to date.
    set_inputs(browser, {"xs": [10]})
    wait_for(
        browser,
        lambda d: quote('{"xs":[10]}', safe="") in d.execute_script("return location.hash"),
        "the fragment to follow the inputs",
    )
    link = browser.execute_script("return location.href")
    # Opening that link elsewhere reproduces it.
    browser.get("about:blank")
    open_console(browser, link)
    assert editor_text(browser) == code
    assert json.loads(by_label(browser, "Inputs").get_attribute("value") or "") == {"xs": [10]}


def test_accessible_names_and_keyboard_use(server: ServerProcess, browser: WebDriver) -> None:
    open_console(browser, f"{server.base_url}/")
    code = code_editor(browser)
    assert code.get_attribute("contenteditable") == "true"
    assert code.accessible_name == "Code"
    language = by_label(browser, "Language")
    assert language.tag_name == "select" and language.accessible_name == "Language"
    inputs = by_label(browser, "Inputs")
    assert inputs.tag_name == "textarea" and inputs.accessible_name == "Inputs"
    run = button(browser, "Run")
    assert run.accessible_name == "Run" and run.aria_role == "button"
    for name in ("Result", "Output", "Error"):
        found = region(browser, name)
        assert found.aria_role == "region" and found.accessible_name == name

    # Keyboard only: Language → Tab → Run; Enter on Run runs.
    browser.execute_script("arguments[0].focus()", language)
    assert browser.switch_to.active_element == language
    language.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == run
    before = browser.find_element(By.ID, "execution-id").get_attribute("title")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for_new_result(browser, before)

    # Tab indents inside the editor; Escape then Tab leaves it.
    code.click()
    code.send_keys(Keys.CONTROL, Keys.END)
    code.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == code
    assert editor_text(browser).endswith(" ")  # Tab indented
    code.send_keys(Keys.ESCAPE)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    wait_for(browser, lambda d: d.switch_to.active_element != code, "the focus to leave the editor")
    assert browser.switch_to.active_element.get_attribute("role") == "tab"  # the JSON tab


def test_the_narrow_layout_has_no_horizontal_scrollbar(
    server: ServerProcess, browser: WebDriver, tmp_path: Path
) -> None:
    set_viewport(browser, 400, 860)
    long_word = "x" * 300
    code = f'print("{long_word}")\n"{long_word}"'
    fragment = f"#language=python&code={quote(code, safe='')}&inputs=%7B%7D"
    open_console(browser, f"{server.base_url}/{fragment}")
    no_horizontal_overflow(browser, 400)
    run_and_wait(browser)
    assert shown_result(browser) == long_word
    no_horizontal_overflow(browser, 400)
    browser.save_screenshot(str(tmp_path / "narrow-top.png"))
    browser.execute_script("arguments[0].scrollIntoView()", region(browser, "Result"))
    browser.save_screenshot(str(tmp_path / "narrow-result.png"))
    button(browser, "Save to library…").click()
    no_horizontal_overflow(browser, 400)
    browser.save_screenshot(str(tmp_path / "narrow-dialog.png"))
    # The wide layout has no page scrollbar at all: every column scrolls on its own.
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(browser, lambda d: not d.find_element(By.ID, "save-dialog").is_displayed(), "closed")
    set_viewport(browser, 1280, 800)
    wait_for(
        browser,
        lambda d: d.execute_script("return document.documentElement.scrollHeight") <= 802,
        "the wide layout",
    )
    no_horizontal_overflow(browser, 1280)


def test_a_browser_error_is_never_logged(server: ServerProcess, browser: WebDriver) -> None:
    """The page loads and runs without a single console error (missing asset, CSP)."""
    open_console(browser, f"{server.base_url}/")
    run_and_wait(browser)
    try:
        logs = browser.get_log("browser")
    except WebDriverException:  # pragma: no cover - a driver without the log endpoint
        pytest.fail("chromedriver did not return the browser log")
    assert [e for e in logs if e["level"] == "SEVERE"] == []


def test_the_editor_numbers_its_lines_and_highlights_python_and_javascript(
    server: ServerProcess, browser: WebDriver, tmp_path: Path
) -> None:
    # Python: a 12-line snippet (two-digit numbers) opened from a link.
    code = "\n".join(
        [
            "import math",
            "",
            "def main(values, scale=2):",
            '    """Scaled square roots."""',
            "    result = []",
            "    for value in values:",
            "        if value < 0:",
            "            continue",
            "        result.append(math.sqrt(value) * scale)",
            "    # the answer",
            "    return result",
            "",
        ]
    )
    assert code.count("\n") + 1 == 12
    open_console(browser, f"{server.base_url}/#language=python&code={quote(code, safe='')}")
    assert editor_text(browser) == code
    wait_for(
        browser,
        lambda d: gutter_line_numbers(d) == [str(n) for n in range(1, 13)],
        "the numbers 1 to 12 in the gutter",
    )
    assert gutter_aligned_with_lines(browser)
    gutter = browser.find_element(By.CSS_SELECTOR, ".cm-gutters .cm-lineNumbers")
    assert gutter.is_displayed()
    assert_highlighted(
        browser,
        ["import", "def", "for", "in", "if", "continue", "return"],
        ['"""Scaled square roots."""', "0", "# the answer"],
    )
    # A new line gets its number.
    code_editor(browser).click()
    code_editor(browser).send_keys(Keys.CONTROL, Keys.END)
    code_editor(browser).send_keys(Keys.ENTER)
    wait_for(
        browser,
        lambda d: gutter_line_numbers(d) == [str(n) for n in range(1, 14)],
        "the number 13",
    )
    browser.save_screenshot(str(tmp_path / "python-highlighting.png"))

    # JavaScript: `const` and `function` are keywords only in this language's mode.
    js = (
        "function main(xs = []) {\n"
        "  const total = xs.reduce((a, b) => a + b, 0);\n"
        '  return { total, label: "sum" };\n'
        "}"
    )
    browser.get("about:blank")
    open_console(browser, f"{server.base_url}/#language=javascript&code={quote(js, safe='')}")
    assert editor_text(browser) == js
    wait_for(
        browser,
        lambda d: gutter_line_numbers(d) == ["1", "2", "3", "4"],
        "the numbers 1 to 4 in the gutter",
    )
    assert gutter_aligned_with_lines(browser)
    assert_highlighted(browser, ["function", "const", "return"], ['"sum"', "0"])
    browser.save_screenshot(str(tmp_path / "javascript-highlighting.png"))


def test_python_and_javascript_auto_indent(server: ServerProcess, browser: WebDriver) -> None:
    open_console(browser, f"{server.base_url}/")
    content = code_editor(browser)
    content.click()
    content.send_keys(Keys.CONTROL, "a")
    content.send_keys(Keys.DELETE)
    wait_for(browser, lambda d: editor_text(d) == "", "an empty editor")
    content.send_keys("def f():")
    content.send_keys(Keys.ENTER)
    # The new line is indented by four spaces, and the caret is at its end.
    wait_for(browser, lambda d: editor_text(d) == "def f():\n    ", "a 4-space indented line")
    content.send_keys("return 1")
    wait_for(browser, lambda d: editor_text(d) == "def f():\n    return 1", "the body typed")
    # One level deeper after a nested block's colon.
    content.send_keys(Keys.CONTROL, "a")
    content.send_keys("def g(x):", Keys.ENTER, "if x:", Keys.ENTER, "x")
    wait_for(
        browser,
        lambda d: editor_text(d) == "def g(x):\n    if x:\n        x",
        "an 8-space indented line",
    )

    # JavaScript indents by two, inside the braces the editor closed.
    Select(by_label(browser, "Language")).select_by_value("javascript")
    content.click()
    content.send_keys(Keys.CONTROL, "a")
    content.send_keys(Keys.DELETE)
    content.send_keys("function f() {", Keys.ENTER, "return 1;")
    wait_for(
        browser,
        lambda d: editor_text(d) == "function f() {\n  return 1;\n}",
        "a 2-space indented line in braces",
    )


def test_stderr_is_shown_apart_from_stdout(server: ServerProcess, browser: WebDriver) -> None:
    open_console(browser, f"{server.base_url}/")
    type_code(browser, "import sys; print('warn', file=sys.stderr)")
    set_inputs(browser, {})
    run_and_wait(browser)
    assert "ok" in browser.find_element(By.ID, "status").text
    output = region(browser, "Output")
    assert stream(browser, "stderr") == "warn"
    assert stream(browser, "stdout") == "(empty)"
    # Each stream is under its own heading, in the Output region.
    headings = [h.text.split()[0] for h in output.find_elements(By.TAG_NAME, "h3")]
    assert headings == ["stdout", "stderr"]
    stderr = output.find_element(By.ID, "stderr")
    assert stderr.is_displayed()
    assert "empty" not in (stderr.get_attribute("class") or "")
    assert "warn" not in output.find_element(By.ID, "stdout").text
    assert "No error" in region(browser, "Error").text

    # Both streams at once: each holds only its own lines, and stderr looks different.
    type_code(
        browser, "import sys\nprint('out 1')\nprint('err 1', file=sys.stderr)\nprint('out 2')"
    )
    run_and_wait(browser)
    assert stream(browser, "stdout") == "out 1\nout 2"
    assert stream(browser, "stderr") == "err 1"
    look = browser.execute_script(
        "const s = (id) => { const c = getComputedStyle(document.getElementById(id));"
        " return [c.backgroundColor, c.borderLeftStyle, c.borderLeftColor]; };"
        " return [s('stdout'), s('stderr')]"
    )
    assert look[0] != look[1], look

    # JavaScript's console.error is stderr too.
    Select(by_label(browser, "Language")).select_by_value("javascript")
    type_code(browser, 'console.log("to out"); console.error("to err");')
    run_and_wait(browser)
    assert stream(browser, "stdout") == "to out"
    assert stream(browser, "stderr") == "to err"


def test_save_to_the_library_with_the_keyboard_only(
    server: ServerProcess, browser: WebDriver, tmp_path: Path
) -> None:
    """From a shared link to a saved snippet with Tab, Enter and typing: no click."""
    code = "def main(n: int):\n    return n * 2"
    fragment = (
        f"#language=python&code={quote(code, safe='')}"
        f"&inputs={quote(json.dumps({'n': 21}), safe='')}"
    )
    open_console(browser, f"{server.base_url}/{fragment}")
    save = browser.find_element(By.ID, "save")
    # Tab from the top of the page: skip link, Language, Run, Copy link, Save to library….
    passed = []
    for _ in range(10):
        press(browser, Keys.TAB)
        passed.append(focused_id(browser))
        if browser.switch_to.active_element == save:
            break
    assert browser.switch_to.active_element == save, passed
    assert passed[-4:-1] == ["language", "run", "share"], passed
    press(browser, Keys.ENTER)
    dialog = browser.find_element(By.ID, "save-dialog")
    wait_for(browser, lambda d: dialog.is_displayed(), "the save dialog")
    assert focused_id(browser) == "save-name"
    press(browser, "double-it")
    press(browser, Keys.TAB)
    assert focused_id(browser) == "save-description"
    press(browser, "Doubles n.")
    press(browser, Keys.TAB)
    assert focused_id(browser) == "save-example"
    assert browser.find_element(By.ID, "save-example").is_selected()
    press(browser, Keys.TAB)
    assert focused_id(browser) == "save-cancel"
    press(browser, Keys.TAB)
    assert focused_id(browser) == "save-submit"
    browser.save_screenshot(str(tmp_path / "keyboard-save.png"))
    # Nothing ran yet: saving runs the code first, and that run becomes the example.
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: not dialog.is_displayed(), "the dialog to close")
    assert "double-it version 1" in browser.find_element(By.ID, "status").text
    assert shown_result(browser) == 42
    stored = httpx.get(f"{server.base_url}/v1/snippets/double-it").json()
    assert stored["code"] == code
    assert stored["description"] == "Doubles n."
    assert stored["examples"] == [{"name": None, "inputs": {"n": 21}, "expected": 42}]
    # The focus went back to the button that opened the dialog (not lost on the page).
    assert browser.switch_to.active_element == save

    # Again with a longer description (an unchanged save keeps version 1), and Enter in
    # the remembered name saves: version 2.
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: dialog.is_displayed(), "the save dialog again")
    assert focused_id(browser) == "save-name"
    assert browser.find_element(By.ID, "save-name").get_attribute("value") == "double-it"
    press(browser, Keys.TAB)
    assert focused_id(browser) == "save-description"
    press(browser, Keys.END, holding=Keys.CONTROL)
    press(browser, " Twice as much.")
    press(browser, Keys.TAB, holding=Keys.SHIFT)
    assert focused_id(browser) == "save-name"
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: not dialog.is_displayed(), "the dialog to close again")
    assert "double-it version 2" in browser.find_element(By.ID, "status").text
    stored = httpx.get(f"{server.base_url}/v1/snippets/double-it").json()
    assert stored["version"] == 2
    assert stored["description"] == "Doubles n. Twice as much."
