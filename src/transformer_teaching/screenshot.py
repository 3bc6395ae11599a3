"""A PNG of an attention.html page, as a browser draws it: the README's and tutorial 10's.

    poetry run python -m transformer_teaching.screenshot PAGE PNG [--layer L] [--head H]
        [--query T]

Opens PAGE in Debian's chromium (``/usr/bin/chromium``, driven by Playwright; nothing is
downloaded), selects the layer and head, hovers query T's token and saves the page.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from transformer.io import write_bytes


def screenshot(page_path: Path, png: Path, layer: int, head: int, query: int) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("screenshot: needs Debian's chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(Path(page_path).resolve().as_uri())
        page.select_option("#layer", str(layer))
        page.select_option("#head", str(head))
        page.hover(f"#queries span[data-index='{query}']")
        write_bytes(png, page.screenshot(full_page=True))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="screenshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    for name in ("layer", "head", "query"):
        parser.add_argument(f"--{name}", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"page: expected an attention.html file, got {args.page}")
    screenshot(args.page, args.png, args.layer, args.head, args.query)
    return 0


if __name__ == "__main__":
    sys.exit(main())
