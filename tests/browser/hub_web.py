"""The hub's web app in a real browser: Playwright driving Debian's chromium
against the running hub (started by gateway/tests/browser.rs on anvil).

Usage: hub_web.py <base url> <pin> <mqtt port> <screenshot dir> <physician>

Signs in (a wrong PIN first), adds a Wi-Fi CGM on the Devices page, reads
the QR code it shows with zbarimg, publishes a reading with mosquitto_pub
using the credentials from the page, sees the reading on Now, acknowledges
the alert it raises, opens the AGP report, grants the physician glucose on
the Sharing page and revokes it (on chain), and checks that a forged CSRF
token, another origin and an ended session are refused. Screenshots of the
pages go to the screenshot dir. Prints one JSON line of what it saw.
"""
import json
import subprocess
import sys
import tempfile
import time

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def main(base, pin, mqtt_port, shots, physician):
    seen = {}
    # QR crops carry secrets (a device password, a family share): they go to
    # a private temporary directory, never with the screenshots.
    crops = tempfile.mkdtemp()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()

        # Anonymous: sent to sign in; a wrong PIN is refused.
        page.goto(base + "/report")
        expect(page.url.endswith("/login"), f"not sent to sign in: {page.url}")
        page.screenshot(path=f"{shots}/login.png")
        page.fill("input[name=pin]", "000000")
        page.click("button[type=submit]")
        expect("Wrong PIN" in page.content(), "a wrong PIN is not refused")
        page.fill("input[name=pin]", pin)
        page.click("button[type=submit]")
        expect(page.url.rstrip("/") == base, f"not signed in: {page.url}")

        # Add a Wi-Fi CGM: registered on chain, its password shown once.
        page.click("text=Devices")
        page.fill("input[name=name]", "cgm-browser")
        page.select_option("select[name=kind]", "cgm")
        page.click("text=Register on chain")
        page.wait_for_selector("code.password", timeout=30000)
        password = page.inner_text("code.password").strip()
        page.locator(".qr svg").screenshot(path=f"{crops}/device-qr.png")
        page.screenshot(path=f"{shots}/devices-added.png", full_page=True)
        decoded = subprocess.run(
            ["zbarimg", "--quiet", "--raw", f"{crops}/device-qr.png"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        provisioning = json.loads(decoded)
        expect(provisioning["password"] == password, "the QR code carries another password")
        expect(provisioning["username"] == "cgm-browser", provisioning)
        seen["qr"] = provisioning["publish"]

        # The device sends a reading with those credentials (mosquitto_pub).
        reading = {
            "v": 1,
            "seq": 1,
            "time_ms": int(time.time() * 1000),
            "measurement": {"kind": "cgm_glucose", "value": 47, "unit": "mg/dL"},
        }
        deadline = time.time() + 30
        while True:
            published = subprocess.run(
                [
                    "mosquitto_pub", "-h", "127.0.0.1", "-p", str(mqtt_port), "-q", "1",
                    "-i", "cgm-browser", "-u", "cgm-browser", "-P", password,
                    "-t", provisioning["publish"], "-m", json.dumps(reading),
                ],
                capture_output=True,
                text=True,
            )
            page.goto(base + "/")
            if ">47<" in page.content():
                break
            expect(time.time() < deadline, f"the reading never showed: {published.stderr}")
            time.sleep(1)
        seen["now_shows"] = page.inner_text("p.glucose")
        page.screenshot(path=f"{shots}/now.png", full_page=True)

        # Its urgent low is an open alert; acknowledge it from the page.
        deadline = time.time() + 30
        while page.locator("li.alert").count() == 0:
            expect(time.time() < deadline, "no alert for a reading of 47 mg/dL")
            time.sleep(1)
            page.reload()
        alerts_before = page.locator("li.alert").count()
        page.locator("li.alert button").first.click()
        expect(page.locator("li.alert").count() == alerts_before - 1, "the alert stayed open")
        seen["alerts_acknowledged"] = 1

        # The AGP report, and the Hub page.
        page.goto(base + "/report")
        expect("Glucose report, 14 days" in page.content(), "no report")
        expect(page.locator("svg.profile polygon").count() == 2, "no percentile bands")
        expect(page.locator(".daily figure").count() == 15, "not 15 dates in 14 days")
        seen["report_readings"] = page.inner_text("table.figures tr:first-child td")
        seen["time_in_range"] = page.inner_text("table.tir tr.in-range td.share")
        page.screenshot(path=f"{shots}/report.png", full_page=True)
        page.goto(base + "/hub")
        expect("registered name:cgm-browser" in page.content(), "the action is not logged")
        page.screenshot(path=f"{shots}/hub.png", full_page=True)

        # Sharing: grant the physician glucose for 30 days, then revoke.
        page.goto(base + "/sharing")
        expect("Who may read your data" in page.content(), "no sharing page")
        page.fill("form.grant input[name=physician]", physician)
        page.fill("form.grant input[name=days]", "30")
        page.click("text=Grant on chain")
        expect(page.url.endswith("/sharing"), page.url)
        live = page.locator("table.grants tr.live")
        expect(live.count() == 1, "the grant is not live")
        expect("glucose" in live.first.inner_text(), live.first.inner_text())
        page.screenshot(path=f"{shots}/sharing.png", full_page=True)
        live.first.locator("button").click()
        expect(page.locator("table.grants tr.live").count() == 0, "the grant is still live")
        expect("revoked" in page.inner_text("table.grants"), "not shown as revoked")
        seen["granted_and_revoked"] = True

        # Family key shares: made on the page, printed; a share's QR code
        # reads back as its text.
        page.fill("form.family textarea[name=profile]", "Type 1 diabetes. Insulin: glargine, aspart.")
        page.click("text=Make and print new shares")
        shares = page.locator("section.share")
        expect(shares.count() == 3, f"{shares.count()} shares")
        first_text = page.locator("code.share").first.inner_text().strip()
        page.locator("section.share .qr svg").first.screenshot(path=f"{crops}/share-qr.png")
        read_back = subprocess.run(
            ["zbarimg", "--quiet", "--raw", f"{crops}/share-qr.png"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        expect(read_back == first_text, "the share's QR code is not its text")
        expect(first_text.startswith("GLYCO-SHARE-1:"), first_text)
        seen["family_shares"] = shares.count()

        # A forged CSRF token and another origin are refused.
        page.goto(base + "/")
        token = page.get_attribute("input[name=csrf]", "value")
        forged = context.request.post(
            base + "/settings",
            form={"unit": "mmol/L", "csrf": "0" * 64},
            headers={"Origin": base},
            max_redirects=0,
        )
        expect(forged.status == 403, f"forged CSRF token: {forged.status}")
        cross = context.request.post(
            base + "/settings",
            form={"unit": "mmol/L", "csrf": token},
            headers={"Origin": "http://evil.example"},
            max_redirects=0,
        )
        expect(cross.status == 403, f"another origin: {cross.status}")
        seen["csrf_refused"] = 2

        # Signing out ends the session on the hub: the old cookie is dead.
        cookies = context.cookies()
        page.click("text=Sign out")
        expect(page.url.endswith("/login"), page.url)
        context.add_cookies(cookies)
        page.goto(base + "/")
        expect(page.url.endswith("/login"), "an ended session still works")
        seen["ended_session_refused"] = True
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
