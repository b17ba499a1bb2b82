"""Open the Snakemake report in a real browser (headless Chromium) and check its landing page.

Run through ``scripts/check-report`` (which picks the project's venv). From the results of a
finished run it builds the report (``snakemake --report``), lets Chromium render it with its
JavaScript (the report is a React page: the HTML file alone holds only data), and checks what
a reader sees first:

* the DOM after rendering holds the results page (``#mesoinv-results``) with one headline
  table per results family of ``results/reports/results.json``, the paper's column, an
  embedded figure per model, and no ``NaN`` and no command column;
* a screenshot of the landing view (1400 × 1000 px) is a real image (non-empty, many colours)
  and shows the headline tables: it has pixels of the model column's and of the paper
  column's background colours (``mesoinv.evaluation.tables.STYLE``), and nothing is cut at
  the window's right edge (its rightmost pixels are the page's background).

Exit status 0 when every check passes, 1 naming the failed checks, 2 when Chromium is missing
(``--install-browser`` installs it with apt-get, as root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Background colours of the headline tables' model and paper cells (tables.STYLE).
MODEL_CELL = (0xEF, 0xF6, 0xFF)
PAPER_CELL = (0xFE, 0xFC, 0xE8)
FAMILIES = {"p1_parameters", "p1_potential", "p2_antidots"}
#: The strip at the window's right edge that must be background, and the share of other
#: pixels allowed in it (a page wider than the window left 18 % there).
RIGHT_EDGE_PX = 4
RIGHT_EDGE_TOLERANCE = 0.01


def find_browser(install: bool = False) -> str | None:
    """Path of a Chromium binary; with ``install``, apt-get installs Debian's when missing."""
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        print("check-report: installing chromium (apt-get)", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env,
                       stdin=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "chromium", "fonts-dejavu-core"], check=True, env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return shutil.which("chromium")
    return None


def build_report(directory: Path, report: Path, configfile: str | None) -> None:
    """``snakemake --report`` of the finished run in ``directory``."""
    snakefile = directory / "Snakefile" if (directory / "Snakefile").exists() else \
        ROOT / "Snakefile"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
               "--directory", str(directory), "--cores", "1", "--report", str(report)]
    if configfile:
        command += ["--configfile", configfile]
    result = subprocess.run(command, capture_output=True, text=True, cwd=directory)
    if result.returncode != 0 or not report.exists():
        raise SystemExit(f"check-report: snakemake --report failed ({result.returncode}):\n"
                         f"{result.stderr[-3000:]}")


def _chromium(browser: str, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-dev-shm-usage", "--virtual-time-budget=20000",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def render(browser: str, report: Path, screenshot: Path, window: str) -> str:
    """The DOM of the rendered report, and its landing view as a PNG at ``screenshot``."""
    url = report.resolve().as_uri()
    window = window.replace("x", ",")
    dom = _chromium(browser, f"--window-size={window}", "--dump-dom", url)
    if dom.returncode != 0:
        raise SystemExit(f"check-report: chromium --dump-dom failed:\n{dom.stderr[-2000:]}")
    shot = _chromium(browser, f"--window-size={window}", f"--screenshot={screenshot}", url)
    if shot.returncode != 0 or not screenshot.exists():
        raise SystemExit(f"check-report: chromium --screenshot failed:\n{shot.stderr[-2000:]}")
    return dom.stdout


class _Element(HTMLParser):
    """The source of the element with a given id (its start tag to its end tag)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self, element_id: str):
        super().__init__(convert_charrefs=False)
        self.element_id, self.depth, self.start, self.end = element_id, 0, None, None

    def handle_starttag(self, tag, attrs):
        if self.end is not None or tag in self.VOID:
            return
        if self.start is None:
            if dict(attrs).get("id") == self.element_id:
                self.start, self.depth = self.getpos(), 1
        else:
            self.depth += 1

    def handle_endtag(self, tag):
        if self.start is not None and self.end is None and tag not in self.VOID:
            self.depth -= 1
            if self.depth == 0:
                self.end = self.getpos()


def _results_div(dom: str) -> str:
    """The rendered results page (``#mesoinv-results``) of the DOM, or ``""``."""
    parser = _Element("mesoinv-results")
    parser.feed(dom)
    if parser.start is None or parser.end is None:
        return ""
    lines = dom.splitlines(keepends=True)
    offset = [0]
    for line in lines:
        offset.append(offset[-1] + len(line))
    (l0, c0), (l1, c1) = parser.start, parser.end
    return dom[offset[l0 - 1] + c0:offset[l1 - 1] + c1]


def check_dom(dom: str, results: dict) -> list[str]:
    """Problems of the rendered landing page (empty when it is right)."""
    problems = []
    page = _results_div(dom)
    if not page:
        return ["the landing page has no results page (#mesoinv-results): is "
                "results/reports/results.json in the report?"]
    families = {m["family"] for m in results["models"].values()}
    headline = len(re.findall(r"<th[^>]*>the model</th>", page))
    if headline != len(families):
        problems.append(f"{headline} headline tables, expected {len(families)} ({families})")
    if page.count("<table") < 2 * len(families):
        problems.append(f"only {page.count('<table')} tables on the results page")
    if not re.search(r"<th[^>]*>P\d \(paper\)</th>", page):
        problems.append("no paper column in the headline tables")
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", page))
    if re.search(r"\bnan\b", text, re.I):
        problems.append("a NaN is shown on the results page")
    if re.search(r"<th[^>]*>command</th>", page):
        problems.append("a command column is shown")
    images = page.count('src="data:image/png;base64,')
    if images < len(results["models"]):
        problems.append(f"{images} figures on the results page for {len(results['models'])} "
                        "models")
    return problems


def check_screenshot(path: Path, window: str) -> list[str]:
    """Problems of the landing view's screenshot (empty when it is right)."""
    from PIL import Image

    problems = []
    if path.stat().st_size < 10_000:
        problems.append(f"screenshot {path} has only {path.stat().st_size} bytes")
    image = Image.open(path).convert("RGB")
    width, height = (int(v) for v in window.split("x"))
    if image.size != (width, height):
        problems.append(f"screenshot is {image.size}, expected {(width, height)}")
    colours = image.getcolors(maxcolors=1 << 20) or []
    if len(colours) < 100:
        problems.append(f"screenshot has {len(colours)} colours: blank or not rendered")
    counts = {colour: n for n, colour in colours}
    for name, colour in (("model column", MODEL_CELL), ("paper column", PAPER_CELL)):
        if counts.get(colour, 0) < 500:
            problems.append(f"the headline tables' {name} is not visible in the landing view "
                            f"({counts.get(colour, 0)} px of {colour})")
    # Nothing may run past the window's right edge (a table or a line wider than the pane is
    # cut there, --hide-scrollbars hides the scrollbar that would say so): the rightmost
    # pixels are the page's background, bar the odd anti-aliased pixel.
    strip = image.crop((width - RIGHT_EDGE_PX, 0, width, height))
    edge = sorted(strip.getcolors(maxcolors=1 << 20) or [], reverse=True)
    if edge:
        foreign = 1 - edge[0][0] / (RIGHT_EDGE_PX * height)
        if foreign > RIGHT_EDGE_TOLERANCE:
            problems.append(f"content is cut at the right edge of a {width}-px window: "
                            f"{foreign:.1%} of the rightmost {RIGHT_EDGE_PX} px columns are "
                            f"not the background {edge[0][1]}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=ROOT,
                        help="working directory of a finished run (default: the repository)")
    parser.add_argument("--configfile", help="the run's --configfile (default: the demo's)")
    parser.add_argument("--output", type=Path,
                        help="where report.html, dom.html and landing.png go "
                             "(default: <directory>/results/report-check)")
    parser.add_argument("--window", default="1400x1000", help="browser window, px")
    parser.add_argument("--install-browser", action="store_true",
                        help="install Debian's chromium with apt-get when missing (root)")
    args = parser.parse_args(argv)
    directory = args.directory.resolve()
    output = (args.output or directory / "results" / "report-check").resolve()
    output.mkdir(parents=True, exist_ok=True)
    browser = find_browser(args.install_browser)
    if browser is None:
        print("check-report: no Chromium found; install it (apt-get install -y chromium) or "
              "give --install-browser", file=sys.stderr)
        return 2
    results = json.loads((directory / "results" / "reports" / "results.json").read_text())
    report, screenshot = output / "report.html", output / "landing.png"
    build_report(directory, report, args.configfile)
    dom = render(browser, report, screenshot, args.window)
    (output / "dom.html").write_text(dom)
    problems = check_dom(dom, results) + check_screenshot(screenshot, args.window)
    for problem in problems:
        print(f"check-report: FAIL {problem}", file=sys.stderr)
    if not problems:
        print(f"check-report: OK: {report} ({report.stat().st_size / 1e6:.1f} MB) opens on the "
              f"results page ({len(results['models'])} models); screenshot {screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
