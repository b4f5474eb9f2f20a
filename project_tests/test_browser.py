"""The course as learners meet it: JupyterLab in a real browser (Debian's Chromium, headless, via Playwright).

One JupyterLab server, started like `make lab` (jupyter_lab_config.py, loopback only, a free port, a
token), serves copies of the two notebooks the test opens, so nothing in the repository is modified:

- the solutions notebook: all cells run on the offline world without an error; each plotly heatmap
  renders with legible axes and a hover label naming latent, token and position; the circuitsvis
  attention view and an offline latent card render;
- the released exercise notebook: a check on a stub shows the learner-facing message, not a traceback;
  nbgrader's Validate button reports the unfinished exercises.

The page fetches nothing but the local server. Screenshots go to build/screenshots/. The world is the
toy world when its weights are there, else the random one. Skips, saying why, only without Chromium.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from grading import cell_metadata

from lab_server import LabServer, start_lab  # project_tests/lab_server.py

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"
SOLUTIONS = ROOT / "notebooks" / "latent_gradients_solutions.ipynb"
NBGRADER_SOURCE = ROOT / "nbgrader" / "source" / "latent_gradients" / "latent_gradients.ipynb"
RELEASED = ROOT / "nbgrader" / "release" / "latent_gradients" / "latent_gradients.ipynb"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# The flags Debian's Chromium needs to run headless here (as root, in a container, with no network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_MS = 240_000
VALIDATE_TIMEOUT_MS = 240_000

# Which plot is which, by the start of its title; and what its hover label must name.
PLOTS = {
    "latent_to_latent": r"^Gradients between SAE latents in layer \d+ and layer \d+(?! \(attention)",
    "token_to_latent": r"^Gradients between input tokens and SAE latents",
    "latent_to_logit": r"^Gradients between SAE latents in layer \d+ and the top \d+ logits",
    "latent_to_logit_contributions": r"^Contributions \(gradient x activation\) of SAE latents in layer \d+ to the top \d+ logits",
    # "Where next": every logit's gradient (k=None, by forward mode), the most responsive shown.
    "latent_to_all_logits": r"^Gradients between SAE latents in layer \d+ and the \d+ of all \d+ logits",
    "attention": r"^Gradients between SAE latents in layer \d+ and layer \d+ \(attention SAEs\)",
    "attention_filtered": r"^Induction latents in layer",
    "attention_frozen": r"^The same Jacobian with the attention patterns",
}
# Exercise 5b's estimate-vs-effect scatter plots (part_utils/attribution.py): on the latent-to-logit layer's
# latents, and on the capstone's.
SCATTERS = {
    "attribution": r"^Zero-ablation at layer \d+",
    "circuit_attribution": r"^The circuit's latents, zero-ablated",
}
# Where, in the plot's own pixels, the heatmap cell with the largest |gradient| is centred.
# The capstone's circuit, a layered graph (part_utils/circuit_plot.py), not a heatmap.
CIRCUIT_TITLE = r"^A circuit for "
# Where the node with the largest |contribution| among the latents is drawn: its marker, in the nodes' trace.
LARGEST_NODE_JS = """el => {
    const trace = el.calcdata[el.calcdata.length - 1], xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
    let best = 0, value = -1;
    trace.forEach((point, i) => { const hover = el.data[el.data.length - 1].hovertext[i];
        if (hover.includes('kind: latent') && Math.abs(el.data[el.data.length - 1].marker.color[i]) > value) {
            value = Math.abs(el.data[el.data.length - 1].marker.color[i]); best = i; } });
    return [xa._offset + xa.l2p(trace[best].x), ya._offset + ya.l2p(trace[best].y)];
}"""
LARGEST_CELL_JS = """el => {
    const z = el.calcdata[0][0].z, xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
    let best = [0, 0], value = -1;
    Array.from(z).forEach((row, i) => Array.from(row).forEach((v, j) => { if (Math.abs(v) > value) { value = Math.abs(v); best = [i, j]; } }));
    return [xa._offset + xa.l2p(best[1]), ya._offset + ya.l2p(best[0])];
}"""
LATENT = r"(F\d+\.\d+|latent \d+)"
TOKEN_AND_POSITION = r"'[^']*' \(\d+\)|\"[^\"]*\" \(\d+\)"


def offline_world() -> str:
    """The trained toy world when its files are all there, else the random world (the same code path)."""
    data = ROOT / "part_utils" / "toy_world_data"
    return "toy" if all((data / name).exists() for name in ("world.json", "model.safetensors", "saes.safetensors")) else "random"


def find_chromium() -> str | None:
    for candidate in (*CHROMIUM_CANDIDATES, shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def released_notebook(work_dir: Path) -> Path:
    """The student notebook as `make release` makes it: nbgrader/release/'s when it is up to date, else one
    generated here, with the course's nbgrader config, into a temporary course folder (the test writes
    nothing into the repository)."""
    if RELEASED.exists() and RELEASED.stat().st_mtime >= NBGRADER_SOURCE.stat().st_mtime:
        return RELEASED
    course = work_dir / "course"
    shutil.copytree(NBGRADER_SOURCE.parent, course / "source" / "latent_gradients")
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "latent_gradients", f"--CourseDirectory.root={course}",
         f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}", "--force"],
        cwd=NBGRADER_SOURCE.parent.parent.parent, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return course / "release" / "latent_gradients" / "latent_gradients.ipynb"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("No Chromium installed: the browser test needs Debian's chromium package (`apt-get install chromium`).")
    try:
        import playwright.sync_api  # noqa: F401 (imported only to learn whether Playwright is installed)
    except ImportError:
        pytest.skip("The playwright Python package is not installed (`pip install -e '.[dev]'`).")
    return path


@pytest.fixture(scope="module")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    work = tmp_path_factory.mktemp("jupyterlab")
    served = work / "served"
    served.mkdir()
    shutil.copy(SOLUTIONS, served / "latent_gradients_solutions.ipynb")
    shutil.copy(released_notebook(work), served / "latent_gradients.ipynb")
    server = start_lab(served, work, env={"LATENT_GRADIENTS_WORLD": offline_world(), "LATENT_GRADIENTS_DEVICE": "cpu"})
    yield server
    server.stop()


class Screenshots:
    def __init__(self) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []

    def take(self, locator, name: str) -> Path:  # locator: a Playwright Locator
        path = SCREENSHOTS / f"{name}.png"
        locator.screenshot(path=str(path), animations="disabled")
        self.paths.append(path)
        return path


@pytest.fixture(scope="module")
def screenshots(figures) -> Iterator[Screenshots]:
    shots = Screenshots()
    yield shots
    for path in shots.paths:
        figures.add("browser screenshots", str(path.relative_to(ROOT)))


@pytest.fixture
def page(chromium: str, lab: LabServer, tmp_path: Path) -> Iterator:
    """A fresh Chromium profile with one page; any request that leaves the local server is blocked and recorded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 2600, "height": 1600},
        )
        outside: list[str] = []

        def guard(route, request) -> None:  # Playwright's Route and Request
            url = request.url
            if url.startswith(lab.base_url) or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        context.route("**/*", guard)
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
    assert not outside, f"the page tried to fetch from outside the local server: {outside[:10]}"


# --- driving JupyterLab ------------------------------------------------------------------------------------------

def open_notebook(page, lab: LabServer, name: str) -> None:
    page.goto(lab.url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function(
        f"""() => {{
            const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return panel && panel.context && panel.context.path.endsWith({name!r})
                && panel.sessionContext.session && panel.sessionContext.session.kernel
                && panel.sessionContext.session.kernel.connectionStatus === 'connected'
                && panel.sessionContext.session.kernel.status === 'idle';
        }}""",
        timeout=120_000,
    )


def run_all_cells(page) -> float:
    """Run > Run All Cells from the menu bar, as a learner would; wait until nothing is queued or running."""
    start = time.perf_counter()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).click()
    page.wait_for_function("() => document.querySelectorAll('.jp-InputPrompt').length > 0 && "
                           "[...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
                           timeout=30_000)  # fmt: skip
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const busy = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
            const kernel = panel.sessionContext.session.kernel;
            return !busy && kernel.status === 'idle';
        }""",
        timeout=RUN_TIMEOUT_MS,
        polling=500,
    )
    return time.perf_counter() - start


def run_new_cell(page, code: str) -> None:
    """Add a code cell at the end of the notebook and run it, as a learner trying something would."""
    page.evaluate(
        """async (code) => {
            const app = window.jupyterapp, notebook = app.shell.currentWidget.content;
            notebook.activeCellIndex = notebook.widgets.length - 1;
            await app.commands.execute('notebook:insert-cell-below');
            notebook.activeCell.model.sharedModel.setSource(code);
            await app.commands.execute('notebook:run-cell');
        }""",
        code,
    )
    page.wait_for_function(
        """() => {
            const notebook = window.jupyterapp.shell.currentWidget.content;
            const last = notebook.widgets[notebook.widgets.length - 1];
            return last.model.executionCount !== null && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle';
        }""",
        timeout=120_000,
        polling=500,
    )


def notebook_json(page) -> dict:
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.toJSON()")


def code_cells(page) -> list[dict]:
    return [cell for cell in notebook_json(page)["cells"] if cell["cell_type"] == "code"]


def source_of(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def errors_in(cells: list[dict]) -> list[tuple[int, str, str]]:
    return [
        (i, output["ename"], output["evalue"][:300])
        for i, cell in enumerate(cells)
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]


def cell_node(page, index: int):
    """The page's code cell `index` (counting code cells only)."""
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


# --- the tests -----------------------------------------------------------------------------------------------------

def _hover_label(page, plot, point_js: str) -> str:
    """Move the mouse to the point of `plot` that `point_js` finds, and return the hover label that appears."""
    box = plot.bounding_box()
    x, y = plot.evaluate(point_js)
    page.mouse.move(box["x"] + x, box["y"] + y)
    hover = plot.locator(".hoverlayer .hovertext")
    hover.first.wait_for(timeout=10_000)
    return hover.first.text_content()


# Each label's text and its box on the page, [text, left, right, top, bottom]; empty labels left out.
LABEL_BOXES_JS = """nodes => nodes.filter(n => n.textContent.trim()).map(n => {
    const r = n.getBoundingClientRect(); return [n.textContent, r.left, r.right, r.top, r.bottom]; })"""


def overlapping_labels(plot, selector: str) -> list[tuple[str, str]]:
    """The pairs of horizontal labels (`selector` in `plot`) whose boxes overlap by more than a pixel."""
    boxes = plot.locator(selector).evaluate_all(LABEL_BOXES_JS)
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[2] - 1 and b[1] < a[2] - 1 and a[3] < b[4] - 1 and b[3] < a[4] - 1
    ]


def slanted_label_gap(plot) -> float:
    """The smallest distance across the text between two neighbouring x tick labels slanted at 60 degrees,
    less their font size: negative when two of them overlap. Neighbours' boxes share a shape, so the distance
    between their right edges is the distance along the axis, and sin 60 of it is the distance across."""
    boxes = plot.locator(".xtick text").evaluate_all(LABEL_BOXES_JS)
    font = plot.locator(".xtick text").first.evaluate("n => parseFloat(getComputedStyle(n).fontSize)")
    rights = sorted(box[2] for box in boxes)
    return min((b - a for a, b in zip(rights, rights[1:])), default=float("inf")) * 0.866 - font


def test_smoke_solutions_notebook_in_jupyterlab(page, lab: LabServer, screenshots: Screenshots, figures) -> None:
    world = offline_world()
    open_notebook(page, lab, "latent_gradients_solutions.ipynb")
    seconds = run_all_cells(page)
    cells = code_cells(page)

    # Every cell ran, and none shows an error.
    assert all(cell["execution_count"] for cell in cells), "not every code cell ran"
    assert not errors_in(cells), f"cells show errors: {errors_in(cells)}"
    rendered_errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert not [text for text in rendered_errors if "Traceback" in text or "Error" in text], rendered_errors
    banner = page.locator(".jp-OutputArea-output").filter(has_text=re.compile(r"\bworld\b", re.IGNORECASE)).first.inner_text()
    assert world in banner.lower(), f"the first world banner does not name the {world} world: {banner[:300]!r}"

    # Every plotly figure rendered as a plot: one per `.show()`, drawn by the jupyterlab-plotly extension as SVG.
    shows = sum(source_of(cell).count(".show()") for cell in cells)
    page_text = page.locator(".jp-Notebook").inner_text()
    assert "No renderer could be found" not in page_text, "an output has no renderer in JupyterLab"
    assert '"layout": {' not in page_text and '{"data": [' not in page_text, "a figure shows as raw JSON"
    plots = page.locator(".jp-OutputArea-output.jp-RenderedPlotly.js-plotly-plot")
    assert plots.count() == shows == len(PLOTS) + 1 + len(SCATTERS), f"{plots.count()} plotly plots rendered for {shows} figures shown"
    found: dict[str, int] = {}
    circuit_plots = []
    scatters: dict[str, int] = {}
    for i in range(plots.count()):
        title = plots.nth(i).locator(".gtitle").text_content()
        if re.search(CIRCUIT_TITLE, title):
            circuit_plots.append(i)
            continue
        scatter_names = [name for name, pattern in SCATTERS.items() if re.search(pattern, title)]
        if scatter_names:
            scatters[scatter_names[0]] = i
            continue
        names = [name for name, pattern in PLOTS.items() if re.search(pattern, title)]
        assert len(names) == 1, f"plot {i} has an unexpected title: {title!r}"
        found[names[0]] = i
    assert set(found) == set(PLOTS), f"missing plots: {set(PLOTS) - set(found)}"

    for name, i in found.items():
        plot = plots.nth(i)
        plot.scroll_into_view_if_needed()
        assert plot.locator(".heatmaplayer .hm image, .heatmaplayer image").count() >= 1, f"{name}: no heatmap drawn"
        for axis in ("xtitle", "ytitle"):
            assert plot.locator(f".g-{axis}").text_content().strip(), f"{name}: the {axis} is empty"
        ticks = plot.locator(".xtick text, .ytick text").all_text_contents()
        assert ticks and all(re.search(r"\(\d+\)", tick) for tick in ticks), f"{name}: tick labels lack positions: {ticks[:5]}"
        font_sizes = plot.locator(".xtick text").evaluate_all("nodes => nodes.map(n => parseFloat(getComputedStyle(n).fontSize))")
        assert min(font_sizes) >= 10, f"{name}: tick labels too small to read ({min(font_sizes)} px)"
        assert not overlapping_labels(plot, ".ytick text"), f"{name}: row labels overlap: {overlapping_labels(plot, '.ytick text')[:3]}"
        assert slanted_label_gap(plot) >= 0, f"{name}: column labels overlap ({slanted_label_gap(plot):.1f} px)"
        screenshots.take(plot, f"solutions_{name}")
        # Hover the largest gradient: the label names the latent, the token and its position, and the value.
        label = _hover_label(page, plot, LARGEST_CELL_JS)
        assert re.search(LATENT, label) and re.search(TOKEN_AND_POSITION, label) and re.search(r"(gradient|contribution):", label), (
            f"{name}: the hover label does not name the latent, token and position: {label!r}"
        )
        screenshots.take(plot, f"solutions_{name}_hover")
        page.mouse.move(5, 5)

    # The estimate-vs-effect scatter plots: the y = x line and one marker per latent, axes named.
    assert set(scatters) == set(SCATTERS), f"missing scatter plots: {set(SCATTERS) - set(scatters)}"
    for name, i in scatters.items():
        plot = plots.nth(i)
        plot.scroll_into_view_if_needed()
        assert plot.locator(".scatterlayer .trace").count() == 2, f"{name}: the y = x line and the latents expected"
        assert plot.locator(".scatterlayer .point").count() >= 1, f"{name}: no latent drawn"
        assert "estimate" in plot.locator(".g-xtitle").text_content() and "effect" in plot.locator(".g-ytitle").text_content()
        written = plot.locator(".scatterlayer .textpoint text").evaluate_all(LABEL_BOXES_JS)
        assert written, f"{name}: no point labelled"
        assert not overlapping_labels(plot, ".scatterlayer .textpoint text"), f"{name}: labels overlap: {overlapping_labels(plot, '.scatterlayer .textpoint text')}"
        screenshots.take(plot, f"solutions_{name}")

    # The capstone's circuit: nodes and edges drawn, a latent's hover names it, its label links to its offline card.
    assert len(circuit_plots) == 1, f"{len(circuit_plots)} circuit graphs rendered"
    graph = plots.nth(circuit_plots[0])
    graph.scroll_into_view_if_needed()
    n_traces = graph.locator(".scatterlayer .trace").count()
    assert n_traces >= 2, f"the circuit graph drew {n_traces} traces (edges and nodes expected)"
    labels = graph.locator(".annotation-text").all_text_contents()  # a latent's label: an annotation over the edges
    assert any(re.search(LATENT, label) and re.search(TOKEN_AND_POSITION, label) for label in labels), labels[:5]
    assert any(re.match(r"error \d+, ", label) for label in labels), f"no error node drawn: {labels}"
    screenshots.take(graph, "solutions_circuit")
    label = _hover_label(page, graph, LARGEST_NODE_JS)
    assert re.search(LATENT, label) and "contribution" in label, f"the circuit's hover label does not name the latent: {label!r}"
    screenshots.take(graph, "solutions_circuit_hover")
    page.mouse.move(5, 5)
    links = graph.locator("a").evaluate_all("nodes => nodes.map(n => n.getAttribute('href') || n.getAttribute('xlink:href'))")
    card_links = [link for link in links if link and link.startswith("#latent-card-")]
    assert card_links, f"no latent label links to its offline card: {links[:5]}"
    assert page.locator(f"[id='{card_links[0][1:]}']").count() == 1, f"the card {card_links[0]} is not in the page"

    # circuitsvis's attention view, from its local JavaScript: the React app drew the heads and a pattern.
    view = page.locator(".jp-OutputArea-output [id^='circuits-vis-']")
    assert view.count() == 1, f"{view.count()} circuitsvis views found"
    view.scroll_into_view_if_needed()
    page.wait_for_function(
        "el => el.querySelectorAll('canvas, svg, table').length > 0 && el.getBoundingClientRect().height > 100",
        arg=view.element_handle(),
        timeout=30_000,
    )
    screenshots.take(view, "solutions_attention_patterns")

    # An offline latent card (the toy and random worlds have no Neuronpedia page).
    cards = page.locator(".jp-OutputArea-output .latent-card")
    if world == "random":
        # The random world has no measured facts, so the notebook names no latents to look up: ask for one.
        assert cards.count() == 0
        run_new_cell(page, "display_dashboard(sae_id=saes[exercises.latent_to_latent.layer_from].cfg.metadata.hook_name, latent_idx=0)")
    assert cards.count() >= 1, "no offline latent card rendered"
    card = cards.first
    card.scroll_into_view_if_needed()
    assert card.is_visible() and re.search(r"Latent \d+ of", card.inner_text()) and "Boosts" in card.inner_text()
    screenshots.take(card, "solutions_latent_card")

    figures.add("browser", f"solutions notebook in JupyterLab + Chromium on the {world} world: Run All {seconds:.1f} s, "
                           f"{len(cells)} code cells, no error; {len(found)} plotly heatmaps, {len(scatters)} scatter plots, 1 circuit graph, 1 attention view, {cards.count()} latent cards")  # fmt: skip


def test_released_exercise_notebook_in_jupyterlab(page, lab: LabServer, screenshots: Screenshots, figures) -> None:
    world = offline_world()
    open_notebook(page, lab, "latent_gradients.ipynb")
    run_all_cells(page)  # Run All stops at the first error: the first check, on a stub
    cells = code_cells(page)
    first_check = next(i for i, cell in enumerate(cells) if source_of(cell).lstrip().startswith("tests.test_"))
    errors = errors_in(cells)
    assert errors and errors[0][0] == first_check, f"the first error is not the first check cell: {errors[:3]}"
    assert errors[0][1] == "CheckFailed", f"the first check raised {errors[0][1]}, not the learner-facing message"

    # What the learner sees: the message, not a traceback wall.
    output = cell_node(page, first_check).locator(".jp-OutputArea-output").last
    output.scroll_into_view_if_needed()
    shown = output.inner_text()
    assert "fill in its body" in shown and "NotImplementedError" in shown, shown[:500]
    assert "Traceback" not in shown and not re.search(r'File ".*", line \d+', shown), f"a traceback is shown:\n{shown[:1500]}"
    assert len(shown.strip().splitlines()) <= 12, f"the message is {len(shown.splitlines())} lines long:\n{shown[:1500]}"
    screenshots.take(cell_node(page, first_check), "exercises_first_check_message")

    # nbgrader's Validate button (its JupyterLab extension) is on the notebook's toolbar, and reports the stubs.
    validate = page.locator(".jp-NotebookPanel-toolbar .validate-button")
    assert validate.count() == 1, "nbgrader's Validate button is not on the notebook toolbar"
    start = time.perf_counter()
    validate.click()
    report = page.locator(".jp-Dialog #validation-message")
    report.wait_for(timeout=VALIDATE_TIMEOUT_MS)
    seconds = time.perf_counter() - start
    text = report.inner_text()
    failed = text.count("The following cell failed")
    released = nbformat.read(lab.root_dir / "latent_gradients.ipynb", as_version=4)
    graded = [cell for cell in released.cells if cell_metadata.is_graded(cell) and cell.cell_type == "code"]
    assert failed == len(graded) and text.count("NotImplementedError") >= len(graded), (
        f"Validate should report each of the {len(graded)} autograded checks as failed on the stubs; it says:\n{text[:2000]}"
    )
    screenshots.take(page.locator(".jp-Dialog-content"), "exercises_validate")
    page.locator(".jp-Dialog .jp-mod-accept, .jp-Dialog button").first.click()

    figures.add("browser", f"released exercise notebook on the {world} world: the first check shows "
                           f"{len(shown.strip().splitlines())} lines, no traceback; Validate reports {failed} failed cells in {seconds:.1f} s")  # fmt: skip
