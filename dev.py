#!/usr/bin/env python3
"""Set up and run Delivery Overview on a machine that has only Python 3.11+.

    python3 dev.py demo    install into .venv, then run the product with live demo traffic
    python3 dev.py test    install into .venv (and Chromium for the browser tests), then run every test

Extra arguments go to the command: `python3 dev.py test -k routing`, `python3 dev.py demo --port 9000`.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


def install() -> None:
    """Create .venv and install the project with its test extras, again only when pyproject changes."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what tells users on older Pythons
        sys.exit("Delivery Overview needs Python 3.11 or newer.")
    if not PYTHON.exists():
        print("Creating .venv …", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("Installing Delivery Overview and its dependencies into .venv …", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(digest)


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium; install it when we can, else say how."""
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("Installing Chromium for the browser tests (apt-get) …", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=600"]  # another install may hold the lock for a while
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", *wait, "install", "-y", "-qq", "chromium"], check=True, env=env)
        return
    sys.exit(f"The browser tests need Chromium at {CHROMIUM} (set CHROMIUM_PATH to another binary).")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test"}:
        sys.exit(__doc__)
    command, extra = sys.argv[1], sys.argv[2:]
    install()
    os.chdir(ROOT)
    if command == "demo":
        os.execv(PYTHON, [str(PYTHON), "manage.py", "demo", *extra])
    ensure_chromium()
    os.execv(PYTHON, [str(PYTHON), "-m", "pytest", *extra])


if __name__ == "__main__":
    main()
