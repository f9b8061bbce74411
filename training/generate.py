"""Complete a Python prompt with an exported model, stopping at the end of the function (HumanEval style)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# CodeParrot / HumanEval stop sequences: a new top-level statement ends the function being completed.
STOP_SEQUENCES = ("\ndef", "\nclass", "\nif", "\nprint", "\n#")


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str] = STOP_SEQUENCES) -> str:
    """Cut text at the first occurrence of any stop sequence."""
    cut = min((i for i in (text.find(s) for s in stop) if i != -1), default=len(text))
    return text[:cut]


def generate(model_dir: str | Path, prompt: str, max_new_tokens: int = 128, temperature: float = 0.2,
             top_p: float = 0.95, num_samples: int = 1, seed: int = 0,
             stop: tuple[str, ...] | list[str] = STOP_SEQUENCES, device: str | None = None) -> list[str]:
    """Sample `num_samples` completions of `prompt` (the completions only, cut at the stop sequences).

    temperature=0 decodes greedily. Generation also stops early once every sample holds a stop sequence.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

    if max_new_tokens <= 0 or temperature < 0 or not 0 < top_p <= 1 or num_samples <= 0:
        raise ValueError(f"need max_new_tokens > 0, temperature >= 0, 0 < top_p <= 1, num_samples > 0; got "
                         f"{max_new_tokens}, {temperature}, {top_p}, {num_samples}")
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: no config.json; pass the exported model directory (OUTPUT_DIR/final)")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    prompt_len = inputs["input_ids"].shape[1]
    room = model.config.n_positions - prompt_len
    if room <= 0:
        raise ValueError(f"prompt is {prompt_len} tokens, the model's context is {model.config.n_positions}; "
                         f"shorten the prompt")

    class StopOnSequences(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in texts], device=input_ids.device)

    torch.manual_seed(seed)
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=min(max_new_tokens, room), num_return_sequences=num_samples,
                             pad_token_id=tokenizer.eos_token_id,
                             stopping_criteria=StoppingCriteriaList([StopOnSequences()]), **sampling)
    texts = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
    return [truncate_at_stop(t, stop) for t in texts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Complete a Python prompt with a trained model.")
    parser.add_argument("model_dir", help="exported model directory (OUTPUT_DIR/final)")
    parser.add_argument("--prompt", required=True, help="code to complete, e.g. 'def fib(n):'")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.2, help="0 decodes greedily")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on the command line
    try:
        completions = generate(args.model_dir, args.prompt, args.max_new_tokens, args.temperature, args.top_p,
                               args.num_samples, args.seed)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for i, completion in enumerate(completions):
        if len(completions) > 1:
            print(f"# --- sample {i}")
        print(args.prompt + completion)
    return 0


if __name__ == "__main__":
    sys.exit(main())
