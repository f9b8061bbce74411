"""Benchmark: validation loss in bits per character of the `tiny` model trained on each pre-tokenizer's shards.

Fewer tokens are only worth having if the model predicts the code as well: a tokenizer with longer
tokens has fewer, harder predictions. Bits per character (loss per token x tokens / characters / ln 2)
puts tokenizations with different token counts on one scale.

Corpus: a keyed sample of the .py files of the local Python installation (one repository per
distribution), split by repository (10% of repositories, the tokenizer's held-out hash): the tokenizers
are trained, and the model is trained, on the other repositories only; validation is every file of the
held-out ones, the same files for every tokenizer. Per pre-tokenizer: `train_tokenizer` (same
vocabulary), `pack` (seq_length 128) of both parts, then `training/run.py` with configs/training/tiny.yaml
for the same number of optimizer steps and the same tokens per step (16 x 128), in a fresh process each,
evaluating the whole validation split at the end (and every --eval-every steps). The same steps x tokens
per step (equal FLOPs: same model, same vocabulary), not the same wall clock, because the machine's
cores are shared; wall and CPU time are reported too.

    python benchmarks/bench_tokenizer_quality.py                        # 4 pre-tokenizers, 8k, 120 steps
    python benchmarks/bench_tokenizer_quality.py --vocab-size 8192 --steps 300 --eval-every 100 --seeds 2 \
        --pretokenizers gpt2,superword,superword-curriculum --jobs 6 --work-dir /tmp/q8k   # docs/tokenizer_pack.md

With --seeds N, each pre-tokenizer named in --seeds-for is trained N times (model seeds 0..N-1; the same
tokenizer and shards): the spread between seeds is the noise level a difference must exceed. --jobs runs
training processes side by side (one torch thread each by default); each run's CPU seconds are its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))



def export_split(out: Path, fraction: float, heldout_fraction: float, valid_sample: float = 1.0,
                 seed: int = 0) -> dict[str, dict[str, int]]:
    """A keyed ``fraction`` of the installation as out/{train,valid}/part-00000.jsonl.zst, valid = held-out repos.

    ``valid_sample``: the keyed fraction of the held-out files kept (so that evaluating the whole valid
    split at every eval point stays cheap); the others are used by nobody.
    """
    import orjson
    import zstandard

    from preprocessing.hashing import keyed_uniform, record_key
    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile
    from preprocessing.stages.tokenizer import TokenizerConfig, is_heldout

    split_cfg = TokenizerConfig(heldout_fraction=heldout_fraction, seed=seed)
    info = {s: {"files": 0, "chars": 0, "repos": set()} for s in ("train", "valid")}
    writers = {}
    for s in info:
        (out / s).mkdir(parents=True)
        writers[s] = zstandard.ZstdCompressor(level=3).stream_writer(open(out / s / "part-00000.jsonl.zst", "wb"))
    for rec in PythonEnvReader().records():
        if (not isinstance(rec, CodeFile) or not rec.content
                or keyed_uniform(record_key(rec.repo_name, rec.path), "bench", seed) >= fraction):
            continue
        s = "valid" if is_heldout(rec, split_cfg) else "train"
        if s == "valid" and keyed_uniform(record_key(rec.repo_name, rec.path), "bench_valid", seed) >= valid_sample:
            continue
        writers[s].write(orjson.dumps({"repo_name": rec.repo_name, "path": rec.path, "content": rec.content}) + b"\n")
        info[s]["files"] += 1
        info[s]["chars"] += len(rec.content)
        info[s]["repos"].add(rec.repo_name)
    for w in writers.values():
        w.close()
    return {s: {**v, "repos": sorted(v["repos"])} for s, v in info.items()}



def corpus_info(corpus: Path) -> dict[str, dict]:
    """Files, characters and repositories of an exported out/{train,valid} (to reuse a --work-dir)."""
    from preprocessing.readers import JsonlReader
    from preprocessing.record import CodeFile

    info = {}
    for s in ("train", "valid"):
        recs = [r for r in JsonlReader([str(corpus / s / "part-00000.jsonl.zst")]).records() if isinstance(r, CodeFile)]
        info[s] = {"files": len(recs), "chars": sum(len(r.content) for r in recs),
                   "repos": sorted({r.repo_name for r in recs})}
    return info


def parse_runs(pretokenizers: str, seeds: int, seeds_for: str | None) -> list[tuple[str, int]]:
    """(pre-tokenizer, model seed) of every training run: ``seeds`` seeds for those in ``seeds_for``
    (default: all), seed 0 for the others."""
    names = pretokenizers.split(",")
    multi = set(names if seeds_for is None else seeds_for.split(","))
    return [(n, s) for n in names for s in range(seeds if n in multi else 1)]


def prepare(tmp: Path, name: str, vocab_size: int) -> tuple[dict, dict]:
    """Train the tokenizer on the train part, pack both parts (seq_length 128) into tmp/name/shards/{train,valid}."""
    from preprocessing.stages.pack import PackConfig, pack
    from preprocessing.stages.tokenizer import TokenizerConfig, train_tokenizer

    run = tmp / name
    if (run / "shards" / "valid" / "index.json").is_file():  # prepared by an earlier run in this --work-dir
        tstats = json.loads((run / "tokenizer" / "stats.json").read_text())
        if tstats["config"]["vocab_size"] != vocab_size:
            sys.exit(f"{run} holds a {tstats['config']['vocab_size']}-token {name} tokenizer, not {vocab_size}: "
                     f"use another --work-dir")
        return tstats, {s: json.loads((run / f"pack-{s}" / "stats.json").read_text())["splits"]["train"]
                        for s in ("train", "valid")}
    shutil.rmtree(run, ignore_errors=True)
    cfg = TokenizerConfig(vocab_size=vocab_size, pretokenizer=name, heldout_fraction=0.0,
                          compare_gpt2=False, max_bytes=None)
    tstats = train_tokenizer(tmp / "corpus" / "train", run / "tokenizer", cfg)
    packed = {}
    for s in ("train", "valid"):
        pstats = pack(tmp / "corpus" / s, run / "tokenizer", run / f"pack-{s}",
                      PackConfig(seq_length=128, valid_fraction=0.0))
        (run / "shards").mkdir(exist_ok=True)
        (run / f"pack-{s}" / "train").rename(run / "shards" / s)  # held-out files are the valid split
        packed[s] = pstats["splits"]["train"]
    return tstats, packed


def train_lm(run: Path, seed: int, steps: int, eval_every: int, threads: int) -> dict:
    """training/run.py with configs/training/tiny.yaml in a fresh process; its evals, wall and CPU seconds."""
    out_dir = run / f"model-{seed}"
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run (metrics.jsonl is appended to)
    cmd = [sys.executable, str(ROOT / "training" / "run.py"), "--config", str(ROOT / "configs/training/tiny.yaml"),
           f"data_dir={run / 'shards'}", f"tokenizer_dir={run / 'tokenizer'}", f"output_dir={out_dir}",
           f"max_steps={steps}", f"eval_every={eval_every}", "eval_batches=1000000", "save_every=0",
           "export=false", "trackers=", "progress_bar=false", "num_workers=0", "resume=none", f"seed={seed}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(run / f"train-{seed}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time, even with runs in parallel
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"training {run.name} seed {seed} failed:\n{(run / f'train-{seed}.log').read_text()[-3000:]}")
    metrics = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {"evals": [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m],
            "train_loss": [m["loss"] for m in metrics if "loss" in m][-1],
            "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.04, help="keyed fraction of the installation's files")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--pretokenizers", default="gpt2,superword-curriculum,superword,code")
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps of 16 x 128 tokens, every run")
    ap.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: at the end only)")
    ap.add_argument("--seeds", type=int, default=1, help="model seeds (initial weights, data order) per pre-tokenizer")
    ap.add_argument("--seeds-for", default=None, help="the pre-tokenizers that get --seeds seeds (default: all)")
    ap.add_argument("--heldout-fraction", type=float, default=0.1)
    ap.add_argument("--valid-sample", type=float, default=1.0, help="keyed fraction of the held-out files evaluated")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each training process")
    ap.add_argument("--jobs", type=int, default=1, help="training runs at the same time")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--work-dir", default=None,
                    help="keep the corpus, tokenizers and shards here (default: a temporary directory); a re-run "
                         "with the same --fraction/--heldout-fraction/--valid-sample/--vocab-size reuses them")
    args = ap.parse_args()
    from concurrent.futures import ThreadPoolExecutor

    runs = parse_runs(args.pretokenizers, args.seeds, args.seeds_for)
    names = list(dict.fromkeys(n for n, _ in runs))
    rows = []
    with tempfile.TemporaryDirectory() if args.work_dir is None else contextlib.nullcontext(args.work_dir) as tmp:
        tmp = Path(tmp)
        if (tmp / "corpus" / "valid").is_dir():
            info = corpus_info(tmp / "corpus")
        else:
            info = export_split(tmp / "corpus", args.fraction, args.heldout_fraction, args.valid_sample)
        print(f"train: {info['train']['files']:,} files, {info['train']['chars'] / 1e6:.1f}M chars, "
              f"{len(info['train']['repos'])} repositories; valid (held-out repositories): "
              f"{info['valid']['files']:,} files, {info['valid']['chars'] / 1e6:.2f}M chars of "
              f"{', '.join(info['valid']['repos'])}", flush=True)
        prepared = {}
        for name in names:
            prepared[name] = prepare(tmp, name, args.vocab_size)
            print(f"  {name}: tokenizer trained in {prepared[name][0]['train_time_s']:.1f} s, packed", flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda r: train_lm(tmp / r[0], r[1], args.steps, args.eval_every, args.threads), runs))
        for (name, seed), res in zip(runs, results):
            tstats, packed = prepared[name]
            v = packed["valid"]
            stream = v["tokens"] + v["eos_tokens"]
            bpc = {step: loss * stream / info["valid"]["chars"] / math.log(2) for step, loss in res["evals"]}
            rows.append({
                "pretokenizer": name, "seed": seed, "vocab": tstats["totals"]["vocab_size"],
                "chars_per_token": info["valid"]["chars"] / v["tokens"], "valid_tokens": stream,
                "evaluated": (v["samples"] // 16) * 16 * 128 / stream,
                "train_chars_seen": args.steps * 16 * 128 * info["train"]["chars"] / (packed["train"]["tokens"] + packed["train"]["eos_tokens"]),
                "train_epochs": args.steps * 16 * 128 / (packed["train"]["tokens"] + packed["train"]["eos_tokens"]),
                "train_loss": res["train_loss"], "val_loss": res["evals"][-1][1], "bpc": bpc[args.steps],
                "bpc_at": bpc, "tok_train_s": tstats["train_time_s"], "lm_wall_s": res["wall_s"], "lm_cpu_s": res["cpu_s"],
            })
            print(f"  {name} seed {seed}: {json.dumps(rows[-1])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "corpus": info, "rows": rows}, indent=1))
    print_tables(rows, args)


def print_tables(rows: list[dict], args: argparse.Namespace) -> None:
    """Markdown: one row per run, then the mean and seed spread per pre-tokenizer, then bits/char at every eval point."""
    base = [r["bpc"] for r in rows if r["pretokenizer"] == "gpt2"] or [rows[0]["bpc"]]
    base_mean = sum(base) / len(base)
    print()
    print(f"tiny model (configs/training/tiny.yaml), {args.steps} steps x 16 x 128 tokens (the same FLOPs for "
          f"every run of one vocabulary), vocab {args.vocab_size}, {args.jobs} run(s) at a time, {args.threads} torch thread(s) each")
    print("| pre-tokenizer | seed | held-out chars/token | valid tokens | code seen in training (M chars) | epochs | "
          "val loss (nats/token) | **bits per char** | vs gpt2 (mean) | tokenizer train s | LM wall s | LM CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pretokenizer']} | {r['seed']} | {r['chars_per_token']:.3f} | {r['valid_tokens']:,} | "
              f"{r['train_chars_seen'] / 1e6:.2f} | {r['train_epochs']:.2f} | {r['val_loss']:.4f} | **{r['bpc']:.4f}** | "
              f"{r['bpc'] / base_mean - 1:+.2%} | {r['tok_train_s']:.1f} | {r['lm_wall_s']:.0f} | {r['lm_cpu_s']:.0f} |")
    print(f"(the loss is the mean over the whole valid split in full batches: "
          f"{min(r['evaluated'] for r in rows):.1%}-{max(r['evaluated'] for r in rows):.1%} of its tokens)")
    names = list(dict.fromkeys(r["pretokenizer"] for r in rows))
    steps = sorted(rows[0]["bpc_at"])
    print()
    print("bits per char at each eval point: mean over seeds (min-max when more than one seed)")
    print("| pre-tokenizer | seeds | " + " | ".join(f"step {s}" for s in steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for name in names:
        mine = [r for r in rows if r["pretokenizer"] == name]
        cells = []
        for s in steps:
            vals = [r["bpc_at"][s] for r in mine]
            cell = f"{sum(vals) / len(vals):.4f}"
            if len(vals) > 1:
                cell += f" ({min(vals):.4f}-{max(vals):.4f})"
            cells.append(cell)
        print(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
