"""The operator page (web/) in headless Chromium against the real daemon,
PostgreSQL and Kafka: the seed inventory imported through the API and
counted on the page, filters, paging and CSV export of the address list, a
reservation made in the page and seen in the API and its audit, the 409
shown as "someone else got it", the subnet map's cells against the API's
statuses, the health page, and the Content-Security-Policy holding against
an injected script and a hostile hostname, an unnamed subnet, a keyless
dead letter, the focus after a write and an allocation answered 202
followed to its outcome.  Every page is saved as a
screenshot under $IPAM_WEB_SCREENSHOTS (ctest passes the build folder's
web-screenshots) for a person to look at.

Chromium, chromedriver and Selenium are Debian's (chromium,
chromium-driver, python3-selenium); without them the tests are skipped
(exit 77), except under CI=true where that fails."""

import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

import psycopg2

import harness
from harness import Daemon, Database, Kafka, Topics, quiet_port, wait_until

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:  # pragma: no cover - reported by skip_without_browser
    webdriver = None

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WEB_DIR = os.path.join(harness.ROOT, "web")
SCREENSHOTS = os.environ.get("IPAM_WEB_SCREENSHOTS",
                             os.path.join(harness.ROOT, "build", "web-screenshots"))
READ_TOKEN = "r-" + "3" * 30
WRITE_TOKEN = "w-" + "9" * 30
HOSTILE = "<img src=x onerror=alert(1)>"

# The seed: 654 static pool addresses in six subnets (one without a pool)
# and 105 servers, 72 inside pools and 33 in subnets but outside their
# pools: 654 + 33 = 687 rows, 105 allocated, 654 - 72 = 582 available.
SEED_SUBNETS = [
    ("s-a", "Servers A", "127.100.0.0/24", ["127.100.0.10-127.100.0.215"]),
    ("s-b", "Servers B", "127.100.1.0/24",
     ["127.100.1.20-127.100.1.119", "127.100.1.200-127.100.1.249"]),
    ("s-c", "Servers C", "127.100.2.0/23", ["127.100.2.10-127.100.3.13"]),
    ("s-d", "Lab small", "127.100.4.0/26", ["127.100.4.8/29"]),
    ("s-e", "Lab east", "127.100.5.0/27", ["127.100.5.1-127.100.5.30"]),
    ("s-f", "Loose", "127.100.6.0/24", []),
]
POOLED = {"s-a": 206, "s-b": 150, "s-c": 260, "s-d": 8, "s-e": 30, "s-f": 0}


def seed_server_addresses():
    """The 105 servers' addresses: 72 in pools, then 33 outside them."""
    inside = (["127.100.0.%d" % i for i in range(10, 40)]
              + ["127.100.1.%d" % i for i in range(20, 42)]
              + ["127.100.2.%d" % i for i in range(250, 256)]
              + ["127.100.3.%d" % i for i in range(0, 6)]
              + ["127.100.4.%d" % i for i in range(8, 16)])
    outside = (["127.100.0.%d" % i for i in range(220, 240)]
               + ["127.100.6.%d" % i for i in range(10, 23)])
    assert len(inside) == 72 and len(outside) == 33
    return inside + outside


def seed():
    """The import body of the seed; server 7 has a hostile hostname."""
    subnets = [{"id": sid, "name": name, "cidr": cidr, "static_ip_pools": pools,
                "ping": False}
               for sid, name, cidr, pools in SEED_SUBNETS]
    servers = []
    for n, ip in enumerate(seed_server_addresses(), start=1):
        servers.append({"id": str(n),
                        "hostname": HOSTILE if n == 7 else "host-%03d" % n,
                        "ip_address": ip,
                        "nic_mac": "52:54:00:00:%02x:%02x" % (n // 256, n % 256),
                        "device_type": "vm" if n % 2 else "baremetal",
                        "manufacture": ["Dell, Inc.", "HPE", "qemu"][n % 3]})
    return {"subnets": subnets, "servers": servers}


def skip_without_browser():
    """Exit 77 (a skip) when Chromium or Selenium is missing, unless CI."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if webdriver is None:
        missing.append("python3-selenium")
    if missing:
        print("SKIP: the browser tests need %s" % ", ".join(missing))
        if os.environ.get("CI") == "true":
            sys.exit(1)
        sys.exit(77)


class Web:
    """A daemon serving web/ with read and write tokens, the seed imported
    through its API, and a headless Chromium on its page."""

    def __init__(self):
        self.db = Database()
        self.topics = Topics()
        self.dir = tempfile.mkdtemp(prefix="ipamd-web-")
        api = {"web_dir": WEB_DIR}
        for scope, token in (("read", READ_TOKEN), ("write", WRITE_TOKEN)):
            path = os.path.join(self.dir, scope + ".token")
            with open(path, "w") as f:
                f.write(token + "\n")
            api[scope + "_token_file"] = path
        # A port of its own, so that a restarted daemon serves the page
        # where it was.
        self.daemon = Daemon(self.db, self.topics, directory=self.dir,
                             config={"api": api, "http": {
                                 "listen": "127.0.0.1:%d" % quiet_port()}})
        self.daemon.start()
        self.daemon.wait_ready()
        self.daemon.wait_assigned(3)
        self.url = "http://127.0.0.1:%d" % self.daemon.http_port()
        status, body, _ = self.call("POST", "/api/v1/import", seed(),
                                    timeout=120)
        assert status == 200, body
        assert (body["servers"], body["subnets"]) == (105, 6), body
        self.downloads = os.path.join(self.dir, "downloads")
        os.makedirs(self.downloads)
        self.driver = None
        self.start_browser()

    def start_browser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,800",
                    "--force-device-scale-factor=1", "--no-first-run",
                    "--disable-background-networking", "--disable-extensions",
                    "--user-data-dir=" + os.path.join(self.dir, "chromium")):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER),
                                       options=options)
        self.desktop()
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow",
                                     "downloadPath": self.downloads})

    def desktop(self):
        """A 1280x800 viewport."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 1280, "height": 800,
                                     "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, path, body=None, token=WRITE_TOKEN, requester=None,
             timeout=30):
        """One request to the API: (status, JSON or text, headers)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data,
                                         method=method)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if requester:
            request.add_header("X-Requester", requester)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text, headers = (response.status,
                                         response.read().decode(),
                                         response.headers)
        except urllib.error.HTTPError as error:
            status, text, headers = error.code, error.read().decode(), error.headers
        if headers.get("Content-Type", "").startswith("application/json"):
            return status, json.loads(text), headers
        return status, text, headers

    def api_rows(self, query=""):
        """Every row the API lists for a query, page after page."""
        rows, cursor = [], None
        while True:
            path = "/api/v1/addresses?limit=1000" + query
            if cursor:
                path += "&cursor=" + cursor
            status, page, _ = self.call("GET", path, token=READ_TOKEN)
            assert status == 200, page
            rows += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return rows

    # ---- the browser ----

    def script_fetch(self, answers):
        """Plays answers (method, the end of the path, status, body, and
        optionally headers, once, delay in ms) to the page's fetch; every
        other call goes to the daemon.  window.scripted lists what was
        played."""
        self.driver.execute_script("""
            const real = window.fetch, answers = arguments[0];
            window.scripted = [];
            window.fetch = (url, options) => {
                const method = (options && options.method) || 'GET';
                for (const a of answers)
                    if (a.method === method && String(url).endsWith(a.path) &&
                        !(a.once && a.used)) {
                        window.scripted.push(method + ' ' + a.path + ' ' +
                            a.status);
                        a.used = true;
                        return new Promise((resolve) => setTimeout(
                            resolve, a.delay || 0)).then(() => new Response(
                            JSON.stringify(a.body), { status: a.status,
                            headers: Object.assign({ 'Content-Type':
                            'application/json' }, a.headers || {}) }));
                    }
                return real(url, options);
            };""", answers)

    def scripted(self):
        return self.driver.execute_script("return window.scripted")

    def wait_map(self, subnet):
        """Waits until the map of a subnet's pool is drawn: until then the
        card below it moves down as it comes, and a click aimed at the
        allocation form may land on a cell of the map."""
        wait_until(lambda: len(self.find_all(
            ".map[data-subnet='%s'] .cell" % subnet)) == POOLED[subnet], 30,
            "the map of %s" % subnet)

    def open(self, fragment):
        """Loads the page at #fragment and waits until it has rendered."""
        self.driver.get(self.url + "/#" + fragment)
        self.wait_rendered("#" + fragment)

    def go(self, fragment):
        """Moves the loaded page to #fragment (a hash change)."""
        self.driver.execute_script(
            "if (location.hash !== '#' + arguments[0]) {"
            " delete document.body.dataset.rendered;"
            " location.hash = arguments[0]; }", fragment)
        self.wait_rendered("#" + fragment)

    def preset_token(self, token, requester=None):
        """Puts a token in the tab's sessionStorage before the page loads
        (as if entered earlier in this tab), from a file of the origin."""
        self.driver.get(self.url + "/favicon.svg")
        self.driver.execute_script(
            "sessionStorage.setItem('ipam-syncd.token', arguments[0]);"
            "sessionStorage.setItem('ipam-syncd.requester', arguments[1]);",
            token, requester or "")

    def wait_rendered(self, hash_value):
        wait_until(lambda: self.driver.execute_script(
            "return document.body.dataset.rendered") == hash_value,
            30, "the page to render %s" % hash_value)

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        """The rendered text of the first element css selects ("" if none);
        read in one step, so that a render in between cannot leave a
        stale element."""
        return self.driver.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "return e ? e.innerText.trim() : ''", css)

    def wait_text(self, css, predicate, what):
        try:
            wait_until(lambda: predicate(self.text(css)), 30, what)
        except AssertionError as error:
            raise AssertionError("%s; %s holds %r at %s" % (
                error, css, self.text(css), self.driver.current_url)) from None
        return self.text(css)

    def assert_ids_labels_and_landmarks(self):
        """The rules of a well-formed page, on what is rendered now: every
        id once, every label's for naming one element that can take it,
        every landmark of a kind with a name of its own."""
        found = self.driver.execute_script("""
            const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
            const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
            const unlabelled = [...document.querySelectorAll('label[for]')]
                .filter(l => !document.getElementById(l.htmlFor) ||
                    !['INPUT', 'SELECT', 'TEXTAREA', 'BUTTON'].includes(
                        document.getElementById(l.htmlFor).tagName))
                .map(l => l.htmlFor);
            const names = [...document.querySelectorAll(
                'nav, aside, form[aria-label], section[aria-label]')]
                .map(e => e.tagName + ':' + (e.getAttribute('aria-label') ||
                    e.getAttribute('aria-labelledby') || ''));
            const sameName = names.filter((n, i) => names.indexOf(n) !== i);
            return [twice, unlabelled, sameName];""")
        assert found == [[], [], []], (self.driver.execute_script(
            "return location.hash"), found)

    def use_token(self, token, requester=None):
        """Enters a token (and a name) in the page's token form."""
        box = self.find("#token-box")
        if box.get_attribute("open") is None:
            self.find("#token-box summary").click()
        field = self.find("#token-input")
        field.clear()
        field.send_keys(token)
        name = self.find("#requester-input")
        name.clear()
        if requester:
            name.send_keys(requester)
        self.driver.execute_script("delete document.body.dataset.rendered")
        self.find("#token-form button[type=submit]").click()
        expected = {WRITE_TOKEN: "Token: write",
                    READ_TOKEN: "Token: read only"}.get(token, "Token refused")
        self.wait_text("#token-state", lambda t: t == expected, expected)
        # The page renders again with the token.
        self.wait_rendered(self.driver.execute_script(
            "return location.hash || '#/addresses'"))

    def rows(self):
        """The address list's rows: [(address, status)]."""
        return [tuple(r) for r in self.driver.execute_script(
            "return [...document.querySelectorAll('#addresses tbody tr[data-ip]')]"
            ".map(tr => [tr.dataset.ip, tr.dataset.status])")]

    def screenshot(self, name, full=False):
        """Saves the viewport (or, full, the whole page) as name.png."""
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = os.path.join(SCREENSHOTS, name + ".png")
        if full:
            import base64
            size = self.driver.execute_script(
                "return [document.documentElement.scrollWidth,"
                " document.documentElement.scrollHeight]")
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1],
                         "scale": 1}})
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        else:
            assert self.driver.save_screenshot(path), path
        return path

    def console(self):
        """The browser's console since the last call: [(level, message)]."""
        return [(e["level"], e["message"]) for e in self.driver.get_log("browser")]

    def assert_no_console_errors(self, allowed=()):
        """No error or warning on the console but those allowed (regexes)."""
        import re
        # preset_token's visit to favicon.svg makes Chromium look for
        # /favicon.ico; the page itself names its icon.
        allowed = list(allowed) + [r"/favicon\.ico - .*404"]
        bad = [(level, message) for level, message in self.console()
               if level in ("SEVERE", "WARNING")
               and not any(re.search(a, message) for a in allowed)]
        assert not bad, bad

    def assert_no_alert(self):
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            return
        text = alert.text
        alert.dismiss()
        raise AssertionError("an alert ran: %r" % text)

    def close(self):
        if self.driver is not None:
            self.driver.quit()
        status = self.daemon.stop()
        self.daemon.close()
        self.db.close()
        assert status == 0, status


def counts(web):
    return {k: int(web.text("#count-" + k))
            for k in ("total", "available", "allocated", "reserved", "quarantine")}


def test_web_address_list_counts_filters_paging_and_export():
    """The list shows the seed's counts; filters, search and paging change
    the rows; the URL holds the filter; the CSV export saves what the
    filter matches; the phone width and dark mode render."""
    web = Web()
    try:
        web.preset_token(WRITE_TOKEN, "ops-web")
        web.open("/addresses")
        assert web.text("#token-state") == "Token: write"
        web.wait_text("#page-range", lambda t: t.startswith("1–100"), "first page")
        assert counts(web) == {"total": 687, "available": 582, "allocated": 105,
                               "reserved": 0, "quarantine": 0}, counts(web)
        assert web.text("#total") == "687"
        assert web.text("#page-range") == "1–100 of 687"
        first = web.rows()
        api_first = [r["ip_address"] for r in web.api_rows()][:100]
        assert [ip for ip, _ in first] == api_first
        web.screenshot("01-addresses")

        # The keyboard: the first Tab reaches the skip link, the next ones
        # the pages' links, each a real link with a focus ring.
        web.find("body").send_keys(Keys.TAB)
        focused = web.driver.switch_to.active_element
        assert focused.text == "Skip to the content", focused.text
        focused.send_keys(Keys.TAB)
        focused = web.driver.switch_to.active_element
        assert focused.get_attribute("href").endswith("#/addresses")
        assert web.driver.execute_script(
            "return getComputedStyle(document.activeElement).outlineStyle"
        ) == "solid"

        # Paging: the next page is the API's next hundred, to the end.
        web.find("#next-page").click()
        web.wait_text("#page-range", lambda t: t.startswith("101–200"), "page 2")
        wait_until(lambda: web.driver.execute_script(
            "return document.activeElement && document.activeElement.id")
            == "next-page", 10, "the focus on Next")
        second = web.rows()
        assert [ip for ip, _ in second] == [r["ip_address"] for r in
                                            web.api_rows()][100:200]
        assert not set(second) & set(first)
        for n in range(3, 8):
            web.find("#next-page").click()
            web.wait_text("#page-range", lambda t, n=n: t.startswith(
                "%d–" % ((n - 1) * 100 + 1)), "page %d" % n)
        assert web.text("#page-range") == "601–687 of 687"
        assert len(web.rows()) == 87
        assert web.find("#next-page").get_attribute("disabled") is not None
        # The keyboard goes on from the pager, not from the top of the
        # page: on the last page Next leads nowhere, so Previous has it.
        wait_until(lambda: web.driver.execute_script(
            "return document.activeElement && document.activeElement.id")
            == "prev-page", 10, "the focus on Previous")
        web.find("#prev-page").click()
        web.wait_text("#page-range", lambda t: t.startswith("501–600"), "back")
        web.find("#first-page").click()
        web.wait_text("#page-range", lambda t: t.startswith("1–100"), "first")
        # A double click on Next moves one page: the buttons wait for the
        # page they asked for, so Previous then leads back to the first.
        web.driver.execute_script(
            "const b = document.getElementById('next-page'); b.click(); b.click();")
        web.wait_text("#page-range", lambda t: t.startswith("101–200"), "one page on")
        assert [ip for ip, _ in web.rows()] == [r["ip_address"] for r in
                                                web.api_rows()][100:200]
        web.find("#prev-page").click()
        web.wait_text("#page-range", lambda t: t.startswith("1–100"), "back to the first")

        # A status filter from the form: the URL holds it.
        web.find("#f-status-allocated").click()
        web.find("#f-apply").click()
        web.wait_rendered("#/addresses?status=allocated")
        web.wait_text("#total", lambda t: t == "105", "105 allocated")
        assert {s for _, s in web.rows()} == {"allocated"}
        assert len(web.rows()) == 100

        # Subnet and search, by keyboard: Enter in the search box applies.
        Select(web.find("#f-subnet")).select_by_value("s-d")
        search = web.find("#f-q")
        search.send_keys("host-07")
        search.send_keys(Keys.ENTER)
        web.wait_rendered("#/addresses?status=allocated&subnet=s-d&q=host-07")
        expected = [r["ip_address"] for r in web.api_rows(
            "&status=allocated&subnet=s-d&q=host-07")]
        assert expected and len(expected) < 8, expected
        wait_until(lambda: [ip for ip, _ in web.rows()] == expected, 30,
                   "the searched rows")

        # A shared view: the URL alone gives the filter and its rows.
        web.open("/addresses?status=available&subnet=s-e&limit=25")
        web.wait_text("#total", lambda t: t == "30", "30 available in s-e")
        assert web.find("#f-status-available").is_selected()
        assert not web.find("#f-status-allocated").is_selected()
        assert Select(web.find("#f-subnet")).first_selected_option \
            .get_attribute("value") == "s-e"
        assert web.text("#page-range") == "1–25 of 30"
        assert all(ip.startswith("127.100.5.") and s == "available"
                   for ip, s in web.rows())

        # CSV of the current filter, fetched with the token and saved.
        web.find("#export-csv").click()
        saved = os.path.join(web.downloads, "addresses.csv")
        wait_until(lambda: os.path.exists(saved) and os.path.getsize(saved) > 0,
                   30, "addresses.csv")
        with open(saved) as f:
            lines = f.read().strip().splitlines()
        assert lines[0].startswith("vrf,ip_address"), lines[0]
        assert len(lines) == 31, len(lines)

        # A status count at the top is a link to its filter.
        web.open("/addresses")
        web.find("a.count.st-allocated").click()
        web.wait_rendered("#/addresses?status=allocated")
        web.wait_text("#total", lambda t: t == "105", "105")

        # Phone width, then dark mode at the desktop width.
        web.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 390, "height": 844,
                                    "deviceScaleFactor": 1, "mobile": True})
        web.open("/addresses")
        web.wait_text("#page-range", lambda t: t.startswith("1–100"), "phone")
        width = web.driver.execute_script(
            "return document.documentElement.scrollWidth")
        assert width <= 390, "the page scrolls sideways at 390 px: %d" % width
        web.screenshot("05-phone-addresses")
        web.open("/subnets")
        wait_until(lambda: len(web.find_all(".map")) == 5, 30, "maps")
        web.screenshot("05-phone-subnets")
        web.desktop()
        web.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        web.open("/addresses")
        web.wait_text("#page-range", lambda t: t.startswith("1–100"), "dark")
        background = web.driver.execute_script(
            "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 21, 27)", background
        web.screenshot("06-dark-addresses")
        web.open("/subnets")
        wait_until(lambda: len(web.find_all(".map")) == 5, 30, "dark maps")
        web.screenshot("06-dark-subnets")
        web.open("/address/-/127.100.0.10")
        web.screenshot("06-dark-detail")
        web.assert_no_console_errors()

        # An export the daemon cuts mid-way (a page after the first
        # fails) is said so, and nothing is saved.
        web.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        status, body, _ = web.call("POST", "/api/v1/import", {"subnets": [
            {"id": "s-big", "name": "big", "cidr": "127.101.0.0/20",
             "static_ip_pools": ["127.101.0.1-127.101.7.208"], "ping": False}]},
            timeout=120)
        assert status == 200, body
        wait_until(lambda: web.db.scalar("SELECT count(*) FROM public.ipam "
                                         "WHERE subnet_id = 's-big'") == 2000,
                   60, "the big subnet's rows")
        web.db.query("UPDATE ipam_state.address SET updated_at = '1999-01-01Z' "
                     "WHERE ip_address = '127.101.7.200'")
        harness.refuse_times_before_2000(web.db)
        os.remove(saved)
        web.open("/addresses")
        web.wait_text("#page-range", lambda t: t.startswith("1–100"), "the list")
        web.find("#export-csv").click()
        wait_until(lambda: "export was cut" in web.text("#notice"), 60,
                   "the cut export said so")
        assert "nothing was saved" in web.text("#notice")
        web.screenshot("07-export-cut")
        time.sleep(1)
        assert os.listdir(web.downloads) == [], os.listdir(web.downloads)
        web.assert_no_console_errors(allowed=[r"/api/v1/addresses\?.*Failed to load"
                                              r"|ERR_INCOMPLETE_CHUNKED_ENCODING"])
    finally:
        web.close()


def test_web_reserve_in_the_page_and_the_conflict():
    """A reservation made in the page is in the API with its requester and
    in the audit; an address another operator took first shows "someone
    else got it" with the row as it now is; without a write token the page
    offers no write."""
    web = Web()
    try:
        web.open("/address/-/127.100.0.100")
        # No token: the daemon has tokens, so the page asks for one.
        wait_until(lambda: "needs a token" in web.text("#notice"), 30, "notice")
        web.use_token(READ_TOKEN)
        web.go("/address/-/127.100.0.100")
        assert not web.find_all("#reserve"), "a read token may not write"
        assert "may only read" in web.text("#actions")

        # The name travels in an HTTP header: the page says so, rather
        # than sending a write the daemon refuses or fetch() cannot send.
        if web.find("#token-box").get_attribute("open") is None:
            web.find("#token-box summary").click()
        web.find("#requester-input").send_keys("J\u00fcrgen")
        web.find("#token-form button[type=submit]").click()
        wait_until(lambda: "printable ASCII" in web.text("#notice"), 30,
                   "the notice about the name")

        web.use_token(WRITE_TOKEN, "ops-web")
        web.go("/address/-/127.100.0.100")
        description = web.find("#reserve-description")
        description.send_keys("new printer, 2nd floor")
        description.send_keys(Keys.ENTER)
        web.wait_text("#action-result", lambda t: t == "Reserved.", "reserved")
        status, detail, _ = web.call("GET", "/api/v1/addresses/-/127.100.0.100",
                                     token=READ_TOKEN)
        assert status == 200, detail
        assert detail["row"]["status"] == "reserved"
        assert detail["row"]["description"] == "new printer, 2nd floor"
        assert detail["mark"]["requested_by"] == "write:ops-web", detail["mark"]
        assert detail["history"][0]["requested_by"] == "write:ops-web", \
            detail["history"][0]
        # The page shows the audit's timeline with who asked, and the
        # address's first row as one of its pool's run (the seed's
        # subnet wrote it with its neighbours: one audit row).
        wait_until(lambda: "by write:ops-web" in web.text("#history"), 30,
                   "the timeline")
        run = detail["history"][-1].get("run")
        assert run and run[1] == "127.100.0.215", detail["history"]
        assert "together with %s – %s" % tuple(run) in web.text("#history"), \
            web.text("#history")
        assert web.find("h1 .badge").text == "reserved"
        web.screenshot("03-detail")
        web.screenshot("03-detail-full", full=True)

        # Quarantine with a reason, then release, from the page.
        web.find("#quarantine-reason").send_keys("abuse report 4711")
        web.find("#quarantine").click()
        web.wait_text("#action-result", lambda t: t == "Quarantined.", "q")
        status, detail, _ = web.call("GET", "/api/v1/addresses/-/127.100.0.100",
                                     token=READ_TOKEN)
        assert detail["row"]["status"] == "quarantine", detail["row"]
        wait_until(lambda: web.find("h1 .badge").text == "quarantine", 30, "q")
        wait_until(lambda: "abuse report 4711" in web.text("#mark"), 30,
                   "the quarantine's reason on the page")
        web.screenshot("03-detail-quarantine")
        web.find("#release").click()
        web.wait_text("#action-result", lambda t: t == "Released.", "released")
        status, detail, _ = web.call("GET", "/api/v1/addresses/-/127.100.0.100",
                                     token=READ_TOKEN)
        assert detail["row"]["status"] == "available" and not detail["mark"]

        # Someone else gets 127.100.0.101 after the page showed it free.
        web.go("/address/-/127.100.0.101")
        assert web.find("h1 .badge").text == "available"
        status, body, _ = web.call("PUT", "/api/v1/marks/-/127.100.0.101",
                                   {"status": "reserved",
                                    "description": "bob's switch",
                                    "if_available": True}, requester="bob")
        assert status == 200, body
        web.find("#reserve-description").send_keys("my switch")
        web.find("#reserve").click()
        web.wait_text("#action-result", lambda t: "Someone else got it" in t,
                      "the conflict")
        shown = web.text("#action-result")
        assert "bob's switch" in shown and "reserved" in shown, shown
        assert "write:bob" in shown, shown
        web.screenshot("03-detail-conflict")
        status, detail, _ = web.call("GET", "/api/v1/addresses/-/127.100.0.101",
                                     token=READ_TOKEN)
        assert detail["row"]["description"] == "bob's switch"
        assert detail["history"][0]["action"] == "refused"
        assert detail["history"][0]["requested_by"] == "write:ops-web"

        # Allocate next free from the subnet's page.
        web.go("/subnet/s-e")
        web.wait_map("s-e")
        web.find("#alloc-s-e-description").send_keys("lab laptop")
        web.find("form.allocate button[type=submit]").click()
        web.wait_text("form.allocate .outcome", lambda t: "Reserved for you" in t,
                      "the allocation")
        got = web.find("form.allocate .outcome a").text
        assert got == "127.100.5.1", got
        # The card counts it at once.
        wait_until(lambda: "reserved 1" in web.text("#subnet-s-e"), 30,
                   "the card's counts")
        status, detail, _ = web.call("GET", "/api/v1/addresses/-/" + got,
                                     token=READ_TOKEN)
        assert (detail["row"]["status"], detail["row"]["description"]) == \
            ("reserved", "lab laptop")
        assert detail["mark"]["requested_by"] == "write:ops-web"
        # More than the pool has: refused, holding nothing.
        count = web.find("#alloc-s-e-count")
        count.clear()
        count.send_keys("100")
        web.find("form.allocate button[type=submit]").click()
        web.wait_text("form.allocate .outcome",
                      lambda t: "Not enough free addresses" in t, "the refusal")
        assert "fewer than the 100" in web.text("form.allocate .outcome")
        web.screenshot("04-subnet-allocate-refused")

        # A reservation of an address no subnet holds (a mark, no row) is
        # edited in place, not refused as taken.
        status, body, _ = web.call("PUT", "/api/v1/marks/-/127.101.0.9",
                                   {"status": "reserved", "description": "spare"},
                                   requester="bob")
        assert status == 200, body
        web.go("/address/-/127.101.0.9")
        description = web.find("#reserve-description")
        description.clear()
        description.send_keys("spare, labelled")
        web.find("#reserve").click()
        web.wait_text("#action-result", lambda t: t == "Reserved.", "the edit")
        status, detail, _ = web.call("GET", "/api/v1/addresses/-/127.101.0.9",
                                     token=READ_TOKEN)
        assert detail["mark"]["description"] == "spare, labelled", detail["mark"]
        # The 409s of the conflict and the 401 of the first load are the
        # only console errors.
        web.assert_no_console_errors(allowed=[
            r"/api/v1/marks/-/127\.100\.0\.101 .*409",
            r"/api/v1/subnets/s-e/allocate .*409",
            r"/api/v1/(stats|subnets|addresses\S*) .*401"])
    finally:
        web.close()


def test_web_subnet_map_matches_the_api():
    """Each subnet's bar counts and each cell of its map agree with the
    API's statuses; a cell leads to its address."""
    web = Web()
    try:
        for ip, body in (("127.100.0.50", {"status": "reserved",
                                           "description": "gw"}),
                         ("127.100.1.60", {"status": "quarantine",
                                           "reason": "abuse"})):
            status, answer, _ = web.call("PUT", "/api/v1/marks/-/" + ip, body)
            assert status == 200, answer
        web.preset_token(WRITE_TOKEN, "ops-web")
        web.open("/subnets")
        wait_until(lambda: len(web.find_all(".map")) == 5, 30, "five maps")
        wait_until(lambda: sum(len(m.find_elements(By.CSS_SELECTOR, ".cell"))
                               for m in web.find_all(".map")) == 654, 30,
                   "654 cells")
        status, subnets, _ = web.call("GET", "/api/v1/subnets", token=READ_TOKEN)
        statuses = {r["ip_address"]: r["status"] for r in web.api_rows()}
        colours = {}
        for subnet in subnets["items"]:
            card = web.find("#subnet-" + subnet["id"])
            for stat in ("allocated", "reserved", "quarantine", "available",
                         "active"):
                shown = card.find_element(By.CSS_SELECTOR,
                                          "[data-stat=%s]" % stat).text
                assert int(shown) == subnet["stats"][stat], (subnet, stat, shown)
            cells = web.driver.execute_script(
                "return [...document.querySelectorAll("
                "'.map[data-subnet=\"' + arguments[0] + '\"] .cell')].map("
                "c => [c.dataset.ip, c.dataset.status,"
                " getComputedStyle(c).backgroundColor])", subnet["id"])
            assert len(cells) == POOLED[subnet["id"]], (subnet["id"], len(cells))
            for ip, status_shown, colour in cells:
                assert statuses.get(ip) == status_shown, (ip, status_shown)
                colours.setdefault(status_shown, set()).add(colour)
        assert set(colours) == {"available", "allocated", "reserved",
                                "quarantine"}, colours
        assert all(len(c) == 1 for c in colours.values()), colours
        assert len({next(iter(c)) for c in colours.values()}) == 4, colours
        web.screenshot("02-subnets")

        # A cell leads to its address.
        web.driver.execute_script(
            "document.querySelector('.cell[data-ip=\"127.100.0.50\"]').click()")
        web.wait_rendered("#/address/-/127.100.0.50")
        assert "gw" in web.text("#row")

        # The subnet's own page; its list link filters the list.
        web.go("/subnet/s-b")
        wait_until(lambda: len(web.find_all(".map .cell")) == 150, 30, "s-b map")
        web.screenshot("02-subnet-s-b")
        web.find("#subnet-s-b a.button").click()
        web.wait_rendered("#/addresses?subnet=s-b")
        web.wait_text("#total", lambda t: t == str(150 + 0), "s-b's rows")
        web.assert_no_console_errors()
    finally:
        web.close()


def test_web_health_and_the_content_security_policy():
    """The health page shows conflicts, dead letters and unplaced servers as
    the API counts them; the page's policy stops an injected inline script,
    and a hostile hostname is shown as text."""
    web = Web()
    try:
        # A second server on a held address (a conflict), one in no
        # subnet (unplaced) and a message that is not an event (a dead letter).
        status, body, _ = web.call("POST", "/api/v1/import", {"servers": [
            {"id": "dup", "hostname": "twin", "ip_address": "127.100.0.10"},
            {"id": "lost", "hostname": "lost-1", "ip_address": "127.101.0.1"}]})
        assert status == 200, body
        kafka = Kafka()
        kafka.send(web.topics.servers, "junk", "this is not a CloudEvent")
        kafka.flush()
        wait_until(lambda: web.call("GET", "/api/v1/stats",
                                    token=READ_TOKEN)[1]["dead_letters"] == 1,
                   60, "the dead letter")
        _, stats, _ = web.call("GET", "/api/v1/stats", token=READ_TOKEN)
        assert stats["conflicts"] >= 1 and stats["unplaced"]["servers"] == 1, stats

        web.preset_token(READ_TOKEN)
        web.open("/health")
        assert web.text("#h-conflicts .n") == str(stats["conflicts"])
        assert web.text("#h-dead-letters .n") == "1"
        assert web.text("#h-unplaced-servers .n") == "1"
        assert web.text("#h-ready .n") == "yes"
        assert web.text("#h-lag .n").isdigit()
        assert "127.100.0.10" in web.text("#conflict-table")
        assert "lost-1" in web.text("#unplaced-servers")
        dead = web.text("#dead-letter-table")
        assert "junk" in dead and web.topics.servers in dead, dead
        _, letters, _ = web.call("GET", "/api/v1/dead-letters", token=READ_TOKEN)
        assert letters["items"][0]["reason"][:40] in dead, (letters, dead)
        web.screenshot("04-health", full=True)
        # A read token's scope is found by a dry-run import it may not make.
        web.assert_no_console_errors()

        # The headers of the page.
        with urllib.request.urlopen(web.url + "/", timeout=10) as response:
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert response.headers["X-Content-Type-Options"] == "nosniff"

        # An inline script injected into the page does not run.
        web.open("/addresses")
        ran = web.driver.execute_script(
            "const s = document.createElement('script');"
            "s.textContent = 'window.injectedRan = true';"
            "document.head.appendChild(s);"
            "return window.injectedRan === true")
        assert ran is False
        assert web.driver.execute_script("return window.injectedRan") is None
        refused = [m for level, m in web.console()
                   if "Content Security Policy" in m]
        assert refused, "no CSP report of the refused script"

        # The hostile hostname is text in the list and on its page.
        web.open("/addresses?q=onerror")
        wait_until(lambda: len(web.rows()) == 1, 30, "the hostile row")
        cell = web.find("#addresses tbody td.hostname")
        assert cell.text == HOSTILE, cell.text
        assert not web.find_all("img"), "an img element was made"
        web.assert_no_alert()
        ip = web.rows()[0][0]
        web.go("/address/-/" + ip)
        assert HOSTILE in web.text("#row")
        assert HOSTILE in web.text("#holders")
        assert not web.find_all("img")
        web.assert_no_alert()
        web.assert_no_console_errors()
    finally:
        web.close()


def test_web_unnamed_subnets_keyless_letters_focus_and_a_late_allocation():
    """A subnet with no name is offered as its cidr alone; a dead letter
    with no key says so; after a write the keyboard goes on from its
    outcome; an allocation the daemon has not applied when the API's wait
    runs out (202) is followed on the page to the address it got, also
    when the daemon restarts meanwhile (the polls that find no daemon go
    on, and the notice that it could not be reached goes once it is back):
    the button stays off, so that the operator does not allocate again.
    A token entered while the daemon is away is not taken as refused."""
    web = Web()
    kafka = Kafka()
    locker = None
    try:
        status, body, _ = web.call("POST", "/api/v1/import", {"subnets": [
            {"id": "s-nameless", "cidr": "127.102.0.0/28",
             "static_ip_pools": ["127.102.0.1-127.102.0.14"], "ping": False}]})
        assert status == 200, body
        kafka.send(web.topics.servers, None, "no key, not an event")
        kafka.flush()
        wait_until(lambda: web.call("GET", "/api/v1/stats",
                                    token=READ_TOKEN)[1]["dead_letters"] == 1,
                   60, "the dead letter")

        web.preset_token(WRITE_TOKEN, "ops-web")
        web.open("/addresses")
        options = web.driver.execute_script(
            "return [...document.querySelectorAll('#f-subnet option')]"
            ".map(o => [o.value, o.textContent])")
        assert ["s-nameless", "127.102.0.0/28"] in options, options
        assert ["s-a", "127.100.0.0/24 Servers A"] in options, options

        web.go("/health")
        wait_until(lambda: "(no key)" in web.text("#dead-letter-table"), 30,
                   "the keyless dead letter")
        assert "(not text)" not in web.text("#dead-letter-table")

        web.go("/address/-/127.102.0.5")
        web.find("#reserve-description").send_keys("bench scope")
        web.find("#reserve").click()
        web.wait_text("#action-result", lambda t: t == "Reserved.", "reserved")
        wait_until(lambda: web.driver.execute_script(
            "return document.activeElement && document.activeElement.id")
            == "action-result", 10, "the focus on the outcome")

        # The apply waits on a lock the test holds: the API's wait (10 s)
        # runs out, the page says it waits, then shows what it got.
        locker = psycopg2.connect(web.db.conninfo())
        web.go("/subnet/s-nameless")

        def allocate_held(description):
            """Allocates one address in the page while the apply is held:
            the page follows the 202, its button off."""
            with locker.cursor() as cur:
                cur.execute("LOCK TABLE ipamd.audit IN EXCLUSIVE MODE")
            field = web.find("#alloc-s-nameless-description")
            field.clear()
            field.send_keys(description)
            web.find("form.allocate button[type=submit]").click()
            web.wait_text("form.allocate .outcome",
                          lambda t: "waiting for the daemon" in t, "the 202")

        def assert_button_off():
            button = web.find("form.allocate button[type=submit]")
            assert not button.is_enabled(), "the button takes a second allocation"

        def reserved_as(description):
            """The address the page says it got, reserved with description."""
            web.wait_text("form.allocate .outcome",
                          lambda t: "Reserved for you" in t, "the followed outcome")
            got = web.find("form.allocate .outcome a").text
            status, detail, _ = web.call("GET", "/api/v1/addresses/-/" + got,
                                         token=READ_TOKEN)
            assert (detail["row"]["status"], detail["row"]["description"]) == \
                ("reserved", description), detail
            return got

        allocate_held("late laptop")
        assert_button_off()
        locker.rollback()
        got = reserved_as("late laptop")
        assert got != "127.102.0.5", got
        web.screenshot("05-allocation-followed")
        web.assert_no_console_errors()

        # Again, and the daemon stops (its drain runs out on the held
        # apply) and starts again while the page follows the request.
        allocate_held("late laptop two")
        web.daemon.stop()
        locker.rollback()
        started = web.daemon.log().count("ready: PostgreSQL connected")
        wait_until(lambda: "cannot be reached" in web.text("#notice"), 30,
                   "the page finding no daemon")
        assert_button_off()
        web.daemon.start()
        wait_until(lambda: web.daemon.log().count("ready: PostgreSQL connected")
                   > started, 60, "the daemon started again")
        second = reserved_as("late laptop two")
        assert second not in (got, "127.102.0.5"), second
        web.screenshot("06-allocation-followed-across-a-restart")
        wait_until(lambda: not web.find("#notice").is_displayed(), 10,
                   "the notice gone")

        # A token entered while the daemon is away is not called refused:
        # its scope is found once the daemon answers again.
        web.daemon.stop()
        started = web.daemon.log().count("ready: PostgreSQL connected")
        web.find("#token-box summary").click()
        field = web.find("#token-input")
        field.clear()
        field.send_keys(WRITE_TOKEN)
        web.find("#token-form button[type=submit]").click()
        web.wait_text("#token-state", lambda t: t == "Token…", "the scope unknown")
        web.daemon.start()
        wait_until(lambda: web.daemon.log().count("ready: PostgreSQL connected")
                   > started, 60, "the daemon started again")
        web.go("/subnets")
        web.wait_text("#token-state", lambda t: t == "Token: write", "the scope found")
        # The restarted daemon knows a request once it is applied: 404
        # until then (docs/API.md), which the polls met; 503 while it
        # starts (its schema not checked yet, or its reads not connected).
        web.assert_no_console_errors(allowed=[
            r"ERR_CONNECTION_REFUSED", r"/api/v1/requests/\S+ - .* (404|503) "])
    finally:
        if locker is not None:
            locker.close()
        web.close()


def test_web_allocation_answered_202_or_503_names_what_it_holds():
    """An allocation runs in rounds; when the API answers 202 (not applied
    in time) or 503 (cut short after publishing), the addresses its
    earlier rounds reserved come in "allocated" and stay reserved in the
    operator's name: the page names them, with the requests still to
    follow.  The answers are the API's as docs/API.md gives them, played
    to the page's fetch: a daemon cannot be made to give them at will."""
    web = Web()
    try:
        rows = web.api_rows("&subnet=s-a&status=available")[:2]
        held, later = rows
        web.preset_token(WRITE_TOKEN, "ops-web")
        web.open("/subnet/s-a")
        web.wait_map("s-a")
        web.script_fetch([
            {"method": "POST", "path": "/subnets/s-a/allocate", "status": 202,
             "once": True,
             "body": {"state": "pending", "detail": "published, not yet applied",
                      "allocated": [held], "requests": ["r-late"]}},
            {"method": "GET", "path": "/requests/r-late", "status": 200,
             "body": {"id": "r-late", "state": "applied", "row": later,
                      "vrf": later["vrf"], "address": later["ip_address"]}},
            {"method": "POST", "path": "/subnets/s-a/allocate", "status": 503,
             "body": {"error": "unavailable", "detail": "the daemon is stopping",
                      "allocated": [held], "requests": ["r-cut"]}}])

        def allocate(description):
            field = web.find("#alloc-s-a-description")
            field.clear()
            field.send_keys(description)
            web.find("form.allocate button[type=submit]").click()

        def links():
            return [a.text for a in web.find_all("form.allocate .outcome a")]

        # 202: what the first round holds, and what the followed request got.
        allocate("two desks")
        web.wait_text("form.allocate .outcome",
                      lambda t: "Reserved for you" in t, "the followed 202")
        assert links() == [held["ip_address"], later["ip_address"]], links()
        box = web.find("form.allocate .outcome")
        assert "ok" in box.get_attribute("class").split(), box.get_attribute("class")
        web.screenshot("07-allocation-202-with-earlier-rounds")

        # 503 after publishing: not sure, not refused; what it holds named.
        allocate("two more desks")
        text = web.wait_text("form.allocate .outcome",
                             lambda t: "Not sure (503)" in t, "the 503")
        assert "the daemon is stopping" in text, text
        assert "Reserved for you, and still held: " + held["ip_address"] in text, text
        assert "1 published, may still be applied (r-cut)" in text, text
        assert links() == [held["ip_address"]], links()
        assert web.scripted() == [
            "POST /subnets/s-a/allocate 202", "GET /requests/r-late 200",
            "POST /subnets/s-a/allocate 503"], web.scripted()
        web.screenshot("08-allocation-503-with-earlier-rounds")
        web.assert_no_console_errors()
    finally:
        web.close()


def test_web_follows_what_may_still_be_applied_and_says_what_it_cannot_read():
    """What the API says may still be applied is followed to its outcome:
    an allocation's 409 whose last round Kafka took only in part (its
    requests listed), and a reservation's 503 after it was published;
    a 429 while following waits its Retry-After.  A pool map whose rows
    cannot be read says so, with a way to try again, instead of reading
    for ever.  The answers are the API's as docs/API.md gives them,
    played to the page's fetch."""
    web = Web()
    try:
        later = web.api_rows("&subnet=s-a&status=available")[0]
        free = web.api_rows("&subnet=s-b&status=available")[0]
        web.preset_token(WRITE_TOKEN, "ops-web")
        web.open("/subnet/s-a")
        web.wait_map("s-a")
        web.script_fetch([
            {"method": "POST", "path": "/subnets/s-a/allocate", "status": 409,
             "body": {"error": "conflict", "detail": "only 0 of 2 addresses "
                      "could be reserved: Kafka did not take r-lost",
                      "allocated": [], "requests": ["r-part"]}},
            {"method": "GET", "path": "/requests/r-part", "status": 429,
             "once": True, "headers": {"Retry-After": "1"},
             "body": {"error": "too_many_requests", "detail": "slow down"}},
            {"method": "GET", "path": "/requests/r-part", "status": 200,
             "body": {"id": "r-part", "state": "applied", "row": later,
                      "vrf": later["vrf"], "address": later["ip_address"]}}])
        field = web.find("#alloc-s-a-description")
        field.send_keys("two desks")
        web.find("form.allocate button[type=submit]").click()
        text = web.wait_text("form.allocate .outcome",
                             lambda t: "still held" in t, "the followed 409")
        assert "Only part of it could be allocated" in text, text
        assert [a.text for a in web.find_all("form.allocate .outcome a")] == \
            [later["ip_address"]], text
        assert web.scripted() == [
            "POST /subnets/s-a/allocate 409", "GET /requests/r-part 429",
            "GET /requests/r-part 200"], web.scripted()
        web.screenshot("09-allocation-409-followed")

        # A reservation published, not acknowledged in time: followed.
        web.go("/address/-/" + free["ip_address"])
        web.script_fetch([
            {"method": "PUT", "path": "/marks/-/" + free["ip_address"],
             "status": 503, "body": {"error": "unavailable", "detail":
                                     "Kafka did not acknowledge it in time",
                                     "requests": ["r-unsure"]}},
            {"method": "GET", "path": "/requests/r-unsure", "status": 200,
             "body": {"id": "r-unsure", "state": "applied",
                      "row": dict(free, status="reserved"),
                      "vrf": free["vrf"], "address": free["ip_address"]}}])
        web.find("#reserve-description").send_keys("a printer")
        web.find("#reserve").click()
        web.wait_text("#action-result", lambda t: t == "Reserved.", "followed")
        assert web.scripted() == ["PUT /marks/-/%s 503" % free["ip_address"],
                                  "GET /requests/r-unsure 200"], web.scripted()

        # A map whose read fails says so; trying again draws it.
        web.open("/subnets")
        web.script_fetch([
            {"method": "GET", "path": "/addresses?subnet=s-d&limit=1000",
             "status": 503, "once": True,
             "body": {"error": "unavailable", "detail": "too many reads"}}])
        wait_until(lambda: len(web.find_all(".map")) == 5, 30, "five maps")
        web.find("#subnet-s-d .map-toggle").click()
        web.find("#subnet-s-d .map-toggle").click()
        text = web.wait_text("#subnet-s-d", lambda t: "could not be read" in t,
                             "the map's failure")
        assert "503" in text and "too many reads" in text, text
        web.screenshot("10-map-not-read")
        web.find("#subnet-s-d .map-retry").click()
        wait_until(lambda: len(web.find_all("#subnet-s-d .map .cell")) ==
                   POOLED["s-d"], 30, "the map drawn")
    finally:
        web.close()


def test_web_follows_while_its_view_shows_and_names_every_outcome():
    """An allocation's followed requests each come to something on the
    page: refused ones are counted (and when none came at all, it says
    there were not enough free addresses), and one applied to an address
    that has no row (a subnet deleted since) is listed by the address the
    outcome names.  A follow stops once the page shows another view: it
    would poll, and write notices, for a view that is gone.  A map hidden
    while its rows are read stays hidden.  The answers are the API's as
    docs/API.md gives them, played to the page's fetch."""
    web = Web()
    try:
        free = web.api_rows("&subnet=s-a&status=available")[0]
        web.preset_token(WRITE_TOKEN, "ops-web")
        web.open("/subnet/s-a")

        def allocate(answers):
            web.wait_map("s-a")
            web.script_fetch(answers)
            web.find("form.allocate button[type=submit]").click()

        allocate([
            {"method": "POST", "path": "/subnets/s-a/allocate", "status": 409,
             "body": {"error": "conflict", "detail": "only 0 of 2 addresses "
                      "could be reserved: Kafka did not take r-lost",
                      "allocated": [], "requests": ["r-taken", "r-norow"]}},
            {"method": "GET", "path": "/requests/r-taken", "status": 200,
             "body": {"id": "r-taken", "state": "refused", "detail": "taken",
                      "row": None, "vrf": "", "address": "127.100.0.99"}},
            {"method": "GET", "path": "/requests/r-norow", "status": 200,
             "body": {"id": "r-norow", "state": "applied", "row": None,
                      "vrf": free["vrf"], "address": free["ip_address"]}}])
        text = web.wait_text("form.allocate .outcome",
                             lambda t: "refused" in t, "the followed 409")
        assert "Only part of it could be allocated" in text, text
        assert "1 refused: another request took the address first." in text, text
        assert [a.text for a in web.find_all("form.allocate .outcome a")] == \
            [free["ip_address"]], text

        allocate([
            {"method": "POST", "path": "/subnets/s-a/allocate", "status": 409,
             "body": {"error": "conflict", "detail": "only 0 of 1 addresses "
                      "could be reserved", "allocated": [],
                      "requests": ["r-lost"]}},
            {"method": "GET", "path": "/requests/r-lost", "status": 200,
             "body": {"id": "r-lost", "state": "refused", "detail": "taken",
                      "row": None, "vrf": "", "address": "127.100.0.98"}}])
        text = web.wait_text("form.allocate .outcome",
                             lambda t: "Not enough free addresses" in t,
                             "none came")
        assert "1 refused" in text and "Only part" not in text, text
        web.screenshot("11-allocation-409-refused")

        # Never decided: followed until the page shows another view.
        allocate([
            {"method": "POST", "path": "/subnets/s-a/allocate", "status": 409,
             "body": {"error": "conflict", "detail": "Kafka took part",
                      "allocated": [], "requests": ["r-never"]}},
            {"method": "GET", "path": "/requests/r-never", "status": 404,
             "body": {"error": "not_found", "detail": "not decided"}}])

        def polls():
            return web.scripted().count("GET /requests/r-never 404")
        wait_until(lambda: polls() >= 2, 30, "the follow to poll")
        web.go("/health")
        time.sleep(1.5)
        stopped = polls()
        time.sleep(2)
        assert polls() == stopped, (stopped, web.scripted())

        # A map hidden while its rows are read stays hidden.
        web.open("/subnets")
        wait_until(lambda: len(web.find_all(".map")) == 5, 30, "five maps")
        web.script_fetch([
            {"method": "GET", "path": "/addresses?subnet=s-d&limit=1000",
             "status": 200, "delay": 1500,
             "body": {"items": [], "next_cursor": None}}])
        toggle = web.find("#subnet-s-d .map-toggle")
        toggle.click()
        toggle.click()
        wait_until(lambda: "Reading" in web.find("#subnet-s-d .map-holder").text,
                   10, "the map being read")
        toggle.click()
        wait_until(lambda: web.scripted() == [
            "GET /addresses?subnet=s-d&limit=1000 200"], 10, "the read")
        time.sleep(2)
        assert toggle.text == "Show the map", toggle.text
        assert web.find("#subnet-s-d .map-holder").text == "", \
            web.find("#subnet-s-d .map-holder").text
        assert not web.find_all("#subnet-s-d .map"), "a hidden map was drawn"
        web.assert_no_console_errors()
    finally:
        web.close()


def test_web_ids_labels_and_landmarks_on_every_view():
    """On every view, with a write token (every form shown): no id twice,
    also for subnets whose ids differ only in characters an id cannot
    keep ("a.b", "a_b", "a b"), every label names its field, and the two
    navigations (the pages of the site, the pages of the list) have names
    of their own."""
    web = Web()
    try:
        status, body, _ = web.call("POST", "/api/v1/import", {"subnets": [
            {"id": sid, "cidr": "127.104.%d.0/29" % n,
             "static_ip_pools": ["127.104.%d.1-127.104.%d.6" % (n, n)],
             "ping": False}
            for n, sid in enumerate(("a.b", "a_b", "a b"))]})
        assert status == 200, body
        web.preset_token(WRITE_TOKEN, "ops-web")
        for view in ("/addresses", "/subnets", "/subnet/a.b", "/subnet/a_b",
                     "/address/-/127.100.0.10", "/address/-/127.104.0.1",
                     "/health"):
            web.open(view)
            web.assert_ids_labels_and_landmarks()
        web.open("/subnets")
        cards = web.driver.execute_script(
            "return [...document.querySelectorAll('section.card.subnet')]"
            ".map(c => [c.dataset.subnet, c.id,"
            " (c.querySelector('form.allocate input[type=text]') || {}).id])")
        ids = {sid: (card, field) for sid, card, field in cards}
        assert ids["a_b"] == ("subnet-a_b", "alloc-a_b-description"), ids
        assert len({ids[s] for s in ("a.b", "a_b", "a b")}) == 3, ids
        # Each form's label reaches its own field: typing by label works.
        for sid in ("a.b", "a b"):
            label = web.driver.execute_script(
                "return [...document.querySelectorAll('section.card.subnet')]"
                ".find(c => c.dataset.subnet === arguments[0])"
                ".querySelector('form.allocate label').htmlFor", sid)
            assert label == ids[sid][1], (sid, label, ids)
        web.assert_no_console_errors()
    finally:
        web.close()


if __name__ == "__main__":
    skip_without_browser()
    harness.main(globals())
