"""The browser SDKs, installed from npm into tests/sdks/node_modules (once, `npm ci`: package-lock.json
pins every package) and bundled with esbuild into one script a test page loads: no CDN."""

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def bundle(entry: str) -> Path:
    """tests/sdks/<entry>.js bundled with what it imports, as tests/sdks/node_modules/.bundles/<entry>.js."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "The browser SDK tests need Node.js and npm (apt-get install -y nodejs npm).", pytrace=False
        )
    modules = HERE / "node_modules"
    if not (modules / ".bin" / "esbuild").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            check=True,
            timeout=600,
        )
    out = modules / ".bundles" / f"{entry}.js"
    subprocess.run(
        [str(modules / ".bin" / "esbuild"), f"{entry}.js", "--bundle", "--format=iife", f"--outfile={out}"],
        cwd=HERE,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out
