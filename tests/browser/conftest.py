"""Fixtures of the browser tier: the real dashboard, the real cluster, a real headless Chromium.

- the e2e tier's fixtures (``kubeconfig``, ``api``, ``namespace``, ``operator``, ``objects``):
  each test gets its own namespace, run by this session's host operator;
- ``dashboard`` (session): ``jobchain dashboard`` started as a user would, on all namespaces,
  through a TCP relay to the API server (so a test can make the cluster go away and come back);
- ``browser`` (session): Debian's ``chromium`` driven by its ``chromedriver`` (Selenium),
  headless at 1280x800. Skipped, with the reason, where they are not installed
  (``hack/browser-deps.sh`` installs them; ``make test`` runs it first).

Screenshots go to $JOBCHAIN_SCREENSHOTS (``docs/images`` to refresh the README's), else to
the test's tmp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.support import Dashboard, Relay, relayed_kubeconfig, set_viewport

# Every fixture of the end-to-end tier (a star import, so fixtures it adds later come along too).
from tests.e2e.conftest import *  # noqa: F403
from tests.e2e.support import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def relay(kubeconfig: str) -> Iterator[Relay]:
    """A TCP relay in front of the API server: stopping it is the cluster going away."""
    import yaml

    server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    relay = Relay(server)
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture(scope="session")
def dashboard(kubeconfig: str, relay: Relay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """`jobchain dashboard` on all namespaces, as a process, talking to the cluster through the relay."""
    directory = tmp_path_factory.mktemp("dashboard")
    config = relayed_kubeconfig(kubeconfig, relay, directory / "kubeconfig")
    proc = Dashboard([sys.executable, "-m", "jobchain.cli.main", "--kubeconfig", str(config), "dashboard",
                      "--port", str(free_port())], directory / "dashboard.log")
    proc.start()
    yield proc
    proc.stop()
    print(f"\ndashboard log: {proc.log_path}")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium and chromedriver are not installed: run hack/browser-deps.sh (as root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: run hack/venv.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    # An explicit driver path: Selenium never tries to download one.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    set_viewport(driver, 1280, 800)
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("JOBCHAIN_SCREENSHOTS") or tmp_path)
    if not target.is_absolute():
        target = ROOT / target
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def kubectl_create(kubeconfig: str, namespace: str):
    """`kubectl create -f FILE -n NS`, as the README tells users to run the examples."""
    from tests.e2e.support import tool

    def create(path: Path | str, text: str | None = None) -> str:
        args = [tool("kubectl"), "--kubeconfig", kubeconfig, "-n", namespace, "create", "-f", str(path), "-o", "name"]
        done = subprocess.run(args, input=text, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return create
