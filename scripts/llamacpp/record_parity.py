"""Record llama.cpp's logits and tokenization on the committed GGUF fixtures.

Run through scripts/llamacpp/make_fixtures.sh, which builds llama.cpp from the PyPI sdist of
llama-cpp-python and sets PYTHONPATH / LLAMA_CPP_LIB_PATH for the binding.

For every fixture MODEL.gguf this writes MODEL.llamacpp.json (settings, token ids, top-1 ids,
tokenizations) and MODEL.llamacpp.f32 (the logits, little-endian f32, [positions, vocab]).
llama.cpp runs with an f32 KV cache and without flash attention, so the comparison measures the
matrix products, not a cache format.
"""

import json
import sys
from pathlib import Path

import numpy as np
import llama_cpp

GGML_TYPE_F32 = 0

# Token ids: BOS, then a fixed pseudo-random walk over the vocabulary (enough positions to
# exercise the conv window, the KV cache across prefill chunks, and RoPE).
def sequence(vocab, n=40):
    ids, s = [1], 12345
    while len(ids) < n:
        s = (s * 1103515245 + 12345) % (1 << 31)
        ids.append(14 + s % (vocab - 14))
    return ids

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces, tabs\tand\nnewlines\n\n",
    "numbers 1234567 and symbols $%^&*() 'quotes' don't",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|tool_call_start|>[f(a=1)]<|tool_call_end|>",
    "unicode: café naïve 東京 🚀",
]


def record(path: Path):
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=256, n_batch=64, n_ubatch=64, n_threads=2,
        logits_all=True, flash_attn=False, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32,
        verbose=False,
    )
    vocab = llm.n_vocab()
    ids = sequence(vocab)
    llm.reset()
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    base = path.with_suffix("")
    (base.parent / (base.name + ".llamacpp.f32")).write_bytes(logits.astype("<f4").tobytes())
    toks = {t: llm.tokenize(t.encode(), add_bos=False, special=True) for t in TEXTS}
    meta = {
        "model": path.name,
        "llama_cpp_python": llama_cpp.__version__,
        "settings": {"n_ctx": 256, "n_batch": 64, "kv_cache": "f32", "flash_attn": False, "threads": 2},
        "vocab": vocab,
        "tokens": ids,
        "top1": [int(i) for i in logits.argmax(axis=1)],
        "tokenize": toks,
    }
    (base.parent / (base.name + ".llamacpp.json")).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(ids)} positions x {vocab} logits, range {logits.min():.2f}..{logits.max():.2f}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        record(Path(p))
