"""The ``cf-transcribe`` command, run as a real subprocess against the emulator.

The emulator runs in this process (thread mode, port 0); the command gets its
address and credentials through the environment, as a cron job would. A few
helpers (table formats, atomic writes, help texts, the TTY prompt of ``cache
clear``) are also called in-process, where that is the only way to reach them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cf_transcribe_pandas import cli
from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.emulator import Emulator

DATA = Path(__file__).parent / "data" / "audio"
MANIFEST = DATA / "manifest.csv"
SCRIPT = Path(sys.executable).with_name("cf-transcribe")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cf_transcribe_pandas.cli"]

pytestmark = pytest.mark.emulator(manifests=[str(MANIFEST)])


def manifest() -> list[dict[str, str]]:
    with open(MANIFEST, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


ROWS = manifest()
TEXT = {r["file"]: r["text"] for r in ROWS}
ACCEPTED = [r["file"] for r in ROWS if r["accepted_by_model"] == "True"]


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "CF_"))}
    env["CF_TRANSCRIBE_CACHE_DIR"] = str(tmp_path / "cache")
    # Warnings are errors in the command too.
    env["PYTHONWARNINGS"] = "error"
    return env


def emu_env(tmp_path: Path, emu: Emulator) -> dict[str, str]:
    return {
        **base_env(tmp_path),
        "CLOUDFLARE_API_TOKEN": emu.token,
        "CLOUDFLARE_ACCOUNT_ID": emu.account_id,
        "CLOUDFLARE_BASE_URL": emu.base_url,
    }


def cf(
    *args: str | Path, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def audio_table(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"{i:03d}" for i in range(len(names))],  # leading zeros must survive CSV
            "audio": [str(DATA / n) for n in names],
            "lang": ["en"] * len(names),
        }
    )


def write_input(df: pd.DataFrame, path: Path) -> Path:
    if path.name.endswith((".csv", ".csv.gz")):
        df.to_csv(path, index=False)
    elif path.suffix in (".parquet", ".pq"):
        df.to_parquet(path)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


def read_output(path: Path) -> pd.DataFrame:
    if path.name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True, dtype=False)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --------------------------------------------------------------------------- run


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("in.csv", "out.parquet"),
        ("in.parquet", "out.jsonl"),
        ("in.jsonl", "out.csv"),
        ("in.csv.gz", "out.ndjson"),
        ("in.ndjson", "out.pq"),
    ],
)
def test_run_reads_and_writes_each_format(
    emulator: Emulator, tmp_path: Path, source: str, target: str
) -> None:
    names = ACCEPTED[:4]
    src = write_input(audio_table(names), tmp_path / source)
    result = cf(
        "run",
        src,
        "--column",
        "audio",
        "-o",
        target,
        "--language-column",
        "lang",
        env=emu_env(tmp_path, emulator),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = read_output(tmp_path / target)
    assert list(out.columns) == [
        "id",
        "audio",
        "lang",
        "audio_text",
        "audio_text_error",
        "audio_text_error_code",
    ]
    assert out["id"].astype(str).str.zfill(3).tolist() == ["000", "001", "002", "003"]
    if source.endswith(".csv") and target.endswith(".csv"):
        assert out["id"].tolist() == ["000", "001", "002", "003"]
    assert out["audio_text"].tolist() == [TEXT[n] for n in names]
    assert out["audio_text_error"].isna().all()
    assert [r["language"] for r in emulator.requests()] == ["en"] * 4
    assert leftovers(tmp_path) == []


def test_csv_keeps_text_columns_as_written(emulator: Emulator, tmp_path: Path) -> None:
    src = write_input(audio_table(ACCEPTED[:2]), tmp_path / "in.csv")
    result = cf("run", src, "-o", "out.csv", env=emu_env(tmp_path, emulator), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["000", "001"]
    assert "wrote out.csv: 2 rows, 2 transcribed" in result.stderr


def test_run_a_directory_of_audio_files(emulator: Emulator, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    (clips / ".hidden").mkdir()
    for name in ACCEPTED[:3]:
        (clips / name).write_bytes((DATA / name).read_bytes())
    (clips / "sub" / ACCEPTED[3]).write_bytes((DATA / ACCEPTED[3]).read_bytes())
    (clips / ".hidden" / "x.wav").write_bytes(b"not picked up")
    (clips / "._mac.wav").write_bytes(b"not picked up")
    (clips / "notes.txt").write_text("not audio either")
    result = cf("run", clips, "-o", "out.jsonl", env=emu_env(tmp_path, emulator), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = read_output(tmp_path / "out.jsonl")
    assert list(out.columns) == ["path", "path_text", "path_text_error", "path_text_error_code"]
    expected = sorted([str(clips / n) for n in ACCEPTED[:3]] + [str(clips / "sub" / ACCEPTED[3])])
    assert out["path"].tolist() == expected
    assert out["path_text"].tolist() == [TEXT[Path(p).name] for p in expected]


def test_run_a_glob_and_several_files(emulator: Emulator, tmp_path: Path) -> None:
    env = emu_env(tmp_path, emulator)
    result = cf("run", str(DATA / "s0[1-3]_*"), "-o", "glob.csv", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = read_output(tmp_path / "glob.csv")
    assert [Path(p).name for p in out["path"]] == [
        "s01_en_flac.flac",
        "s02_en_mp3.mp3",
        "s03_en_ogg.ogg",
    ]
    assert out["path_text"].tolist() == [TEXT[Path(p).name] for p in out["path"]]
    # What a shell makes of an unquoted glob: several INPUT arguments.
    files = [DATA / "s05_en_m4a.m4a", DATA / "s04_en_opus.ogg"]
    result = cf("run", *files, "-o", "files.csv", "--column", "path", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_output(tmp_path / "files.csv")["path"].tolist() == [str(f) for f in files]


def test_failed_rows_exit_1_with_the_count(emulator: Emulator, tmp_path: Path) -> None:
    df = pd.DataFrame({"audio": [str(DATA / ACCEPTED[0]), "missing.wav", str(MANIFEST), None]})
    src = write_input(df, tmp_path / "in.parquet")
    result = cf("run", src, "-o", "out.parquet", env=emu_env(tmp_path, emulator), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 failed" in result.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["audio_text"].tolist()[0] == TEXT[ACCEPTED[0]]
    assert out["audio_text_error_code"].tolist()[1:3] == ["file_not_found", "unreadable_audio"]
    assert out["audio_text"].isna().tolist() == [False, True, True, True]
    assert pd.isna(out["audio_text_error"].iloc[3])  # no audio is skipped, not failed


def test_all_done_with_a_skipped_row_exits_0(emulator: Emulator, tmp_path: Path) -> None:
    src = write_input(pd.DataFrame({"audio": [str(DATA / ACCEPTED[0]), None]}), tmp_path / "a.pq")
    result = cf("run", src, "-o", "b.csv", "--quiet", env=emu_env(tmp_path, emulator), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_errors_raise_writes_nothing_and_exits_1(emulator: Emulator, tmp_path: Path) -> None:
    src = write_input(pd.DataFrame({"audio": ["missing.wav"]}), tmp_path / "in.csv")
    (tmp_path / "out.csv").write_text("previous output\n")
    result = cf(
        "run",
        src,
        "-o",
        "out.csv",
        "--errors",
        "raise",
        env=emu_env(tmp_path, emulator),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "missing.wav: file not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out.csv").read_text() == "previous output\n"
    assert leftovers(tmp_path) == []


@pytest.mark.emulator(quota=2, manifests=[str(MANIFEST)])
def test_quota_exits_2_and_writes_the_finished_rows(emulator: Emulator, tmp_path: Path) -> None:
    names = ACCEPTED[:6]
    src = write_input(audio_table(names), tmp_path / "in.csv")
    result = cf(
        "run",
        src,
        "-o",
        "out.csv",
        "--concurrency",
        "1",
        env=emu_env(tmp_path, emulator),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "the run stopped" in result.stderr
    out = read_output(tmp_path / "out.csv")
    done = out["audio_text"].notna()
    assert done.sum() == 2
    assert out.loc[done, "audio_text"].tolist() == [TEXT[n] for n in names[:2]]
    assert (out.loc[~done, "audio_text_error_code"] == "3036").all()
    assert out.loc[~done, "audio_text_error"].str.startswith("not sent").all()
    assert len(Cache(tmp_path / "cache")) == 2


@pytest.mark.emulator(latency=0.25, manifests=[str(MANIFEST)])
@pytest.mark.parametrize(
    ("signum", "code", "log_json"), [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)]
)
def test_interrupt_keeps_finished_rows_and_writes_nothing(
    emulator: Emulator, tmp_path: Path, signum: int, code: int, log_json: bool
) -> None:
    env = emu_env(tmp_path, emulator)
    args = [*COMMAND, "run", str(DATA), "-o", "out.parquet", "--concurrency", "2"]
    if log_json:
        args.append("--log-json")
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: sum(r["status"] == 200 for r in emulator.requests()) >= 4)
        answered = sum(r["status"] == 200 for r in emulator.requests())
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    lines = [json.loads(line) for line in stderr.splitlines()] if log_json else []
    summaries = [line for line in lines if line["event"] == "summary"]
    if log_json:
        assert len(summaries) == 1
        assert summaries[0]["exit_code"] == code
        assert summaries[0]["output"] is None
        assert summaries[0]["unfinished"] > 0
    assert not (tmp_path / "out.parquet").exists()
    assert leftovers(tmp_path) == []
    cached = len(Cache(tmp_path / "cache"))
    assert cached >= answered - 2  # at most `concurrency` answers were still on the wire
    # The same command resumes: finished rows come from the cache.
    emulator.reset()
    before = len(emulator.requests())
    result = cf("run", DATA, "-o", "out.parquet", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(emulator.requests()) - before == 24 - cached
    if log_json:
        # The run's cleanup (cancelled requests, cache flush) ends before the
        # summary line: the CLI waits for it even after Ctrl-C.
        assert lines[-1]["event"] == "summary"


def test_log_json_lines(emulator: Emulator, tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "audio": [
                str(DATA / ACCEPTED[0]),
                "missing.wav",
                None,
                "https://user:pw@example.com/a.mp3?X-Amz-Signature=secret",
            ]
        }
    )
    src = write_input(df, tmp_path / "in.jsonl")
    result = cf(
        "run", src, "-o", "out.jsonl", "--log-json", env=emu_env(tmp_path, emulator), cwd=tmp_path
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    rows = {line["row"]: line for line in lines if line["event"] == "row"}
    assert sorted(rows) == [0, 1, 2, 3]
    for line in rows.values():
        assert set(line) == {"event", "time", "row", "audio", "status", "error_code", "error"}
    assert rows[0]["status"] == "ok"
    assert rows[0]["audio"] == str(DATA / ACCEPTED[0])
    assert (rows[1]["status"], rows[1]["error_code"]) == ("failed", "file_not_found")
    assert "missing.wav" in rows[1]["error"]
    assert rows[2]["status"] == "skipped"
    assert rows[3]["audio"] == "https://example.com/a.mp3"  # no password, no signature
    assert "secret" not in result.stderr
    assert "pw@" not in result.stderr
    summary = lines[-1]
    assert summary["event"] == "summary"
    assert summary["exit_code"] == 1
    assert summary["rows"] == 4
    assert summary["failed"] == 1
    assert summary["skipped"] == 1
    assert summary["ok"] + summary["cached"] == 2
    assert summary["unfinished"] == 0
    assert summary["output"] == "out.jsonl"


@pytest.mark.emulator(quota=1, manifests=[str(MANIFEST)])
def test_log_json_stays_json_on_errors(emulator: Emulator, tmp_path: Path) -> None:
    env = emu_env(tmp_path, emulator)
    bad = cf("run", "no_such.csv", "-o", "o.csv", "--log-json", env=env, cwd=tmp_path)
    assert bad.returncode == 2
    lines = [json.loads(line) for line in bad.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["log", "summary"]
    assert "no_such.csv" in lines[0]["message"]
    assert lines[0]["level"] == "ERROR"
    assert lines[1]["exit_code"] == 2
    src = write_input(audio_table(ACCEPTED[:3]), tmp_path / "in.csv")
    stopped = cf(
        "run", src, "-o", "o.csv", "--log-json", "--concurrency", "1", env=env, cwd=tmp_path
    )
    assert stopped.returncode == 2
    lines = [json.loads(line) for line in stopped.stderr.splitlines()]
    assert any("the run stopped" in line.get("message", "") for line in lines)
    assert lines[-1]["event"] == "summary"
    assert lines[-1]["exit_code"] == 2
    assert lines[-1]["output"] == "o.csv"
    assert (lines[-1]["ok"], lines[-1]["unfinished"]) == (1, 2)


@pytest.mark.emulator(p500=1.0, seed=1, manifests=[str(MANIFEST)])
def test_log_json_reports_retries(emulator: Emulator, tmp_path: Path) -> None:
    src = write_input(audio_table(ACCEPTED[:1]), tmp_path / "in.csv")
    result = cf(
        "run",
        src,
        "-o",
        "out.csv",
        "--log-json",
        "--max-retries",
        "1",
        env=emu_env(tmp_path, emulator),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stderr.splitlines()]
    retries = [e for e in events if e["event"] == "retry"]
    assert len(retries) == 1
    assert retries[0]["row"] == 0
    assert retries[0]["http_status"] >= 500
    assert retries[0]["error_code"]
    assert events[-1]["event"] == "summary"


# --------------------------------------------------------------------------- bad input


def bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    good = write_input(audio_table(ACCEPTED[:1]), tmp_path / "good.csv")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "broken.jsonl").write_text('{"audio": "a.wav"}\n{not json\n')
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "out_dir.csv").mkdir()
    return {
        "missing column": ["run", str(good), "--column", "nope", "-o", "o.csv"],
        "missing language column": ["run", str(good), "--language-column", "x", "-o", "o.csv"],
        "missing input": ["run", "no_such.csv", "-o", "o.csv"],
        "corrupt parquet": ["run", "corrupt.parquet", "-o", "o.csv"],
        "broken jsonl": ["run", "broken.jsonl", "-o", "o.csv"],
        "unknown input format": ["run", "table.xlsx", "-o", "o.csv"],
        "unknown output format": ["run", str(good), "-o", "o.xlsx"],
        "output dir missing": ["run", str(good), "-o", "nowhere/o.csv"],
        "output is a directory": ["run", str(good), "-o", "out_dir.csv"],
        "bad language": ["run", str(good), "--language", "english", "-o", "o.csv"],
        "bad rate limit": ["run", str(good), "--rate-limit", "0", "-o", "o.csv"],
        "bad option": ["run", str(good), "-o", "o.csv", "--concurrency", "none"],
        "no output": ["run", str(good)],
        "unknown command": ["transcribe", str(good)],
        "empty glob": ["run", "nothing_*.wav", "-o", "o.csv"],
        "estimate missing column": ["estimate", str(good), "--column", "nope"],
    }


BAD = [
    "missing column",
    "missing language column",
    "missing input",
    "corrupt parquet",
    "broken jsonl",
    "unknown input format",
    "unknown output format",
    "output dir missing",
    "output is a directory",
    "bad language",
    "bad rate limit",
    "bad option",
    "no output",
    "unknown command",
    "empty glob",
    "estimate missing column",
]


# The real console script for the common mistakes; every case in-process (fast).
SUBPROCESS = ["missing column", "corrupt parquet", "unknown input format", "missing input"]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_cli_input_is_one_line_and_exit_2(
    emulator: Emulator, tmp_path: Path, case: str
) -> None:
    args = bad_inputs(tmp_path)[case]
    result = cf(*args, env=emu_env(tmp_path, emulator), cwd=tmp_path)
    line = one_line_error(result)
    assert "error" in line
    assert emulator.requests() == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", BAD)
def test_bad_cli_input_in_process(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    args = bad_inputs(tmp_path)
    for name, value in emu_env(tmp_path, emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.main(args[case]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "error" in lines[0]
    assert captured.out == ""
    assert emulator.requests() == []
    assert leftovers(tmp_path) == []
    if case == "output is a directory":
        assert (tmp_path / "out_dir.csv").is_dir()


def test_missing_credentials_exit_2_before_any_work(emulator: Emulator, tmp_path: Path) -> None:
    good = write_input(audio_table(ACCEPTED[:1]), tmp_path / "good.csv")
    env = base_env(tmp_path)
    env["CLOUDFLARE_ACCOUNT_ID"] = emulator.account_id
    line = one_line_error(cf("run", good, "-o", "o.csv", env=env, cwd=tmp_path))
    assert "CLOUDFLARE_API_TOKEN" in line
    assert "CLOUDFLARE_ACCOUNT_ID" not in line
    line = one_line_error(cf("run", good, "-o", "o.csv", env=base_env(tmp_path), cwd=tmp_path))
    assert "CLOUDFLARE_ACCOUNT_ID" in line
    assert "--account-id" in line
    assert not (tmp_path / "o.csv").exists()
    # --account-id stands in for the variable; the token never has a flag.
    env = {**emu_env(tmp_path, emulator)}
    del env["CLOUDFLARE_ACCOUNT_ID"]
    result = cf(
        "run", good, "-o", "o.csv", "--account-id", emulator.account_id, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "--api-token" not in cf("run", "--help", env=env, cwd=tmp_path).stdout


@pytest.mark.emulator(token="other-token", manifests=[str(MANIFEST)])
def test_bad_token_exits_2(emulator: Emulator, tmp_path: Path) -> None:
    good = write_input(audio_table(ACCEPTED[:2]), tmp_path / "good.csv")
    env = {**emu_env(tmp_path, emulator), "CLOUDFLARE_API_TOKEN": "wrong-token"}
    result = cf("run", good, "-o", "o.csv", "--errors", "raise", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "wrong-token" not in result.stderr
    assert not (tmp_path / "o.csv").exists()


# --------------------------------------------------------------------------- estimate


def test_estimate_sends_nothing_and_matches_the_manifest(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = emu_env(tmp_path, emulator)
    result = cf("estimate", DATA, "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    total = sum(float(r["duration_s"]) for r in ROWS)
    assert numbers["rows"] == len(ROWS) == 25
    assert numbers["audio_seconds"] == pytest.approx(total, rel=0.02)
    assert numbers["requests"] == 24  # one pair of identical files
    assert numbers["rows_duplicate"] == 1
    assert numbers["price_per_minute"] == 0.006
    assert numbers["cost_usd"] == pytest.approx(numbers["audio_minutes_to_send"] * 0.006, rel=1e-3)
    assert numbers["wall_seconds"] == pytest.approx(24 / 720 * 60, rel=1e-3)
    assert emulator.requests() == []
    text = cf(
        "estimate", DATA, "--price-per-minute", "0.01", "--rate-limit", "60", env=env, cwd=tmp_path
    )
    assert text.returncode == 0, text.stderr
    assert "24 to send" in text.stdout
    assert "$0.01 per audio minute" in text.stdout
    assert "60 requests/minute" in text.stdout
    assert emulator.requests() == []


def test_estimate_subtracts_the_cache_and_needs_no_credentials(
    emulator: Emulator, tmp_path: Path
) -> None:
    names = ACCEPTED[:5]
    src = write_input(audio_table(names), tmp_path / "in.csv")
    env = emu_env(tmp_path, emulator)
    first = cf("run", src, "-o", "out.csv", "--language-column", "lang", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    more = write_input(audio_table([*names, *ACCEPTED[5:7]]), tmp_path / "more.csv")
    result = cf(
        "estimate",
        more,
        "--language-column",
        "lang",
        "--json",
        "-o",
        "plan.csv",
        env=base_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    assert (numbers["rows_cached"], numbers["rows_to_send"], numbers["requests"]) == (5, 2, 2)
    plan = read_output(tmp_path / "plan.csv")
    assert plan["estimate_status"].tolist() == ["cached"] * 5 + ["send"] * 2
    assert list(plan.columns[:3]) == ["id", "audio", "lang"]
    other_language = cf(
        "estimate", more, "--language", "fr", "--json", env=base_env(tmp_path), cwd=tmp_path
    )
    assert json.loads(other_language.stdout)["rows_cached"] == 0
    no_cache = cf(
        "estimate",
        more,
        "--language-column",
        "lang",
        "--no-cache",
        "--json",
        env=base_env(tmp_path),
        cwd=tmp_path,
    )
    assert json.loads(no_cache.stdout)["rows_cached"] == 0


def test_estimate_reports_unreadable_rows(emulator: Emulator, tmp_path: Path) -> None:
    df = pd.DataFrame({"audio": [str(DATA / ACCEPTED[0]), "missing.wav", str(MANIFEST)]})
    src = write_input(df, tmp_path / "in.parquet")
    result = cf("estimate", src, env=base_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 file_not_found, 1 unreadable_audio" in result.stdout
    assert "missing.wav: file not found" in result.stdout


# --------------------------------------------------------------------------- cache


def test_cache_commands(emulator: Emulator, tmp_path: Path) -> None:
    env = emu_env(tmp_path, emulator)
    names = ACCEPTED[:3]
    for i in range(2):  # two runs, two part files
        src = write_input(audio_table(names[i : i + 2]), tmp_path / f"in{i}.csv")
        assert (
            cf("run", src, "-o", "o.csv", "--language", "en", env=env, cwd=tmp_path).returncode == 0
        )
    stats = cf("cache", "stats", env=env, cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "3 transcripts" in stats.stdout
    assert "openai/gpt-4o-transcribe: 3" in stats.stdout
    assert str(tmp_path / "cache") in stats.stdout
    numbers = json.loads(cf("cache", "stats", "--json", env=env, cwd=tmp_path).stdout)
    assert numbers["rows"] == 3
    assert numbers["files"] >= 1
    assert numbers["oldest"] <= numbers["newest"]

    compact = cf("cache", "compact", env=env, cwd=tmp_path)
    assert compact.returncode == 0, compact.stderr
    assert "2 -> 1 files" in compact.stdout
    assert json.loads(cf("cache", "stats", "--json", env=env, cwd=tmp_path).stdout)["files"] == 1

    export = cf("cache", "export", "all.parquet", env=env, cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    exported = pd.read_parquet(tmp_path / "all.parquet")
    assert sorted(exported["text"]) == sorted(TEXT[n] for n in names)
    assert "exported 3 transcripts" in export.stdout
    one_line_error(cf("cache", "export", "all.csv", env=env, cwd=tmp_path))
    one_line_error(cf("cache", "export", "nowhere/all.parquet", env=env, cwd=tmp_path))

    refused = cf("cache", "clear", env=env, cwd=tmp_path)  # stdin is not a TTY
    assert "without --yes" in one_line_error(refused)
    assert len(Cache(tmp_path / "cache")) == 3
    cleared = cf("cache", "clear", "--yes", env=env, cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    assert len(Cache(tmp_path / "cache")) == 0
    again = cf("cache", "clear", "--yes", env=env, cwd=tmp_path)
    assert again.returncode == 0
    assert "nothing to clear" in again.stdout


def test_cache_dir_option_in_either_place(emulator: Emulator, tmp_path: Path) -> None:
    src = write_input(audio_table(ACCEPTED[:1]), tmp_path / "in.csv")
    env = emu_env(tmp_path, emulator)
    other = tmp_path / "other cache"
    assert (
        cf("run", src, "-o", "o.csv", "--cache-dir", other, env=env, cwd=tmp_path).returncode == 0
    )
    assert len(Cache(other)) == 1
    assert len(Cache(tmp_path / "cache")) == 0
    for args in (
        ["cache", "stats", "--cache-dir", other],
        ["cache", "--cache-dir", other, "stats"],
    ):
        result = cf(*args, "--json", env=env, cwd=tmp_path)
        assert json.loads(result.stdout)["rows"] == 1
    assert cf("run", src, "-o", "o.csv", "--no-cache", env=env, cwd=tmp_path).returncode == 0
    assert len(Cache(tmp_path / "cache")) == 0


def test_cache_clear_asks_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cf_transcribe_pandas.cache import CachedRow

    cache = Cache(tmp_path / "cache")
    with cache.writer() as w:
        w.add(CachedRow.new("a" * 64, "text", model="openai/gpt-4o-transcribe"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter(["n", "y"])
    prompts: list[str] = []

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("builtins.input", fake_input)
    assert cli.main(["cache", "clear", "--cache-dir", str(cache.path)]) == 0
    assert "nothing deleted" in capsys.readouterr().out
    assert len(cache) == 1
    assert cli.main(["cache", "clear", "--cache-dir", str(cache.path)]) == 0
    assert len(cache) == 0
    assert prompts == [f"Delete 1 cached transcripts in {cache.path}? [y/N] "] * 2


# --------------------------------------------------------------------------- help, demo


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["estimate"],
        ["cache"],
        ["cache", "stats"],
        ["cache", "compact"],
        ["cache", "export"],
        ["cache", "clear"],
        ["demo"],
        ["emulator"],
    ],
)
def test_every_command_has_help_with_an_example(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*args, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example" in out
    assert "cf-transcribe" in out
    if not args:
        for command in ("run", "estimate", "cache", "demo", "emulator"):
            assert f"cf-transcribe {command}" in out
    if args == ["run"]:
        assert "CLOUDFLARE_API_TOKEN" in out
        assert "shell history" in out
        assert "130" in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_module_entry_point_and_version(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cf_transcribe_pandas.cli", "--version"],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("cf-transcribe ")


def test_demo_runs_against_the_bundled_emulator(tmp_path: Path) -> None:
    result = cf("demo", "--quiet", env=base_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 of 8 transcripts match" in result.stdout


# --------------------------------------------------------------------------- helpers


def test_table_formats() -> None:
    assert cli.table_format(Path("a.csv"), None) == "csv"
    assert cli.table_format(Path("a.CSV.gz"), None) == "csv"
    assert cli.table_format(Path("a.pq"), None) == "parquet"
    assert cli.table_format(Path("a.ndjson.zst"), None) == "jsonl"
    assert cli.table_format(Path("a.json"), None) is None
    assert cli.table_format(Path("a.txt"), "csv") == "csv"


def test_compressed_csv_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": ["001", None, "x,y"]})
    cli.write_table(df, tmp_path / "t.csv.gz", "csv")
    assert (tmp_path / "t.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
    back = cli.read_table(tmp_path / "t.csv.gz", "csv")
    assert back["a"].tolist()[0] == "001"
    assert pd.isna(back["a"].tolist()[1])
    assert back["a"].tolist()[2] == "x,y"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_write_table_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    target.write_text("the previous good output")

    def broken(self: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_text("half a file")
        raise OSError(28, "No space left on device")

    method = {"csv": "to_csv", "parquet": "to_parquet", "jsonl": "to_json"}[fmt]
    monkeypatch.setattr(pd.DataFrame, method, broken)
    with pytest.raises(cli.CliError, match="No space left"):
        cli.write_table(pd.DataFrame({"a": [1]}), target, fmt)
    assert target.read_text() == "the previous good output"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_write_table_gives_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    cli.write_table(pd.DataFrame({"a": [1]}), target, "parquet")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_load_input_file_lists(tmp_path: Path) -> None:
    (tmp_path / "b.WAV").write_bytes(b"x")
    (tmp_path / "a.mp3").write_bytes(b"x")
    (tmp_path / "c.txt").write_bytes(b"x")
    df, is_files = cli.load_input([str(tmp_path)], None)
    assert is_files
    assert [Path(p).name for p in df["path"]] == ["a.mp3", "b.WAV"]
    df, is_files = cli.load_input([str(tmp_path / "a.mp3")], None)
    assert is_files
    assert len(df) == 1
    with pytest.raises(cli.CliError, match="table format"):
        cli.load_input([str(tmp_path / "c.txt")], None)
    with pytest.raises(cli.CliError, match="not both"):
        cli.load_input([str(tmp_path / "a.mp3"), "x.csv"], None)


def test_cli_exports_the_command_and_its_table_helpers() -> None:
    assert set(cli.__all__) == {
        "CliError",
        "build_parser",
        "load_input",
        "main",
        "read_table",
        "table_format",
        "write_table",
    }
    for name in cli.__all__:
        assert getattr(cli, name).__doc__, name
    assert callable(cli.main)  # the console script's target, cf_transcribe_pandas.cli:main
