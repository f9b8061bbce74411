"""Tests for the decontamination filter (preprocessing/filters/decontam.py) on real files of this installation."""

from __future__ import annotations

import gzip
import json
import pickle
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.config import ConfigError, from_dict, load_config
from preprocessing.filters import FiltersConfig, build_filters
from preprocessing.filters.decontam import (
    BenchmarkFileConfig,
    DecontamFilter,
    DecontamFilterConfig,
    benchmark_file_texts,
    humaneval_problems,
    normalize,
    tokens,
)
from preprocessing.readers.local import PythonEnvReader
from preprocessing.record import CodeFile
from preprocessing.stages.stream import StreamConfig, run_stream
from tests.conftest import STDLIB, stdlib_rows, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
HE = "decontaminated:humaneval"
# Files of this installation that the filter drops, with why (docs/filters.md): none found so far.
KNOWN_HITS: dict[str, str] = {}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return {p["task_id"]: p for p in humaneval_problems()}


@pytest.fixture(scope="module")
def exact() -> DecontamFilter:
    return DecontamFilter()


@pytest.fixture(scope="module")
def near(exact: DecontamFilter) -> DecontamFilter:
    return DecontamFilter(DecontamFilterConfig(ngram_threshold=0.5), patterns=exact.patterns)


@pytest.fixture(scope="module")
def host_files() -> list[tuple[str, str]]:
    """Real stdlib modules to plant copies into: (name, content)."""
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(STDLIB.glob("*.py"))[:40]]


def rec(content: str, path: str = "pkg/mod.py") -> CodeFile:
    return CodeFile(content=content, repo_name="org/repo", path=path, license="MIT")


def docstring_of(problem: dict) -> str:
    """The problem's docstring as it stands in the prompt (quotes included)."""
    m = re.search(r'("""|\'\'\')(.*?)\1', problem["prompt"].split(f"def {problem['entry_point']}(")[1], re.DOTALL)
    return m.group(0)


def plant(host: str, text: str) -> str:
    """``text`` inserted after the middle line of ``host`` (a real file)."""
    lines = host.splitlines(keepends=True)
    mid = len(lines) // 2
    return "".join(lines[:mid]) + "\n" + text + "\n" + "".join(lines[mid:])


# ---------------------------------------------------------------- patterns


def test_normalize_removes_whitespace_and_case_only() -> None:
    assert normalize("  Return X\t+ y\r\n") == b"returnx+y"
    assert normalize("ÄÖ é\u00a0x") == "ÄÖé\u00a0x".encode()  # ASCII case and ASCII whitespace only
    assert tokens("Foo_bar(x2, 'Ü') -> BAZ".encode()) == [b"foo_bar", b"x2", b"baz"]


def test_humaneval_patterns_are_docstrings_and_solutions(exact: DecontamFilter, problems: dict) -> None:
    assert len(problems) == 164
    fields = [p.field for p in exact.patterns]
    assert fields.count("prompt_docstring") == 166 and fields.count("canonical_solution") == 129
    assert all(len(p.text) >= 48 for p in exact.patterns)
    assert exact.summary()["benchmarks"] == {"humaneval": {"items": 163, "patterns": 295}}
    by_item = {(p.item, p.field): p.text for p in exact.patterns}
    # HumanEval/115 imports math before its docstring: the docstring is still found
    assert (b"youaregivenarectangulargridofwells" in by_item[("HumanEval/115", "prompt_docstring")])
    # never the signature nor the imports: those are ordinary code
    for tid, p in problems.items():
        sig = normalize(f"def {p['entry_point']}(")
        assert not any(sig in text for (item, _), text in by_item.items() if item == tid), tid
        imports = [normalize(line) for line in p["prompt"].splitlines() if re.match(r"(from \S+ )?import ", line)]
        assert not any(i in text for i in imports for (item, _), text in by_item.items() if item == tid), tid
    # one-statement solutions are left out (they are everywhere): `return x + y`, Euclid's loop
    assert ("HumanEval/53", "canonical_solution") not in by_item and ("HumanEval/13", "canonical_solution") not in by_item


# ---------------------------------------------------------------- planted copies in real files


def variants(problem: dict) -> dict[str, str]:
    doc, sol = docstring_of(problem), problem["canonical_solution"]
    sig = problem["prompt"].split(doc)[0].rstrip() + "\n"
    return {
        "whole problem": problem["prompt"] + sol,
        "solution only": f"def solve(*args):\n{sol}",
        "solution reindented in a class, tabs": "class Solver:\n    def run(self):\n" + "".join(
            "\t" + line if line.strip() else line for line in sol.splitlines(keepends=True)),
        "docstring only, renamed function": f"def my_helper(a, b):\n    {doc}\n    pass\n",
        "docstring re-wrapped, upper case": doc.replace("\n    ", "\n").replace(". ", ".\n        ").upper(),
        "docstring with single quotes": doc.replace('"""', "'''"),
        "CRLF line ends": (sig + doc + "\n" + sol).replace("\n", "\r\n"),
        "renamed comment before it": "# Solution to exercise 7, copied from the web\n" + sig + "    " + doc + "\n" + sol,
    }


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/12", "HumanEval/115", "HumanEval/129", "HumanEval/163"])
def test_planted_copies_in_real_files_are_dropped(exact: DecontamFilter, problems: dict,
                                                  host_files: list[tuple[str, str]], task_id: str) -> None:
    problem = problems[task_id]
    for i, (what, text) in enumerate(variants(problem).items()):
        name, host = host_files[i % len(host_files)]
        assert exact.filter(rec(host, name)) is None, name  # the real file alone is clean
        if what.startswith("solution") and not any(p.item == task_id and p.field == "canonical_solution"
                                                    for p in exact.patterns):
            continue  # a one-statement solution: not a pattern
        planted = rec(plant(host, text), name)
        assert exact.filter(planted) == HE, (task_id, what)
        assert exact.match(planted.content).item == task_id, (task_id, what)


def test_every_problem_planted_whole_is_dropped(exact: DecontamFilter, problems: dict,
                                                host_files: list[tuple[str, str]]) -> None:
    for i, (tid, p) in enumerate(sorted(problems.items())):
        name, host = host_files[i % len(host_files)]
        content = plant(host, p["prompt"] + p["canonical_solution"])
        expected = None if tid == "HumanEval/53" else HE  # add(x, y): docstring and solution both too short
        assert exact.filter(rec(content, name)) == expected, tid


def test_near_copy_needs_the_ngram_mode(exact: DecontamFilter, near: DecontamFilter, problems: dict,
                                        host_files: list[tuple[str, str]]) -> None:
    sol = problems["HumanEval/129"]["canonical_solution"]  # minPath: a long solution
    edited = sol.replace("val", "best").replace("for i in range(n):", "for i in range(n):  # rows", 1)
    assert edited != sol
    name, host = host_files[3]
    content = plant(host, "def min_path(grid, k):\n" + edited)
    assert exact.filter(rec(content, name)) is None  # no longer a substring
    assert near.filter(rec(content, name)) == HE
    assert near.match(content).field == "canonical_solution"
    # a docstring with one sentence rewritten is still more than half the same 13-grams
    doc = docstring_of(problems["HumanEval/0"]).replace("Check if in given list of numbers", "See whether a list holds")
    assert exact.filter(rec(plant(host, doc), name)) is None
    assert near.filter(rec(plant(host, doc), name)) == HE


def test_real_files_are_kept(exact: DecontamFilter, near: DecontamFilter) -> None:
    """A sample of the installation through the toolkit's own reader (every 16th batch of files): no hit."""
    reader = PythonEnvReader()
    hits, n = [], 0
    for i, unit in enumerate(reader.units()):
        if i % 16:
            continue
        for r in reader.decode(unit):
            if isinstance(r, CodeFile):
                n += 1
                if exact.filter(r) or near.filter(r):
                    hits.append(f"{r.repo_name}/{r.path}")
    assert n > 400
    assert set(hits) <= set(KNOWN_HITS), hits


@pytest.mark.slow
def test_whole_installation_has_no_hit(exact: DecontamFilter, near: DecontamFilter) -> None:
    reader = PythonEnvReader()
    hits = [f"{r.repo_name}/{r.path}" for u in reader.units() for r in reader.decode(u)
            if isinstance(r, CodeFile) and (exact.filter(r) or near.filter(r))]
    assert set(hits) <= set(KNOWN_HITS), hits


def test_pickles_with_its_patterns_not_its_files(exact: DecontamFilter, problems: dict, tmp_path: Path) -> None:
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps("a sentence long enough to be a pattern of this benchmark, surely") + "\n")
    f = DecontamFilter(DecontamFilterConfig(benchmarks=[BenchmarkFileConfig("mine", str(bench))]))
    bench.unlink()  # a worker never re-reads it
    g = pickle.loads(pickle.dumps(f))
    p = problems["HumanEval/0"]
    assert g.filter(rec(p["prompt"] + p["canonical_solution"])) == HE
    assert g.filter(rec("x = 'A sentence long enough to be a pattern of this benchmark,\n surely'")) == "decontaminated:mine"
    assert g.summary() == f.summary()


# ---------------------------------------------------------------- user benchmark files


def mbpp_rows() -> list[dict]:
    return [
        {"task_id": 1, "text": "Write a function to find the minimum cost path to reach (m, n) from (0, 0) for the "
                               "given cost matrix cost[][] and a position (m, n) in cost[][].",
         "code": "R = 3\r\nC = 3\r\ndef min_cost(cost, m, n): \r\n\ttc = [[0 for x in range(C)] for x in range(R)] "
                 "\r\n\ttc[0][0] = cost[0][0] \r\n\treturn tc[m][n]",
         "test_list": ["assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8"]},
        {"task_id": 2, "text": "Write a function to find the similar elements from the given two tuple lists.",
         "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n"
                 "  return (res) ", "test_list": ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)"]},
    ]


def test_user_jsonl_benchmark(tmp_path: Path, host_files: list[tuple[str, str]]) -> None:
    path = write_jsonl(tmp_path / "mbpp.jsonl.gz", mbpp_rows())
    cfg = DecontamFilterConfig(humaneval=False, benchmarks=[BenchmarkFileConfig("mbpp", str(path), ["text", "code", "test_list"])])
    f = DecontamFilter(cfg)
    assert f.summary()["benchmarks"] == {"mbpp": {"items": 2, "patterns": 6}}
    assert {p.item for p in f.patterns} == {"mbpp.jsonl.gz:1", "mbpp.jsonl.gz:2"}
    name, host = host_files[5]
    assert f.filter(rec(host, name)) is None
    code = mbpp_rows()[1]["code"].replace("\r\n", "\n").replace("  ", "    ")  # reindented, LF
    assert f.filter(rec(plant(host, code), name)) == "decontaminated:mbpp"
    assert f.filter(rec(plant(host, "# " + mbpp_rows()[0]["text"].upper()), name)) == "decontaminated:mbpp"
    # one JSON string per line, and HumanEval besides
    strings = tmp_path / "apps.jsonl"
    strings.write_text("\n".join(json.dumps(s) for s in ["n = int(input())\nprint(sum(int(c) for c in str(n)) % 9 == 0)",
                                                           "short"]) + "\n\n")
    both = DecontamFilter(DecontamFilterConfig(benchmarks=[BenchmarkFileConfig("apps", str(strings))]))
    assert both.summary()["benchmarks"]["apps"] == {"items": 1, "patterns": 1}  # "short" is under min_chars
    assert both.filter(rec(plant(host, "n=int(input())\nprint(sum(int(c) for c in str(n))%9==0)"))) == "decontaminated:apps"


def test_apps_like_json_encoded_solutions_and_a_bom(tmp_path: Path, host_files: list[tuple[str, str]]) -> None:
    solution = "t = int(input())\nfor _ in range(t):\n    a, b = map(int, input().split())\n    print(a * b - (a + b))\n"
    rows = [{"problem_id": 0, "question": "Given two integers a and b, print a*b-(a+b) for each of t test cases.",
             "solutions": json.dumps([solution, "print(0)"])}, {"problem_id": 1, "question": "no solutions yet", "solutions": ""}]
    path = tmp_path / "apps.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r) for r in rows).encode())
    cfg = BenchmarkFileConfig("apps", str(path), ["question", "solutions"], json_fields=["solutions"])
    texts = list(benchmark_file_texts(cfg))
    assert [t[1:] for t in texts] == [("question", rows[0]["question"]), ("solutions", solution), ("solutions", "print(0)"),
                                      ("question", "no solutions yet")]
    f = DecontamFilter(DecontamFilterConfig(humaneval=False, benchmarks=[cfg]))
    name, host = host_files[7]
    assert f.filter(rec(plant(host, solution.replace("    ", "  ")), name)) == "decontaminated:apps"
    assert f.filter(rec(host, name)) is None
    with pytest.raises(ValueError, match=r"json_fields \['code'\] are not among fields"):
        BenchmarkFileConfig("apps", str(path), ["question"], json_fields=["code"])
    path.write_text(json.dumps({"question": "q", "solutions": "[not json"}) + "\n")
    with pytest.raises(ConfigError, match=r"apps\.jsonl:1: field 'solutions' is not JSON text"):
        list(benchmark_file_texts(cfg))


@pytest.mark.parametrize(("lines", "fields", "message"), [
    (['{"text": "a"}', "{not json"], ["text"], r"bad\.jsonl:2: not valid JSON"),
    (['{"text": "a"}', '{"text": "b"}', '{"code": "c"}'], ["text"], r"bad\.jsonl:3: no field 'text' \(fields here: code\)"),
    (['{"text": 3}'], ["text"], r"bad\.jsonl:1: field 'text' is int, expected a string or a list of strings"),
    (['{"text": ["a", null]}'], ["text"], r"bad\.jsonl:1: field 'text' is list"),
    (['"a string"'], ["text"], r"bad\.jsonl:1: a JSON string, but benchmark 'b' names fields"),
    (['{"text": "a"}'], [], r"bad\.jsonl:1: a JSON object, but benchmark 'b' names no fields: set fields to some of \['text'\]"),
    (["[1, 2]"], ["text"], r"bad\.jsonl:1: expected a JSON object or string, got list"),
])
def test_bad_benchmark_file_names_file_and_line(tmp_path: Path, lines: list[str], fields: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message):
        DecontamFilter(DecontamFilterConfig(humaneval=False, benchmarks=[BenchmarkFileConfig("b", str(path), fields)]))


def test_unreadable_benchmark_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"benchmark 'b': file not found: .*nope\.jsonl"):
        list(benchmark_file_texts(BenchmarkFileConfig("b", str(tmp_path / "nope.jsonl"))))
    broken = tmp_path / "b.jsonl.gz"
    broken.write_bytes(gzip.compress(b'"abc"\n')[:-6])
    with pytest.raises(ConfigError, match=r"b\.jsonl\.gz: cannot read benchmark 'b'"):
        list(benchmark_file_texts(BenchmarkFileConfig("b", str(broken))))


def test_bad_benchmark_file_is_one_cli_line(tmp_path: Path) -> None:
    from preprocessing.cli import main

    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": "b"\n')
    preset = tmp_path / "p.yaml"
    preset.write_text("stream:\n  filters:\n    decontamination:\n      benchmarks:\n"
                      f"        - {{name: mbpp, path: {tmp_path / 'bad.jsonl'}, fields: [text]}}\n")
    write_jsonl(tmp_path / "in.jsonl", stdlib_rows(3))
    res = CliRunner().invoke(main, ["stream", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "run"), "--config", str(preset)])
    assert res.exit_code == 2, res.output
    assert res.output.strip().count("\n") == 0 and "Traceback" not in res.output
    assert res.output.startswith(f"error: {tmp_path / 'bad.jsonl'}:2: not valid JSON")


def test_stream_command_says_what_decontamination_dropped(tmp_path: Path, problems: dict) -> None:
    from preprocessing.cli import main

    rows = stdlib_rows(6)
    others = build_filters(FiltersConfig(decontamination=DecontamFilterConfig(enabled=False)))
    kept = [i for i, r in enumerate(rows) if not any(f.filter(CodeFile(r["content"], r["repo_name"], r["path"], r["license"]))
                                                     for f in others)]
    rows[kept[0]]["content"] = plant(rows[kept[0]]["content"], problems["HumanEval/7"]["prompt"])
    write_jsonl(tmp_path / "in.jsonl", rows)
    res = CliRunner().invoke(main, ["stream", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "decontamination: files dropped per benchmark: humaneval 1" in res.output
    res = CliRunner().invoke(main, ["stream", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "run2"),
                                    "--config", str(ROOT / "configs" / "preprocess" / "codeparrot.yaml")])
    assert res.exit_code == 0 and "decontamination" not in res.output, res.output


# ---------------------------------------------------------------- config and presets


def test_config_keys_are_strict(tmp_path: Path) -> None:
    cfg = from_dict(FiltersConfig, {"decontamination": {"ngram_threshold": 0.5, "min_chars": 60, "benchmarks": [
        {"name": "mbpp", "path": "m.jsonl", "fields": ["text", "code"]}]}})
    assert cfg.decontamination.benchmarks == [BenchmarkFileConfig("mbpp", "m.jsonl", ["text", "code"])]
    assert cfg.decontamination.ngram_threshold == 0.5 and cfg.decontamination.min_chars == 60
    with pytest.raises(ConfigError, match=r"decontamination: unknown key 'min_len' \(known: benchmarks, enabled, humaneval"):
        from_dict(FiltersConfig, {"decontamination": {"min_len": 3}})
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]: unknown key 'field' \(known: fields, json_fields, name, path\)"):
        from_dict(FiltersConfig, {"decontamination": {"benchmarks": [{"name": "a", "path": "p", "field": "x"}]}})
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]\.fields: expected a list"):
        from_dict(FiltersConfig, {"decontamination": {"benchmarks": [{"name": "a", "path": "p", "fields": "x"}]}})
    for bad, message in [({"ngram_threshold": 1.5}, r"ngram_threshold must be in \(0, 1\]"),
                         ({"min_chars": 0}, "min_chars must be >= 1"),
                         ({"benchmarks": [{"name": "humaneval", "path": "p"}]}, "named twice: humaneval"),
                         ({"benchmarks": [{"name": "my bench", "path": "p"}]}, "name 'my bench' must be letters")]:
        with pytest.raises(ConfigError, match=message):
            from_dict(FiltersConfig, {"decontamination": bad})


@pytest.mark.parametrize(("preset", "on"), [(None, True), ("codeparrot", False), ("strict", True), ("bigcode", True),
                                            ("demo", True), ("the-stack", True)])
def test_presets(preset: str | None, on: bool) -> None:
    cfg = load_config(StreamConfig, None if preset is None else ROOT / "configs" / "preprocess" / f"{preset}.yaml",
                      section="stream")
    assert cfg.filters.decontamination.enabled is on
    assert ("decontaminated" in [f.name for f in build_filters(cfg.filters)]) is on


# ---------------------------------------------------------------- the stream stage and the report


def test_stream_counts_per_benchmark_with_two_workers(tmp_path: Path, problems: dict) -> None:
    from preprocessing.stages.report import ReportConfig, build_report, render_html

    rows = stdlib_rows(40)
    for i, tid in enumerate(["HumanEval/0", "HumanEval/31", "HumanEval/90"]):
        rows[10 * i + 3]["content"] = plant(rows[10 * i + 3]["content"],
                                            problems[tid]["prompt"] + problems[tid]["canonical_solution"])
    rows[35]["content"] = plant(rows[35]["content"], "# " + mbpp_rows()[1]["text"])
    write_jsonl(tmp_path / "in.jsonl", rows)
    bench = write_jsonl(tmp_path / "mbpp.jsonl", mbpp_rows())
    runs = {}
    for workers in (1, 2):
        cfg = load_config(StreamConfig, None, {"input.paths": [str(tmp_path / "in.jsonl")]})
        cfg.filters.decontamination.benchmarks = [BenchmarkFileConfig("mbpp", str(bench), ["text", "code"])]
        runs[workers] = run_stream(cfg, tmp_path / f"w{workers}", executor=workers)
    s1, s2 = runs[1], runs[2]
    dropped = s2["stages"]["filter"]["dropped"]
    assert dropped.get(HE) == 3 and dropped.get("decontaminated:mbpp") == 1, dropped
    assert s1["stages"] == s2["stages"] and s1["examples"] == s2["examples"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "w1" / "clean").glob("*.zst")} == \
           {p.name: p.read_bytes() for p in (tmp_path / "w2" / "clean").glob("*.zst")}
    assert s2["filters"]["decontaminated"]["benchmarks"] == {"humaneval": {"items": 163, "patterns": 295},
                                                             "mbpp": {"items": 2, "patterns": 4}}
    assert {e["path"] for e in s2["examples"][HE]} == {rows[i]["path"] for i in (3, 13, 23)}
    assert {e["why"].split(":")[0] for e in s2["examples"][HE]} == {
        "holds humaneval HumanEval/0 prompt_docstring", "holds humaneval HumanEval/31 prompt_docstring",
        "holds humaneval HumanEval/90 prompt_docstring"}
    report = build_report(tmp_path / "w2")
    reasons = {r["reason"]: r for r in report["reasons"]}
    assert reasons[HE]["count"] == 3 and reasons[HE]["rule"] == "decontaminated" and len(reasons[HE]["examples"]) == 3
    dec = {b["benchmark"]: b for b in report["decontamination"]["benchmarks"]}
    assert dec["humaneval"]["files_dropped"] == 3 and dec["mbpp"]["files_dropped"] == 1
    page = render_html(report, cfg=ReportConfig(plots=False))
    assert "<h3>Benchmark decontamination</h3>" in page and "decontaminated:humaneval (3 examples)" in page
    assert "holds humaneval HumanEval/0 prompt_docstring: Check if in given list of numbers" in page
