"""The evaluation report in a real browser: headless Chromium loads the file, its DOM has the plots with data
points, and a screenshot shows more than a blank page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from agentplatform.evaluation import TurnSample
from bench.eval_report import append_jsonl, load_jsonl, main, render, store_offline
from functions.evaluation.policy import EvaluationPolicy
from functions.evaluation.service import Evaluator
from tests.conftest import sample_event

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def records():
    base = sample_event("evaluation/turn_completed.json")["detail"]
    evaluator = Evaluator(None, lambda: EvaluationPolicy(), now_ms=lambda: 0)  # type: ignore[arg-type]
    out = []
    for n in range(12):
        bad = n % 3 == 0
        sample = TurnSample(
            **{
                **base,
                "turn": n,
                "completed_ms": 1_796_814_000_000 + n * 60_000,
                "answered_by": "extractive" if n % 2 else "local-generation",
                "answer": "The wings are painted <b>blue</b> weekly [1]." if bad else base["answer"],
                "total_ms": 800 + 150 * n,
                "release": "r1" if n >= 10 else None,
            }
        )
        out.append(evaluator.evaluate(sample))
    return out


def test_report_round_trips_offline_results_and_escapes_text(tmp_path) -> None:
    path = tmp_path / "evaluations" / "r1.jsonl"
    append_jsonl(path, records())
    assert len(load_jsonl([path])) == 12
    out = tmp_path / "report.html"
    assert main(["--jsonl", str(path), "--out", str(out)]) == 0
    page = out.read_text()
    assert "<b>blue</b>" not in page and "&lt;b&gt;blue&lt;/b&gt;" in page  # answers are text, never markup
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # no CDN


def test_report_renders_in_headless_chromium_with_data_points(tmp_path) -> None:
    # Never skipped: `make install` puts Chromium there (scripts/install-chromium.sh) and fails when it cannot.
    assert Path(CHROMIUM).exists(), f"no {CHROMIUM}: run scripts/install-chromium.sh (needs root or sudo)"
    page = tmp_path / "report.html"
    page.write_text(render(records(), "Evaluation report: acme"))
    profile = tmp_path / "profile"
    run = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*run, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<h1>Evaluation report: acme</h1>" in html
    assert html.count('class="plot"') == 6  # four score charts, latency and cost
    points = re.findall(r'<circle class="point" data-route="([^"]+)" data-value="([0-9.]+)"', html)
    assert len(points) >= 12 * 3 and {r for r, _ in points} == {"extractive", "local-generation"}
    assert any(float(v) < 0.5 for _, v in points) and any(float(v) == 1.0 for _, v in points)
    bars = [int(c) for c in re.findall(r'class="bar" data-count="(\d+)"', html)]
    assert sum(bars[:12]) == 12  # every turn's latency is in the histogram
    assert html.count('<details class="turn">') == 8
    shot = tmp_path / "report.png"
    png = subprocess.run(
        [*run, f"--screenshot={shot}", "--window-size=1000,1600", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.returncode == 0 and shot.exists(), png.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colors = {c for _, c in image.getcolors(maxcolors=1 << 20) or []}
    assert image.size == (1000, 1600) and len(colors) > 20  # the page drew text and coloured plots
    assert (31, 119, 180) in colors or (214, 39, 40) in colors  # a series' colour is on screen


def test_eval_answers_results_are_stored_as_records_of_their_release(tmp_path) -> None:
    passage = {"ref": 1, "doc_id": "engine", "title": "Maintenance", "text": "Inspect the blades every 100 hours."}
    results = [
        {
            "id": "q1",
            "answerable": True,
            "question": "How often are blades inspected?",
            "abstained": False,
            "answer": "Inspect the blades every 100 hours [1].",
            "passages": [passage],
            "total_ms": 900.0,
        },
        {
            "id": "q2",
            "answerable": False,
            "question": "Who painted the hangar?",
            "abstained": True,
            "answer": "I don't know.",
            "passages": [passage],
            "total_ms": 700.0,
        },
    ]
    path = store_offline(results, "r7", tenant="acme", folder=tmp_path)
    first, second = load_jsonl([path])
    assert (first.release, first.source, path.name) == ("r7", "offline", "r7.jsonl")
    assert first.value("faithfulness") == 1.0 and first.value("abstention") == 1.0
    assert second.value("abstention") == 1.0 and second.scores["faithfulness"].status == "skipped"
    store_offline(results[:1], "r7", tenant="acme", folder=tmp_path)
    assert len(load_jsonl([path])) == 1  # a rerun of a release replaces its records
