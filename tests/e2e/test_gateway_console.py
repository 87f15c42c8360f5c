"""End to end: the operator console in a real browser (Debian's chromium + chromium-driver, driven by
python3-selenium, headless). Sign in with an operator token, find a dead letter, replay it, and see a real
pgcourierd deliver it to a real receiver; a screenshot of every page goes to the test's tmp dir (and, with
PGCOURIER_CONSOLE_SCREENSHOT=1, the dead-letter page to docs/console.png for the README). Also: forms
without their CSRF token are refused with 403, a tenant's token cannot sign in, the cookie is HttpOnly and
SameSite=Strict."""
import os
import shutil

import pytest

from conftest import ROOT, policy, wait_for

selenium = pytest.importorskip("selenium", reason="python3-selenium is not installed (make deps)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromium-driver is not installed (make deps)")
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                f"--user-data-dir={tmp_path / 'chromium'}"]:
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service  # selenium 4.8 (Debian 12)
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(browser, tmp_path, name):
    path = tmp_path / f"console-{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def test_sign_in_find_a_dead_letter_replay_it_and_see_it_delivered(
        browser, tmp_path, gateway, api_token, create_subscription, make_receiver, daemon_factory, write_policies, db):
    receiver = make_receiver()
    # 500 for the first two requests of each message, then 200: dead-lettered after max_attempts=2, then the
    # replay's attempt is delivered.
    sub, secret = create_subscription(receiver.url("/flaky/2"), events="order.*")
    receiver.secrets.append(secret)
    policies = write_policies({"default": policy(max_attempts=2, base="50ms", cap="100ms")})
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event = db.publish("acme", "order.created", '{"order_id": 1}')
    wait_for(lambda: db.value("SELECT status FROM courier.deliveries WHERE event_id = %s", event) == "dead_lettered",
             what="the delivery to be dead-lettered")
    delivery = db.value("SELECT id FROM courier.deliveries WHERE event_id = %s", event)
    operator = api_token(None, name="console")

    browser.get(gateway.url + "/console/")
    assert browser.current_url.endswith("/console/sign-in")
    shot(browser, tmp_path, "sign-in")
    browser.find_element(By.NAME, "token").send_keys("pgc_" + "W" * 43)
    # A click on a submit button does not wait for the next page: wait for what it must show.
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "That token is not valid." in browser.page_source, timeout=10, what="the refusal")
    browser.find_element(By.NAME, "token").send_keys(operator)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.title.startswith("Overview"), timeout=10, what="the overview after signing in")
    cookie = browser.get_cookie("pgc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "Dead letters" in browser.page_source
    dead_card = browser.find_element(By.XPATH, "//a[contains(., 'Dead letters')]/b").text
    assert dead_card == "1"
    shot(browser, tmp_path, "overview")

    browser.get(gateway.url + "/console/subscriptions")
    assert sub in browser.page_source
    shot(browser, tmp_path, "subscriptions")
    browser.find_element(By.LINK_TEXT, sub).click()
    wait_for(lambda: browser.title.startswith("Subscription "), timeout=10, what="the subscription page")
    assert delivery in browser.page_source and "dead_lettered" in browser.page_source
    shot(browser, tmp_path, "subscription-deliveries")

    browser.get(gateway.url + "/console/dead-letters")
    assert delivery in browser.page_source
    shot(browser, tmp_path, "dead-letters")
    if os.environ.get("PGCOURIER_CONSOLE_SCREENSHOT") == "1":
        shutil.copy(tmp_path / "console-dead-letters.png", os.path.join(ROOT, "docs", "console.png"))
    browser.find_element(By.CSS_SELECTOR, f"button[data-replay='{delivery}']").click()
    wait_for(lambda: "replayed=" in browser.current_url, timeout=10, what="the page after the replay")
    assert browser.find_element(By.ID, "replayed").text == "Replayed 1 dead letter(s)."
    wait_for(lambda: db.value("SELECT status FROM courier.deliveries WHERE id = %s", delivery) == "delivered",
             what="the replayed delivery to be delivered by the daemon")
    assert len([h for h in receiver.hits if h["status"] == 200 and h["verified"]]) == 1

    browser.get(gateway.url + f"/console/deliveries/{delivery}")
    rows = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "table tbody tr")]
    # Columns: #, started, ms, HTTP, outcome, class, retryable, error, response excerpt.
    assert [(r[0], r[3], r[6], r[8]) for r in rows] == [
        ("1", "500", "yes", '{"error":"receiver said no"}'),
        ("2", "500", "yes", '{"error":"receiver said no"}'),
        ("3", "200", "no", '{"ok":true}')], rows
    assert "delivered" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, tmp_path, "delivery-timeline")

    browser.get(gateway.url + "/console/runs")
    assert "No runs." in browser.page_source
    shot(browser, tmp_path, "runs")

    # Signing out forgets the cookie; the console is closed again.
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait_for(lambda: browser.current_url.endswith("/console/sign-in"), timeout=10, what="the sign-in page")
    browser.get(gateway.url + "/console/dead-letters")
    assert browser.current_url.endswith("/console/sign-in")


def test_forms_without_their_csrf_token_are_refused(gateway, api_token, create_subscription, receiver, db):
    operator = api_token(None)
    sub, _ = create_subscription(receiver.url("/ok"))
    event = db.publish("acme", "order.created")
    db.query("UPDATE courier.deliveries SET status = 'dead_lettered', completed_at = now() WHERE event_id = %s "
             "RETURNING id", event)
    delivery = db.value("SELECT id FROM courier.deliveries WHERE event_id = %s", event)
    session = {"Cookie": f"pgc_session={operator}", "Content-Type": "application/x-www-form-urlencoded"}
    for body in [f"delivery_id={delivery}".encode(), f"delivery_id={delivery}&csrf=fp_0000000000000000".encode()]:
        status, headers, page = gateway.call("POST", "/console/dead-letters/replay", raw=body, headers=session)
        assert status == 403, page
    assert db.value("SELECT status FROM courier.deliveries WHERE id = %s", delivery) == "dead_lettered"
    # The token the page carries works (the same request with it replays).
    page = gateway.call("GET", "/console/dead-letters", headers={"Cookie": f"pgc_session={operator}"})[2]
    import re
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    status, headers, _ = gateway.call("POST", "/console/dead-letters/replay",
                                      raw=f"delivery_id={delivery}&csrf={csrf}".encode(), headers=session)
    assert status == 303 and headers["location"] == "/console/dead-letters?replayed=1"
    assert db.value("SELECT status FROM courier.deliveries WHERE id = %s", delivery) == "pending"
    # The sign-in form is protected too (double-submit cookie).
    status, _, _ = gateway.call("POST", "/console/sign-in", raw=f"token={operator}".encode(),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403


def test_a_tenant_token_cannot_sign_in_and_pages_carry_a_strict_policy(gateway, api_token):
    tenant = api_token("acme")
    status, headers, page = gateway.call("GET", "/console/sign-in")
    assert status == 200
    assert "default-src 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert "<script" not in page and "http://" not in page and "https://" not in page  # no external assets
    import re
    nonce = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    status, _, page = gateway.call("POST", "/console/sign-in", raw=f"token={tenant}&csrf={nonce}".encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded",
                                            "Cookie": f"pgc_login={nonce}"})
    assert status == 403 and "operator token" in page
    # A tenant token in the cookie opens nothing either.
    status, headers, _ = gateway.call("GET", "/console/", headers={"Cookie": f"pgc_session={tenant}"})
    assert status == 303 and headers["location"] == "/console/sign-in"
