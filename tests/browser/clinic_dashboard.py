"""The clinic's dashboard in a real browser: Playwright driving Debian's
chromium against the running dashboard, alert inbox, proxy and hub (started
by gateway/tests/browser.rs on anvil).

Usage: clinic_dashboard.py <dashboard url> <physician key hex> <other key hex>
                           <hub url> <hub pin> <screenshot dir> <cast>

The browser's wallet is an EIP-1193 provider injected into the page whose
personal_sign is Foundry's `cast wallet sign` (an independent EIP-191
signer). Signs in with another account's key first (refused), then with the
physician's; sees the patient, acknowledges the alert, opens the AGP report
through the proxy and finds the read in the access log, on the dashboard
and on the hub's own Sharing page. A replayed sign-in, a form from another
origin and a signed-out session are refused. Prints one JSON line of what
it saw.
"""
import json
import subprocess
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"

WALLET = """
window.ethereum = {
  request: async function (args) {
    if (args.method === 'eth_requestAccounts' || args.method === 'eth_accounts') {
      return [window.glycoWalletAddress()];
    }
    if (args.method === 'personal_sign') {
      return await window.glycoWalletSign(args.params[0]);
    }
    throw new Error('unsupported ' + args.method);
  }
};
"""


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def reload_until(page, selector, seconds=60):
    """Server-rendered pages show what was there when they were served."""
    deadline = time.time() + seconds
    while page.locator(selector).count() == 0:
        expect(time.time() < deadline, f"{selector} did not appear on {page.url}")
        time.sleep(0.5)
        page.reload()


def wallet(context, cast, key):
    """A wallet holding `key`, signing with cast."""
    address = subprocess.run([cast, "wallet", "address", "--private-key", key],
                             check=True, capture_output=True, text=True).stdout.strip()
    signed = []

    def sign(message_hex):
        out = subprocess.run([cast, "wallet", "sign", "--private-key", key, message_hex],
                             check=True, capture_output=True, text=True).stdout.strip()
        signed.append((bytes.fromhex(message_hex[2:]).decode(), out))
        return out

    context.expose_function("glycoWalletAddress", lambda: address)
    context.expose_function("glycoWalletSign", sign)
    context.add_init_script(WALLET)
    return signed


def main(base, key, other_key, hub, pin, shots, cast):
    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        # A wallet with another account's key: its signature is refused.
        stranger = browser.new_context(viewport={"width": 1200, "height": 900})
        wallet(stranger, cast, other_key)
        page = stranger.new_page()
        page.goto(base + "/")
        expect(page.url.endswith("/login"), f"not sent to sign in: {page.url}")
        page.click("#wallet")
        page.wait_for_selector("p.notice", timeout=20000)
        refusal = page.inner_text("p.notice")
        expect("not by the account" in refusal, f"another key was not refused: {refusal}")
        seen["other_key_refused"] = True
        stranger.close()

        # The physician's wallet.
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        signed = wallet(context, cast, key)
        page = context.new_page()
        page.goto(base + "/login")
        expect("wants you to sign in with your Ethereum account" in page.inner_text("#siwe-message"),
               "no EIP-4361 message on the sign-in page")
        page.screenshot(path=f"{shots}/clinic-signin.png", full_page=True)
        page.click("#wallet")
        page.wait_for_selector("text=My patients", timeout=20000)
        reload_until(page, "table.patients td.open")
        page.screenshot(path=f"{shots}/clinic-patients.png", full_page=True)
        seen["patients"] = page.locator("table.patients tr").count() - 1

        # The signed message again: its nonce is spent.
        message, signature = signed[-1]
        replay = context.request.post(base + "/login", form={"message": message, "signature": signature},
                                      headers={"Origin": base}, max_redirects=0)
        expect(replay.status == 401, f"a replayed sign-in got {replay.status}")
        seen["replay_refused"] = True

        # The alert, acknowledged.
        page.click("header >> text=Alerts")
        reload_until(page, "text=predicted_low")
        page.screenshot(path=f"{shots}/clinic-alerts.png", full_page=True)
        row = page.locator("tr.alert", has_text="predicted_low").first
        row.locator("button", has_text="Acknowledge").click()
        page.wait_for_selector("tr.alert >> text=acknowledged", timeout=30000)
        seen["acknowledged"] = True

        # Another origin cannot acknowledge or sign out.
        forged = context.request.post(base + "/logout", form={"csrf": "x"},
                                      headers={"Origin": "http://evil.example"}, max_redirects=0)
        expect(forged.status == 403, f"a form from another origin got {forged.status}")
        seen["other_origin_refused"] = True

        # The patient's page, the report through the proxy, the access log.
        page.click("header >> text=Patients")
        page.locator("table.patients a").first.click()
        page.wait_for_selector("text=Access log")
        page.click("text=Open the 14-day report")
        page.wait_for_selector("text=Ambulatory glucose profile", timeout=120000)
        opened = page.inner_text("p.opened")
        expect("access log as #" in opened, f"the report does not name its access: {opened}")
        seen["report_readings"] = int(opened.split("(")[1].split(" ")[0])
        page.screenshot(path=f"{shots}/clinic-report.png", full_page=True)
        page.go_back()
        page.reload()
        log = page.inner_text("ul.access-log")
        expect("you read data" in log, f"the read is not in the access log: {log}")
        seen["access_log"] = log.count("you read data")

        # The fleet page: the clinic node's view of the hub's heartbeats.
        page.goto(base + "/fleet")
        fleet = page.inner_text("table.fleet")
        expect("healthy" in fleet, f"the hub is not on the fleet page: {fleet}")
        page.screenshot(path=f"{shots}/clinic-fleet.png", full_page=True)
        seen["fleet_hubs"] = page.locator("table.fleet tr").count() - 1

        # Signed out: the session no longer opens pages.
        page.click("text=Sign out")
        page.goto(base + "/alerts")
        expect(page.url.endswith("/login"), "a signed-out session still opens pages")
        seen["signed_out"] = True

        # The patient sees the read on the hub's own Sharing page.
        hub_page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        hub_page.goto(hub + "/login")
        hub_page.fill("input[name=pin]", pin)
        hub_page.click("button[type=submit]")
        hub_page.goto(hub + "/sharing")
        words = hub_page.inner_text("ul.access-log")
        expect("read a batch of your readings" in words, f"the hub's access log is empty: {words}")
        hub_page.locator("ul.access-log").screenshot(path=f"{shots}/hub-access-log.png")
        seen["hub_access_log"] = words.count("read a batch")
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:8])
