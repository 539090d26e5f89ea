"""The JavaScript analytics clients, installed from npm into tests/sdks/node_modules (once, `npm ci`:
package-lock.json pins every package): browser SDKs bundled with esbuild into one script a test page
loads (no CDN), and Node SDKs run by node (server_side.mjs)."""

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"The JavaScript client tests need Node.js and npm ({name} is missing).", pytrace=False)
    return found


def installed() -> Path:
    """node_modules, installed when package-lock.json is newer than the last install."""
    stamp = MODULES / ".installed"
    lock = HERE / "package-lock.json"
    if not stamp.exists() or stamp.read_text() != lock.read_text():
        subprocess.run(
            [_tool("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            check=True,
            timeout=600,
        )
        stamp.write_text(lock.read_text())
    return MODULES


def bundle(entry: str) -> Path:
    """tests/sdks/<entry>.js bundled with what it imports, as tests/sdks/node_modules/.bundles/<entry>.js."""
    out = installed() / ".bundles" / f"{entry}.js"
    esbuild = MODULES / ".bin" / "esbuild"
    command = [str(esbuild), f"{entry}.js", "--bundle", "--format=iife", f"--outfile={out}"]
    subprocess.run(command, cwd=HERE, check=True, capture_output=True, timeout=120)
    return out


def run_server_side(sdk: str, host: str, write_key: str, tracks: int) -> str:
    """server_side.mjs: `tracks` tracks, an identify and a group through a Node SDK, flushed."""
    installed()
    done = subprocess.run(
        [_tool("node"), "server_side.mjs", sdk, host, write_key, str(tracks)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
