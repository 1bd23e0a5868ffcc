"""A real headless Chromium (Debian's chromium and chromium-driver, through Selenium) and a real
nginx with TLS, for the browser tests."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from support.peers import require_program
from support.process import free_port, wait_until_listening
from support.tls import make_certificate

__all__ = [
    "ARTIFACTS",
    "NGINX_CONFIG",
    "chromium",
    "join_in_page",
    "nginx_with_tls",
    "save_screenshot",
    "send_from_page",
    "wait_for_text",
]

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONFIG = ROOT / "examples" / "nginx" / "tcposcrouter.conf"
# Screenshots the tests take, to look at (CI keeps the folder).
ARTIFACTS = ROOT / "build" / "test-artifacts"

# The flags that work here: no sandbox (root), no GPU, and nothing that reaches the internet
# (the machine's network is closed: Chromium's background connections only fail and retry).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


def spki_hash(cert: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium names a key to trust."""
    openssl = require_program("openssl")
    key = subprocess.run(
        [openssl, "x509", "-in", str(cert), "-noout", "-pubkey"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    der = subprocess.run(
        [openssl, "pkey", "-pubin", "-outform", "der"], input=key, check=True, capture_output=True
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@contextmanager
def chromium(
    profile: Path, *, trust_any_certificate: bool = False, trust_certificate: Path | None = None
) -> Iterator[WebDriver]:
    """Debian's Chromium driven by Debian's chromedriver (Selenium would download its own).
    `trust_certificate`: accept that certificate's key, and no other one."""
    binary = require_program("chromium")
    driver_path = require_program("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if trust_any_certificate:  # the test's own certificate, made a moment ago
        options.add_argument("--ignore-certificate-errors")
    if trust_certificate is not None:
        options.add_argument(
            f"--ignore-certificate-errors-spki-list={spki_hash(trust_certificate)}"
        )
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver: WebDriver, element_id: str, text: str, timeout: float = 10) -> str:
    """Wait until the element's text contains `text`; return the text."""
    found = ""

    def has_text(d: WebDriver) -> bool:
        nonlocal found
        found = d.find_element("id", element_id).text
        return text in found

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.05).until(has_text)
    except Exception as exc:
        raise AssertionError(f"#{element_id} never showed {text!r}; it shows {found!r}") from exc
    return found


def join_in_page(
    driver: WebDriver, page: str, user: str, group: str, group_password: str = "gpw"
) -> None:
    """Open the browser client page and join `group` as `user` with its form."""
    driver.get(page)
    for element_id, value in (
        ("user", user),
        ("password", "browser-pw"),
        ("group", group),
        ("group-password", group_password),
    ):
        field = driver.find_element("id", element_id)
        field.clear()
        field.send_keys(value)
    driver.find_element("id", "join-button").click()
    wait_for_text(driver, "status", f"joined {group} as {user}")


def send_from_page(driver: WebDriver, text: str, *, as_bundle: bool = False, to: str = "") -> None:
    """Send `text` (the page's message syntax) with the page's send form."""
    box = driver.find_element("id", "message")
    box.clear()
    box.send_keys(text)
    bundle_box = driver.find_element("id", "as-bundle")
    if bundle_box.is_selected() != as_bundle:
        bundle_box.click()
    Select(driver.find_element("id", "target")).select_by_value(to)
    driver.find_element("id", "send-button").click()


@contextmanager
def nginx_with_tls(folder: Path, router_http_port: int) -> Iterator[int]:
    """Debian's nginx running the repository's examples/nginx/tcposcrouter.conf, with only
    its ports, name, certificate and log paths replaced; yields the https port."""
    require_program("nginx")
    cert, key = make_certificate(folder)
    https_port, http_port = free_port(), free_port()
    site = NGINX_CONFIG.read_text()
    for pattern, replacement in (
        (r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        (r"listen \[::\]:443 ssl;", ""),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen \[::\]:80;", ""),
        (r"router\.example\.org;", "localhost;"),
        (r"ssl_certificate +\S+;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};"),
        (r"/var/log/nginx/", f"{folder}/"),
        (r"127\.0\.0\.1:55557", f"127.0.0.1:{router_http_port}"),
    ):
        site, count = re.subn(pattern, replacement, site)
        assert count, f"{pattern} is no longer in {NGINX_CONFIG.name}: update this test"
    (folder / "site.conf").write_text(site)
    with running_nginx(folder, f"include {folder}/site.conf;", [https_port]):
        yield https_port


@contextmanager
def running_nginx(folder: Path, http: str, ports: list[int], main: str = "") -> Iterator[None]:
    """Debian's nginx in the foreground with its files in `folder`: `main` in its main context,
    `http` in its http block; returns once it listens on `ports`, stopped at the end."""
    nginx = require_program("nginx")
    (folder / "nginx.conf").write_text(
        f"""
{main}
daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    {http}
}}
"""
    )
    check = subprocess.run(
        [nginx, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(process, ports)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        time.sleep(0.1)


def save_screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path
