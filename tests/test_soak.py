"""The soak script in a CI-sized run: it must keep working, because its 30-minute run is the proof
in docs/RELIABILITY.md. (Growth itself is judged on the long run, not in 20 s.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_soak_script_reports_memory_threads_and_drops(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.4", "--every", "2",
                           "--samples", str(samples)],
                          capture_output=True, text=True, timeout=180, env=os.environ | {"SDL_AUDIODRIVER": "dummy"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["stopped_cleanly"] is True
    assert result["items_analysed"] > 100  # both modalities really ran, looping their files
    assert 0 < result["rss_after_warmup_mb"] <= result["rss_max_mb"] < 1000
    assert 0 < result["anon_after_warmup_mb"] < result["rss_after_warmup_mb"]  # anonymous is a part of resident
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) >= 5 and max(r["rss_mb"] for r in rows[len(rows) // 5:]) == result["rss_max_mb"]
    assert result["threads_end"] == result["threads_max"]  # no thread leaked or was lost
    assert all(v == 0 for v in result["drops"].values())  # fast replay blocks, never drops
