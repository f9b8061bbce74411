"""The secrets filter (preprocessing/filters/secrets.py): detection, redaction, drop, budget, stream integration."""

from __future__ import annotations

import json
import pickle
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from preprocessing.filters import FiltersConfig, SecretsFilter, SecretsFilterConfig, apply_filters, build_filters
from preprocessing.filters.secrets import PLACEHOLDERS, BudgetExceeded, SecretsScanner, redact, score_labelled
from preprocessing.readers import InputConfig
from preprocessing.record import CodeFile
from preprocessing.stages.stream import StreamConfig, run_stream
from tests.conftest import STDLIB, stdlib_rows, write_jsonl
from tests.test_stream import assert_accounted, read_output

LABELLED = Path(__file__).parent / "data" / "secrets_labelled.jsonl"

# One planted line per kind: (kind, line holding the secret, the secret itself). Generated values in
# each service's real format, never real credentials.
PLANTS = [
    ("aws_access_key", 'AWS_ACCESS_KEY_ID = "AKIAQ3EGRW7YHV2NBX5L"', "AKIAQ3EGRW7YHV2NBX5L"),
    ("aws_secret_key", 'aws_secret_access_key = "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"',
     "u7Rk2Pq9ZfLw0XcVb3NmHt6YsJd8GaEi1OoKl4Qe"),
    ("github_token", "TOKEN = 'ghp_4fTq9ZxK2mWv7LpR0sYc8HdN3bJ6gEa1Ui5o'", "ghp_4fTq9ZxK2mWv7LpR0sYc8HdN3bJ6gEa1Ui5o"),
    ("huggingface_token", 'login(token="hf_94wBhPGp6KrrTH3KDchhKpRxZwd6dmHWLQ")', "hf_94wBhPGp6KrrTH3KDchhKpRxZwd6dmHWLQ"),
    ("slack_token", "client = WebClient(token='xoxb-284619305712-3948571029384-q8w7e6r5t4y3u2i1o0p9a8s7')",
     "xoxb-284619305712-3948571029384-q8w7e6r5t4y3u2i1o0p9a8s7"),
    ("stripe_key", 'stripe.api_key = "sk_live_51HqZ8kLm3Np7Qr2St9Uv4Wx"', "sk_live_51HqZ8kLm3Np7Qr2St9Uv4Wx"),
    ("jwt", 'AUTH = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImlhdCI6MTUxNjIzOTAyMn0.'
     'k2Zp9Qw8Lm4Rt7Vx1Bn5Cj3Hd6Fs0Ga-Ey_Iu2Oo9Pq"',
     "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImlhdCI6MTUxNjIzOTAyMn0."
     "k2Zp9Qw8Lm4Rt7Vx1Bn5Cj3Hd6Fs0Ga-Ey_Iu2Oo9Pq"),
    ("url_password", 'DB = "postgresql://app:Xq7vR2mK9pLw@db.prod.mycorp.net:5432/app"', "Xq7vR2mK9pLw"),
    ("email", "# maintained by Li Wei <li.wei@uni-heidelberg.de>", "li.wei@uni-heidelberg.de"),
    ("ip_address", "BASTION = '52.14.201.7'", "52.14.201.7"),
    ("ip_address", "UPSTREAM6 = '2607:f8b0:4005:80a::200e'", "2607:f8b0:4005:80a::200e"),
]
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
       "+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQz\n"
       "-----END RSA PRIVATE KEY-----")

LOOK_ALIKES = [
    '    {file = "idna-3.6-py3-none-any.whl", hash = "sha256:c05567e9c24a6b9faaa835c4821bad0590fbb9d5779e7caa6e1cc4978e7eb24f"},',
    '  "integrity": "sha512-KrXzfrZ9tgZMgoZP7FMlgyDKkq1C7D1iO4bZqHBl1ZlLW2XrT8Ny6k1aLBQHs3Ju8W0m8X1fHGk2dwcgCbFNNw==",',
    'request_id = "123e4567-e89b-42d3-a456-426614174000"',
    'version = "1.2.3.4"', "__version__ = '3.11.4.1'", "pkg==2.0.0.1",
    "HOST = '127.0.0.1'", "bind = '0.0.0.0'", "LAN = '192.168.1.20'", "DOC = '192.0.2.33'", "addr = '::1'",
    "mask = '255.255.255.0'", "METADATA = 'http://169.254.169.254/latest/'",
    'EMAIL = "user@example.com"', "# e.g. jane.doe@example.org", "noreply@github.com", "icon@2x.png",
    "git+ssh://git@github.com/org/pkg.git", "rev = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3'",
    "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
    'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):', "@property", "x = a[1::2]", "t = '12:30:45'",
    'password = os.environ["DB_PASSWORD"]', "API_KEY = '${API_KEY}'", "stripe.api_key = 'sk_test_abc'",
    "https://docs.python.org/3/library/re.html",
    # false positives once seen in this installation's files
    "          'AAACCATCTCTACCGGTTCGCTTTCACTGGATATCGCGCTTG'",  # a DNA sequence (regex tests): ACCA + 16
    'tokenizer = AutoTokenizer.from_pretrained("naver-hyperclovax/HyperCLOVAX-SEED-Think-14B")',
    '_no_split_modules = ["Qwen2_5OmniToken2WavDiTModel", "Qwen2_5OmniToken2WavBigVGANModel"]',
    "(b'password', b'NaCl', 1024, 8, 16, unhexlify('fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b37316'))",
    "broker = 'amqp://guest:guest@localhost:5672//'", "# see section 8.1.2.2 of the spec",
    "<20020201195627.33539.96671@nightshade.la.mastaler.com>", "convert IP addr string (123.45.67.89) to 32-bit",
    '    >>> tokenizer("ACDEFGHIKLMNPQRSTVWY")["input_ids"]', "access_key = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'",
]


def rec(content: str, path: str = "mod.py") -> CodeFile:
    return CodeFile(content=content, repo_name="someone/repo", path=path, license="MIT")


def real_files(n: int, start: int = 0) -> list[tuple[str, str]]:
    """(name, content) of real standard-library modules in which the scanner finds nothing."""
    scanner = SecretsScanner()
    out = []
    for p in sorted(STDLIB.glob("*.py"))[start:]:
        text = p.read_text(encoding="utf-8")
        if 2_000 < len(text) < 60_000 and not scanner.scan(text, p.name):
            out.append((p.name, text))
            if len(out) == n:
                break
    return out


def plant(text: str, line: str, seed: int) -> tuple[str, int]:
    """``text`` with ``line`` inserted at a seeded line boundary; returns it and the offset of the line."""
    cuts = [i + 1 for i, c in enumerate(text) if c == "\n"]
    at = random.Random(seed).choice(cuts[: max(1, len(cuts) - 1)])
    return text[:at] + line + "\n" + text[at:], at


@pytest.mark.parametrize("i", range(len(PLANTS)))
def test_planted_secret_redacted_in_real_file_rest_byte_identical(i):
    kind, line, value = PLANTS[i]
    name, text = real_files(3)[i % 3]
    planted, at = plant(text, line, seed=i)
    expected = text[:at] + line.replace(value, PLACEHOLDERS[kind]) + "\n" + text[at:]
    r = rec(planted, name)
    reason, edit = SecretsFilter().rewrite(r)
    assert reason is None and edit is not None and edit.counts == {kind: 1}
    assert r.content == expected
    assert value not in edit.examples[kind] and PLACEHOLDERS[kind] in edit.examples[kind]


def test_private_key_block_redacted_whole_across_lines():
    name, text = real_files(1)[0]
    planted, at = plant(text, f'KEY = """{PEM}"""', seed=3)
    r = rec(planted, name)
    SecretsFilter().rewrite(r)
    assert r.content == text[:at] + 'KEY = """<SECRET:private_key>"""\n' + text[at:]
    # the same key written on one line with \n escapes, and a header with no key after it
    one = PEM.replace("\n", "\\n")
    assert SecretsScanner().scan(f'K = "{one}"\n')[0].kind == "private_key"
    assert redact(f'K = "{one}"\n', SecretsScanner().scan(f'K = "{one}"\n')) == 'K = "<SECRET:private_key>"\n'


def test_all_kinds_in_one_file_and_placeholders_are_typed():
    name, text = real_files(1, start=10)[0]
    lines = [line for _, line, _ in PLANTS] + [f'KEY = """{PEM}"""']
    planted = text + "\n".join(lines) + "\n"
    found = SecretsScanner().scan(planted, name)
    assert Counter(f.kind for f in found) == Counter([k for k, _, _ in PLANTS] + ["private_key"])
    out = redact(planted, found)
    assert out.startswith(text)
    for kind, _, value in PLANTS:
        assert value not in out
    assert "<SECRET:aws_access_key>" in out and "<EMAIL>" in out and "<IP_ADDRESS>" in out


@pytest.mark.parametrize("line", LOOK_ALIKES)
def test_no_findings_on_look_alikes(line):
    assert SecretsScanner().scan(line + "\n", "poetry.lock" if "hash" in line else "mod.py") == []


def test_drop_mode_reasons_and_dropped_example_is_redacted():
    f = SecretsFilter(SecretsFilterConfig(mode="drop"))
    name, text = real_files(1)[0]
    for kind, line, value in PLANTS:
        r = rec(plant(text, line, seed=1)[0], name)
        assert f.filter(r) == f"secrets:{kind}"
        assert value not in r.content  # what the report's example shows is redacted
    r = rec(text, name)
    assert f.filter(r) is None and r.content == text


def test_budget_drops_with_a_named_reason_in_bounded_time():
    f = SecretsFilter()
    many = "".join(f"contact{i}@mycorp-mail.net\n" for i in range(3000))  # thousands of findings
    one_line = "x" + "@a.b 1.2.3.4 ://" * 200_000  # a 3 MB minified line full of triggers
    t0 = time.perf_counter()
    for content in (many, one_line):
        r = rec(content, "data.py")
        assert f.filter(r) == "secrets:budget"
        assert r.content == ""  # nothing unscanned reaches the report
    assert time.perf_counter() - t0 < 5
    with pytest.raises(BudgetExceeded):
        SecretsScanner(SecretsFilterConfig(max_findings=5)).scan(many)


def test_binary_looking_text_and_split_keys_do_not_crash():
    rng = random.Random(0)
    noise = bytes(rng.randrange(256) for _ in range(200_000)).decode("latin-1")
    surrogates = "x = '\udcff\ud800'\nAKIA" + "\n" + "Q3EGRW7YHV2NBX5L\n"  # lone surrogates; a key split across lines
    for content in (noise, surrogates, "", "\n\n", "@", "::", "0.0"):
        r = rec(content)
        SecretsFilter().filter(r)  # no exception
    assert SecretsScanner().scan(surrogates) == []  # a split key is not reassembled (documented)


def test_non_ascii_offsets_are_character_offsets():
    text = "# Ünïcødé ✓ 日本語\nname = 'Zoë'  # zoe.mueller@beispiel-firma.de (Zoë Müller)\nHOST = '52.14.201.7'\n"
    out = redact(text, SecretsScanner().scan(text))
    assert out == "# Ünïcødé ✓ 日本語\nname = 'Zoë'  # <EMAIL> (Zoë Müller)\nHOST = '<IP_ADDRESS>'\n"


def test_prefilter_finds_what_every_detector_on_every_line_finds():
    """The prefilter only skips lines no detector can match: same findings as the naive scan."""
    scanner = SecretsScanner()
    texts = [t for _, t in real_files(6, start=40)]
    texts += [json.loads(line)["text"] for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    name, base = real_files(1)[0]
    texts += [plant(base, line, seed=i)[0] for i, (_, line, _) in enumerate(PLANTS)]
    for t in texts:
        assert scanner.scan(t, "x.py") == scanner.scan(t, "x.py", prefilter=False)


def test_filter_and_scanner_pickle_and_config_validates():
    f = pickle.loads(pickle.dumps(SecretsFilter(SecretsFilterConfig(base64_limit=4.0))))
    assert f.config.base64_limit == 4.0 and f.scanner.scan("k = 'AKIAQ3EGRW7YHV2NBX5L'")
    with pytest.raises(ValueError, match="mode must be redact, drop or off"):
        SecretsFilterConfig(mode="mask")
    with pytest.raises(ValueError, match="bits per character"):
        SecretsFilterConfig(hex_limit=9)
    assert [x.name for x in build_filters(FiltersConfig(secrets=SecretsFilterConfig(mode="off")))][-1] != "secrets"


def test_apply_filters_recomputes_metrics_of_rewritten_records():
    from preprocessing.filters.quality import file_metrics
    from preprocessing.profile import CorpusProfile

    r = rec("a = 1\nmail = 'jane@mycorp-mail.net'\n")
    r.metrics = file_metrics(r.content)
    profile = CorpusProfile()
    assert apply_filters([SecretsFilter()], r, profile) is None
    assert r.content == "a = 1\nmail = '<EMAIL>'\n" and r.metrics == file_metrics(r.content)
    d = profile.to_dict()
    assert d["edits"] == {"findings": {"secrets:email": 1}, "files": {"secrets:email": 1}}
    assert d["examples"]["edited:secrets:email"][0]["head"] == "mail = '<EMAIL>'"


def labelled_scores() -> dict[str, dict[str, int]]:
    """tp/fp/fn per kind on tests/data/secrets_labelled.jsonl."""
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    return score_labelled(SecretsScanner(), rows)


def test_precision_and_recall_on_the_labelled_set():
    rows = LABELLED.read_text(encoding="utf-8").splitlines()
    assert len(rows) >= 200
    score = labelled_scores()
    tp, fp, fn = (sum(s.get(x, 0) for s in score.values()) for x in ("tp", "fp", "fn"))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.98 and recall >= 0.95, (precision, recall, score)
    for kind in ("aws_access_key", "github_token", "slack_token", "stripe_key", "private_key", "jwt", "email",
                 "ip_address", "url_password"):
        s = score[kind]
        assert s.get("fp", 0) == 0 and s["tp"] / (s["tp"] + s.get("fn", 0)) >= 0.9, (kind, s)


def _dump(tmp_path: Path) -> tuple[Path, list[dict]]:
    rows = stdlib_rows(30)
    base = rows[5]
    a = dict(base, path="a/settings.py", content=base["content"] + 'AWS_ACCESS_KEY_ID = "AKIAQ3EGRW7YHV2NBX5L"\n')
    b = dict(base, path="b/settings.py", content=base["content"] + 'AWS_ACCESS_KEY_ID = "AKIAZZ9YX8WV7UT6SR5Q"\n')
    path = write_jsonl(tmp_path / "d.jsonl", rows + [a, b])
    return path, rows


def _cfg(path: Path, mode: str) -> StreamConfig:
    cfg = StreamConfig(input=InputConfig(paths=[str(path)]))
    cfg.filters.quality.enabled = False
    cfg.filters.secrets.mode = mode
    return cfg


def test_stream_redacts_before_exact_dedup_and_leaves_other_rows_identical(tmp_path):
    path, rows = _dump(tmp_path)
    on = run_stream(_cfg(path, "redact"), tmp_path / "on")
    off = run_stream(_cfg(path, "off"), tmp_path / "off")
    assert_accounted(on)
    assert_accounted(off)
    # the two files differing only in their key deduplicate together once redacted
    assert on["stages"]["exact_dedup"]["dropped"].get("exact_duplicate", 0) == \
        off["stages"]["exact_dedup"]["dropped"].get("exact_duplicate", 0) + 1
    out_on, out_off = read_output(tmp_path / "on"), read_output(tmp_path / "off")
    by_path_off = {r["path"]: r for r in out_off}
    redacted = [r for r in out_on if "<SECRET:" in r["content"] or "<EMAIL>" in r["content"] or "<IP_ADDRESS>" in r["content"]]
    for r in out_on:
        if r not in redacted:
            assert r == by_path_off[r["path"]]  # no finding: byte for byte the row of a run without the filter
    kept = [r for r in out_on if r["path"] == "a/settings.py"]
    assert kept and kept[0]["content"].endswith('AWS_ACCESS_KEY_ID = "<SECRET:aws_access_key>"\n')
    assert not any(r["path"] == "b/settings.py" for r in out_on)
    assert on["edits"]["findings"]["secrets:aws_access_key"] == 2  # counted before dedup, on both files
    st = on["stages"]
    assert st["filter"]["bytes_out"] == st["exact_dedup"]["bytes_in"] < st["filter"]["bytes_in"]  # redacted bytes
    assert "AKIA" not in json.dumps(on["examples"])


def test_stream_drop_mode_counts_reasons_and_two_workers_same_bytes(tmp_path):
    path, _ = _dump(tmp_path)
    s1 = run_stream(_cfg(path, "drop"), tmp_path / "w1")
    s2 = run_stream(_cfg(path, "drop"), tmp_path / "w2", executor=2)
    assert_accounted(s1)
    assert s1["stages"]["filter"]["dropped"]["secrets:aws_access_key"] == 2
    assert s1["edits"]["findings"] == {}
    assert s1["totals"] == s2["totals"]
    b1 = [p.read_bytes() for p in sorted((tmp_path / "w1" / "clean").glob("part-*"))]
    b2 = [p.read_bytes() for p in sorted((tmp_path / "w2" / "clean").glob("part-*"))]
    assert b1 == b2
    assert "AKIA" not in json.dumps(s1["examples"])


def test_report_shows_counts_per_kind_and_redacted_examples(tmp_path):
    from preprocessing.stages.report import ReportConfig, build_report, render_html

    path, _ = _dump(tmp_path)
    stats = run_stream(_cfg(path, "redact"), tmp_path / "run")
    report = build_report(tmp_path / "run", ReportConfig(plots=False))
    rows = {x["kind"]: x for x in report["secrets"]["kinds"]}
    assert report["secrets"]["mode"] == "redact"
    assert rows["aws_access_key"]["findings_redacted"] == stats["edits"]["findings"]["secrets:aws_access_key"] == 2
    assert rows["aws_access_key"]["files_dropped"] == 0
    assert rows["aws_access_key"]["examples"][0]["head"] == 'AWS_ACCESS_KEY_ID = "<SECRET:aws_access_key>"'
    page = render_html(report, cfg=ReportConfig(plots=False))
    assert "Secrets and PII" in page and "&lt;SECRET:aws_access_key&gt;" in page and "AKIA" not in page


def test_cli_secrets_flag_overrides_the_preset(tmp_path):
    from click.testing import CliRunner

    from preprocessing.cli import main

    preset = Path(__file__).resolve().parent.parent / "configs" / "preprocess" / "codeparrot.yaml"
    res = CliRunner().invoke(main, ["stream", "--config", str(preset), "--dry-run"])
    assert res.exit_code == 0 and '"mode": "off"' in res.output.replace("'", '"')
    res = CliRunner().invoke(main, ["stream", "--config", str(preset), "--secrets", "drop", "--dry-run"])
    assert res.exit_code == 0 and '"mode": "drop"' in res.output.replace("'", '"')
    path, _ = _dump(tmp_path)
    res = CliRunner().invoke(main, ["stream", str(path), "-o", str(tmp_path / "run"), "--secrets", "drop"])
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "run" / "clean" / "stats.json").read_text())
    assert stats["totals"]["dropped"]["secrets:aws_access_key"] == 2


def test_minified_long_line_under_budget_is_redacted_in_place():
    rng = random.Random(1)
    words = ["var", "function", "return", "a.b", "x=1;", "if(y){z()}", "0.5", "'str'"]
    body = " ".join(rng.choice(words) for _ in range(40_000))  # one ~200 kB line
    token = "ghp_4fTq9ZxK2mWv7LpR0sYc8HdN3bJ6gEa1Ui5o"
    line = body[:100_000] + f' t="{token}"; ' + body[100_000:]
    r = rec(line + "\n", "app.min.js")
    t0 = time.perf_counter()
    reason, edit = SecretsFilter().rewrite(r)
    assert reason is None and edit.counts == {"github_token": 1} and time.perf_counter() - t0 < 2
    assert r.content == line.replace(token, "<SECRET:github_token>") + "\n"


def test_plugins_made_at_the_first_candidate_line_only() -> None:
    """A scanner imports detect-secrets (and requests) only when a text has a line a plugin must see;
    the findings are those of a scanner whose plugins were made first (made at once)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from preprocessing.filters.secrets import SecretsScanner\n"
        "s = SecretsScanner()\n"
        "assert s.scan('def f(x):\\n    return x + 1\\n') == []\n"
        "assert 'detect_secrets' not in sys.modules, 'plugins made for a text without candidate lines'\n"
        f"text = {PLANTS[0][1] + chr(10) + PLANTS[2][1]!r}\n"
        "got = s.scan(text)\n"
        "assert 'detect_secrets' in sys.modules\n"
        "ref = SecretsScanner()\n"
        "ref._plugins_made()\n"
        "assert got == ref.scan(text) and [f.kind for f in got] == ['aws_access_key', 'github_token'], got\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
