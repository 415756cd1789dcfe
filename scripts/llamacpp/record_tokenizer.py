"""Record llama.cpp's tokenization with the `lfm2` pre-tokenizer (what published LFM2.5 GGUFs use).

Copies the metadata of a fixture GGUF (no tensors) into tok-lfm2.gguf with
tokenizer.ggml.pre = "lfm2", loads it in llama.cpp vocab-only, and writes
tok-lfm2.llamacpp.json with its tokenization of the same strings as record_parity.py plus a few
that tell the Llama-3 split from GPT-2's. Needs gguf-py (vendored in the sdist) and pyyaml.
"""

import json
import sys
from pathlib import Path

import gguf
import llama_cpp

from record_parity import TEXTS

EXTRA = ["I'LL DO IT", "x=12345678", "  \n\n  spaces", "Hello!!! ...", "don't   stop\r\nnow"]


def main(src: Path, out_dir: Path):
    r = gguf.GGUFReader(str(src))
    dst = out_dir / "tok-lfm2.gguf"
    w = gguf.GGUFWriter(str(dst), "lfm2")
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "tokenizer.ggml.pre"):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), vtype, sub_type=sub)
    w.add_string("tokenizer.ggml.pre", "lfm2")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    llm = llama_cpp.Llama(model_path=str(dst), vocab_only=True, verbose=False)
    texts = TEXTS + EXTRA
    toks = {t: llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts}
    (out_dir / "tok-lfm2.llamacpp.json").write_text(
        json.dumps({"model": dst.name, "pre": "lfm2", "tokenize": toks}, indent=1, ensure_ascii=False) + "\n")
    print(f"{dst.name}: {len(texts)} strings tokenized by llama.cpp with pre=lfm2")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
