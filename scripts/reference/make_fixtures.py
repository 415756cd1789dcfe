#!/usr/bin/env python3
"""Build tiny random-weight LFM2 checkpoints and record Hugging Face transformers' logits for them.

Each case becomes a folder under --out (default engine/tests/fixtures/parity/) holding a loadable
Hugging Face model folder (config.json + safetensors) plus:

  reference.safetensors  prompt_tokens, prefill_logits, incremental_logits, greedy_tokens, greedy_logits
                         (and *_bf16 variants for the bf16 case)
  reference.json         case metadata and the configuration values as transformers resolved them

The reference is always computed from a model reloaded with `from_pretrained` from the written folder,
after any rewriting of config.json, so the fixtures record how transformers itself reads that folder.
Everything is seeded; running the script twice gives byte-identical tensors.

Usage: python make_fixtures.py [--out DIR] [--only CASE ...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import safetensors
import safetensors.torch
import torch
import transformers
from transformers import DynamicCache, Lfm2Config, Lfm2ForCausalLM

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "engine" / "tests" / "fixtures" / "parity"
EXPECTED_TRANSFORMERS = "5.23.0"
N_GREEDY = 16
MIN_DISTINCT_GREEDY = 8
# Eager attention is the path LFM2-MATH.md describes (f32 softmax, then cast back to the activation dtype).
ATTN_IMPL = "eager"

# ---------------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------------
# `config`: kwargs for Lfm2Config before saving.
# `rewrite`: optional function(dict) -> dict applied to the saved config.json.
# `expect`: what transformers must resolve after reloading; asserted.

C, A = "conv", "full_attention"


def rewrite_old_style(cfg: dict) -> dict:
    """Turn a transformers-5 config.json into the spelling of the first LFM2 releases (transformers 4.54 era)."""
    out = dict(cfg)
    layer_types = out.pop("layer_types")
    out["full_attn_idxs"] = [i for i, t in enumerate(layer_types) if t == A]
    out["block_ff_dim"] = out.pop("intermediate_size")
    out["rope_theta"] = out.pop("rope_parameters")["rope_theta"]
    out.pop("tie_word_embeddings")
    out["tie_embedding"] = True
    out["torch_dtype"] = out.pop("dtype", "float32")
    out["transformers_version"] = "4.54.0.dev0"
    # Keys the old configs carry but the model never reads. Values chosen so that reading them would matter.
    out["block_dim"] = out["hidden_size"] * 2
    out["conv_dim"] = out["hidden_size"] * 2
    out["conv_dim_out"] = out["hidden_size"] * 2
    out["num_heads"] = out["num_attention_heads"] * 2
    out["block_norm_eps"] = 0.5
    out["use_pos_enc"] = False
    out["block_use_swiglu"] = True
    out["block_mlp_init_scale"] = 1.0
    out["block_out_init_scale"] = 1.0
    out["block_use_xavier_init"] = True
    out["conv_use_xavier_init"] = True
    return dict(sorted(out.items()))


def rewrite_minimal(cfg: dict) -> dict:
    """Keep only the keys needed to size the model; everything else falls back to Lfm2Config defaults."""
    keep = [
        "architectures",
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "dtype",
    ]
    return {k: cfg[k] for k in keep if k in cfg}


CASES = [
    dict(
        name="old_style_tied_f32",
        seed=1004,
        description=(
            "Old (transformers 4.54-era) config.json spelling: full_attn_idxs without layer_types, block_ff_dim "
            "instead of intermediate_size, top-level rope_theta (50000, non-default), tie_embedding, torch_dtype, "
            "plus ignored legacy keys (block_dim, conv_dim, num_heads, block_norm_eps, use_pos_enc, ...). "
            "GQA 4 query heads / 2 KV heads, tied embeddings, f32. FFN auto-adjust: 160 -> int(2*160/3)=106 -> "
            "int(1.0*106)=106 -> rounded up to multiple of 32 = 128."
        ),
        config_style="old",
        config=dict(
            vocab_size=320,
            hidden_size=48,
            intermediate_size=160,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            layer_types=[C, A, C, A],
            rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
            block_auto_adjust_ff_dim=True,
            block_ffn_dim_multiplier=1.0,
            block_multiple_of=32,
            tie_word_embeddings=True,
        ),
        rewrite=rewrite_old_style,
        save_dtype=torch.float32,
        expect=dict(layer_types=[C, A, C, A], ff=128, theta=50000.0, tied=True, nkv=2, head_dim=12),
        prompt=[1, 17, 250, 33, 0, 98, 301, 5, 77, 142, 6, 219, 64, 300],
        notes="Prompt contains token 0 (pad_token_id): its embedding row is random and must be looked up as-is.",
    ),
    dict(
        name="new_style_untied_mqa_f32",
        seed=2006,
        description=(
            "transformers-5 config.json as save_pretrained writes it: layer_types, full_attn_idxs null, "
            "rope_parameters with rope_theta 10000, tie_word_embeddings false (lm_head.weight stored separately). "
            "Multi-query attention (4 query heads, 1 KV head), block_auto_adjust_ff_dim false so "
            "intermediate_size 96 is used as is. f32."
        ),
        config_style="new",
        config=dict(
            vocab_size=320,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=5,
            num_attention_heads=4,
            num_key_value_heads=1,
            layer_types=[C, A, C, C, A],
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            block_auto_adjust_ff_dim=False,
            block_ffn_dim_multiplier=1.0,
            block_multiple_of=256,
            tie_word_embeddings=False,
        ),
        rewrite=None,
        save_dtype=torch.float32,
        expect=dict(layer_types=[C, A, C, C, A], ff=96, theta=10000.0, tied=False, nkv=1, head_dim=12),
        prompt=[1, 200, 45, 45, 45, 310, 12, 9, 180, 260, 31, 99, 7, 150, 222, 3],
        notes="Prompt repeats token 45 three times in a row.",
    ),
    dict(
        name="bf16_gqa_autoff",
        seed=3001,
        description=(
            "Weights stored in bfloat16. GQA 8 query heads / 2 KV heads (head_dim 8), tied embeddings, "
            "block_auto_adjust_ff_dim true with block_ffn_dim_multiplier 1.3 and block_multiple_of 32: "
            "200 -> int(2*200/3)=133 -> int(1.3*133)=172 -> rounded up to 192. "
            "Unsuffixed recordings: checkpoint loaded with dtype=float32 (exact upcast, f32 math). "
            "*_bf16 recordings: loaded with dtype=bfloat16 (bf16 math; logits returned in bf16, stored as f32)."
        ),
        config_style="new",
        config=dict(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=200,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=2,
            layer_types=[C, A, C, C],
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            block_auto_adjust_ff_dim=True,
            block_ffn_dim_multiplier=1.3,
            block_multiple_of=32,
            tie_word_embeddings=True,
        ),
        rewrite=None,
        save_dtype=torch.bfloat16,
        bf16_run=True,
        expect=dict(layer_types=[C, A, C, C], ff=192, theta=1000000.0, tied=True, nkv=2, head_dim=8),
        prompt=[1, 90, 14, 201, 66, 133, 250, 8, 41, 177, 120, 19, 240, 55, 3, 88, 160, 71],
        notes="bf16 recordings are what transformers produces on CPU with eager attention in bf16.",
    ),
    dict(
        name="convbias_L4_sharded_f32",
        seed=4011,
        description=(
            "conv_bias true (in_proj, conv and out_proj all carry biases), conv_L_cache 4, attention FIRST and "
            "conv LAST (layer_types attn,conv,conv,attn,conv,conv), full multi-head attention (4 heads, 4 KV heads), "
            "block_auto_adjust_ff_dim false (intermediate_size 80 used as is), tied, f32, saved in several "
            "safetensors shards with model.safetensors.index.json."
        ),
        config_style="new",
        config=dict(
            vocab_size=256,
            hidden_size=32,
            intermediate_size=80,
            num_hidden_layers=6,
            num_attention_heads=4,
            num_key_value_heads=4,
            layer_types=[A, C, C, A, C, C],
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            conv_bias=True,
            conv_L_cache=4,
            block_auto_adjust_ff_dim=False,
            block_ffn_dim_multiplier=1.0,
            block_multiple_of=256,
            tie_word_embeddings=True,
        ),
        rewrite=None,
        save_dtype=torch.float32,
        max_shard_size="100KB",
        expect=dict(layer_types=[A, C, C, A, C, C], ff=80, theta=1000000.0, tied=True, nkv=4, head_dim=8),
        prompt=[1, 5, 250, 128, 64, 32, 16, 8, 4, 2, 200, 100],
        notes="Prefill of the first 1..3 tokens exercises the zero-padded conv window (L=4).",
    ),
    dict(
        name="all_attention_headdim_f32",
        seed=5007,
        description=(
            "Minimal config.json: no layer_types and no full_attn_idxs (transformers makes EVERY layer attention), "
            "no rope keys (rope_theta defaults to 1e6), no tie key (tied), no block_* keys, so the defaults "
            "block_auto_adjust_ff_dim=true, block_ffn_dim_multiplier=1.0, block_multiple_of=256 apply: "
            "64 -> int(2*64/3)=42 -> 42 -> rounded up to 256. Explicit head_dim 16 != hidden/heads (32/4=8): "
            "q_proj [64,32], k/v_proj [32,32], out_proj [32,64]. f32."
        ),
        config_style="new",
        config=dict(
            vocab_size=256,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            layer_types=[A, A, A],
            tie_word_embeddings=True,
        ),
        rewrite=rewrite_minimal,
        save_dtype=torch.float32,
        expect=dict(layer_types=[A, A, A], ff=256, theta=1000000.0, tied=True, nkv=2, head_dim=16),
        prompt=[1, 222, 37, 180, 4, 99, 143, 250, 61, 12, 208, 77, 190],
        notes="config_style 'new' here means no legacy keys; the file is deliberately sparse.",
    ),
]


# ---------------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def reinit_weights(
    model: Lfm2ForCausalLM,
    seed: int,
    emb_std: float = 1.0,
    out_gain: float = 3.0,
    qk_norm: tuple[float, float] = (1.5, 3.0),
) -> None:
    """Replace transformers' init (std 0.02, norms at 1) by one whose logits spread over the vocabulary.

    - embeddings (and an untied lm_head): N(0, emb_std^2), so tied logits have std about sqrt(hidden);
    - Linear weights: N(0, 1/fan_in), so each projection keeps unit scale; the block outputs (out_proj, w2)
      get an extra factor out_gain so the layers, not the current token's own embedding, decide the next
      token (with tied embeddings and gain 1 the greedy path mostly repeats its last token);
    - depthwise conv weights [H,1,L]: N(0, 1/L); biases (conv_bias=true only): N(0, 0.5^2);
    - RMSNorm weights: U(0.8, 1.2); q/k layernorm weights: U(qk_norm), above 1 so attention is sharp enough
      that the history, not just the current token, steers the greedy path. None of them is exactly 1.
    Parameters are visited in name order from a private generator, so the weights depend only on the seed.
    """
    g = torch.Generator().manual_seed(seed)

    def normal(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=g, dtype=torch.float32))

    tied = model.config.tie_word_embeddings
    for name, p in sorted(model.named_parameters(remove_duplicate=True), key=lambda kv: kv[0]):
        if name.endswith("embed_tokens.weight"):
            normal(p, emb_std)
        elif name == "lm_head.weight":
            assert not tied, "tied lm_head must not appear as a separate parameter"
            normal(p, 1.0)
        elif name.endswith(("q_layernorm.weight", "k_layernorm.weight")):
            uniform(p, *qk_norm)
        elif name.endswith("norm.weight"):
            uniform(p, 0.8, 1.2)
        elif name.endswith("conv.conv.weight"):
            normal(p, 1.0 / math.sqrt(p.shape[-1]))
        elif name.endswith(".bias"):
            normal(p, 0.5)
        elif p.dim() == 2:
            gain = out_gain if name.endswith(("out_proj.weight", "w2.weight")) else 1.0
            normal(p, gain / math.sqrt(p.shape[1]))
        else:
            raise AssertionError(f"unhandled parameter {name} {tuple(p.shape)}")


# ---------------------------------------------------------------------------------------------------------------
# Reference recording
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def record(model: Lfm2ForCausalLM, prompt: list[int]) -> dict[str, torch.Tensor]:
    """Prefill, token-by-token and greedy logits, all through transformers' own forward and cache."""
    model.eval()
    ids = torch.tensor([prompt], dtype=torch.long)
    T = ids.shape[1]

    prefill = model(input_ids=ids, use_cache=False).logits[0]  # [T, V], model dtype

    cache = DynamicCache(config=model.config)
    rows = []
    for t in range(T):
        out = model(input_ids=ids[:, t : t + 1], past_key_values=cache, use_cache=True)
        rows.append(out.logits[0, -1])
    incremental = torch.stack(rows)

    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    cached_prefill_last = out.logits[0, -1]
    assert torch.equal(cached_prefill_last, prefill[-1]) or torch.allclose(
        cached_prefill_last.float(), prefill[-1].float(), atol=1e-5
    ), "cached and uncached prefill disagree"
    logits = cached_prefill_last
    greedy_tokens, greedy_logits = [], []
    for _ in range(N_GREEDY):
        tok = int(torch.argmax(logits))
        greedy_tokens.append(tok)
        greedy_logits.append(logits)
        out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
        logits = out.logits[0, -1]

    # f64 runs keep f64 logits (they are the exact answer the f32 engine is measured against).
    out_dtype = torch.float64 if prefill.dtype == torch.float64 else torch.float32
    return {
        "prompt_tokens": ids[0].clone(),
        "prefill_logits": prefill.to(out_dtype).contiguous(),
        "incremental_logits": incremental.to(out_dtype).contiguous(),
        "greedy_tokens": torch.tensor(greedy_tokens, dtype=torch.long),
        "greedy_logits": torch.stack(greedy_logits).to(out_dtype).contiguous(),
    }


def stats(rec: dict[str, torch.Tensor]) -> dict:
    pre, inc, gl = rec["prefill_logits"], rec["incremental_logits"], rec["greedy_logits"]
    top2 = torch.topk(gl, 2, dim=-1).values
    return dict(
        max_abs=float(pre.abs().max()),
        std=float(pre.std(dim=-1).mean()),
        distinct=len(set(rec["greedy_tokens"].tolist())),
        inc_diff=float((inc - pre).abs().max()),
        min_margin=float((top2[:, 0] - top2[:, 1]).min()),
    )


# ---------------------------------------------------------------------------------------------------------------
# Case driver
# ---------------------------------------------------------------------------------------------------------------


def load(folder: Path, dtype: torch.dtype) -> Lfm2ForCausalLM:
    model = Lfm2ForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=ATTN_IMPL)
    model.eval()
    return model


def check_resolved(case: dict, model: Lfm2ForCausalLM, folder: Path) -> dict:
    cfg = model.config
    exp = case["expect"]
    ff = model.model.layers[0].feed_forward.w1.out_features
    first_attn = next((l for l in model.model.layers if l.is_attention_layer), None)
    head_dim = first_attn.self_attn.head_dim if first_attn is not None else None
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    resolved = {
        "layer_types": list(cfg.layer_types),
        "intermediate_size_effective": ff,
        "rope_theta": float(cfg.rope_parameters["rope_theta"]),
        "tied": tied,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": head_dim,
        "conv_L_cache": cfg.conv_L_cache,
        "conv_bias": cfg.conv_bias,
        "norm_eps": cfg.norm_eps,
        "num_attention_heads": cfg.num_attention_heads,
        "hidden_size": cfg.hidden_size,
        "vocab_size": cfg.vocab_size,
    }
    assert resolved["layer_types"] == exp["layer_types"], (resolved["layer_types"], exp["layer_types"])
    assert [l.is_attention_layer for l in model.model.layers] == [t == A for t in exp["layer_types"]]
    assert ff == exp["ff"], (ff, exp["ff"])
    assert resolved["rope_theta"] == exp["theta"], resolved["rope_theta"]
    assert tied == exp["tied"] == cfg.tie_word_embeddings, (tied, cfg.tie_word_embeddings)
    assert cfg.num_key_value_heads == exp["nkv"]
    assert head_dim == exp["head_dim"], (head_dim, exp["head_dim"])
    # The rotary table must use the same head_dim as the attention.
    assert model.model.rotary_emb.inv_freq.numel() * 2 == head_dim
    # lm_head.weight is on disk iff untied.
    names = set()
    for f in sorted(folder.glob("model*.safetensors")):
        with safetensors.safe_open(f, "pt") as sf:
            names |= set(sf.keys())
    assert ("lm_head.weight" in names) == (not tied), "lm_head.weight presence does not match tying"
    return resolved


def check_weights_roundtrip(saved: dict[str, torch.Tensor], model: Lfm2ForCausalLM) -> None:
    """The reloaded model must hold exactly the weights we wrote (no re-init of e.g. the padding row)."""
    live = dict(model.state_dict())
    for name, t in saved.items():
        assert name in live, f"{name} missing after reload"
        assert torch.equal(live[name].float(), t.float()), f"{name} changed on reload"


def build_case(case: dict, out_root: Path) -> dict:
    name = case["name"]
    folder = out_root / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    torch.manual_seed(case["seed"])
    config = Lfm2Config(**case["config"])
    model = Lfm2ForCausalLM(config)
    reinit_weights(model, case["seed"])
    model = model.to(case["save_dtype"])
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_kwargs = {}
    if "max_shard_size" in case:
        save_kwargs["max_shard_size"] = case["max_shard_size"]
    model.save_pretrained(folder, **save_kwargs)
    del model

    if case["rewrite"] is not None:
        cfg_path = folder / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg = case["rewrite"](cfg)
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    shards = sorted(p.name for p in folder.glob("model*.safetensors"))
    if "max_shard_size" in case:
        assert len(shards) >= 2 and (folder / "model.safetensors.index.json").exists(), shards
    else:
        assert shards == ["model.safetensors"], shards
    for s in shards:
        with safetensors.safe_open(folder / s, "pt") as sf:
            for k in sf.keys():
                assert sf.get_slice(k).get_dtype() == {torch.float32: "F32", torch.bfloat16: "BF16"}[
                    case["save_dtype"]
                ], (s, k, sf.get_slice(k).get_dtype())

    # Reference in f32 (for the bf16 case: bf16 weights upcast exactly to f32).
    model = load(folder, torch.float32)
    resolved = check_resolved(case, model, folder)
    check_weights_roundtrip(saved, model)
    prompt = case["prompt"]
    V = case["config"]["vocab_size"]
    assert prompt[0] == 1 and all(0 <= t < V for t in prompt) and 12 <= len(prompt) <= 20
    rec = record(model, prompt)
    st = {"f32": stats(rec)}
    del model

    tensors = dict(rec)
    json_extra = {}
    # The same checkpoint in float64: transformers' computation without f32 rounding noise. Both an f32
    # engine and transformers' own f32 run carry ~1e-4 of rounding error at |logit| ~ 30; against this
    # run an engine's error is its own alone.
    model = load(folder, torch.float64)
    rec64 = record(model, prompt)
    st["f64"] = stats(rec64)
    for k, v in rec64.items():
        if k != "prompt_tokens":
            tensors[f"{k}_f64"] = v
    json_extra["greedy_tokens_f64"] = rec64["greedy_tokens"].tolist()
    st["f32_vs_f64_prefill"] = float((rec["prefill_logits"].double() - rec64["prefill_logits"]).abs().max())
    del model
    if case.get("bf16_run"):
        model = load(folder, torch.bfloat16)
        assert model.model.embed_tokens.weight.dtype == torch.bfloat16
        check_weights_roundtrip(saved, model)
        rec16 = record(model, prompt)
        st["bf16"] = stats(rec16)
        for k, v in rec16.items():
            if k != "prompt_tokens":
                tensors[f"{k}_bf16"] = v
        json_extra["greedy_tokens_bf16"] = rec16["greedy_tokens"].tolist()
        st["bf16_vs_f32_prefill"] = float((rec16["prefill_logits"] - rec["prefill_logits"]).abs().max())
        del model

    for label, s in st.items():
        if isinstance(s, dict):
            assert s["distinct"] >= MIN_DISTINCT_GREEDY, f"{name}/{label}: only {s['distinct']} distinct greedy tokens"
    assert st["f32"]["inc_diff"] < 1e-3, f"{name}: incremental vs prefill diff {st['f32']['inc_diff']}"

    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in sorted(tensors.items())},
        folder / "reference.safetensors",
        # Single metadata key: safetensors writes a multi-key map in random order, which breaks byte-identical reruns.
        metadata={"format": "pt"},
    )
    meta = {
        "case": name,
        "description": case["description"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "attn_implementation": ATTN_IMPL,
        "dtype_on_disk": {torch.float32: "float32", torch.bfloat16: "bfloat16"}[case["save_dtype"]],
        "seed": case["seed"],
        "config_style": case["config_style"],
        "prompt_tokens": prompt,
        "greedy_tokens": rec["greedy_tokens"].tolist(),
        **json_extra,
        "shards": shards,
        "notes": case["notes"],
        "resolved": resolved,
        "stats": st,
        "tensors": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(tensors.items())},
    }
    (folder / "reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = sum(p.stat().st_size for p in folder.iterdir())
    return dict(name=name, stats=st, size=size, greedy=rec["greedy_tokens"].tolist())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", help="build only these case names")
    args = ap.parse_args()

    if transformers.__version__ != EXPECTED_TRANSFORMERS:
        print(
            f"warning: transformers {transformers.__version__}, fixtures were made with {EXPECTED_TRANSFORMERS}",
            file=sys.stderr,
        )
    torch.set_num_threads(1)  # bit-for-bit reproducible reductions on CPU
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    out_root = args.out.resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    results = []
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        print(f"== {case['name']}", flush=True)
        r = build_case(case, out_root)
        print(f"   greedy: {r['greedy']}")
        results.append(r)

    hdr = f"{'case':<28} {'run':<5} {'max|logit|':>10} {'std':>7} {'distinct':>8} {'inc-vs-pre':>11} {'min top1-top2':>13} {'KiB':>6}"
    print()
    print(hdr)
    print("-" * len(hdr))
    total = 0
    for r in results:
        total += r["size"]
        for label, s in r["stats"].items():
            if not isinstance(s, dict):
                continue
            print(
                f"{r['name']:<28} {label:<5} {s['max_abs']:>10.3f} {s['std']:>7.3f} {s['distinct']:>8d} "
                f"{s['inc_diff']:>11.2e} {s['min_margin']:>13.4f} {r['size'] / 1024:>6.0f}"
            )
        print(f"{'':<28} transformers f32 vs f64 prefill max |diff| = {r['stats']['f32_vs_f64_prefill']:.2e}")
        if "bf16_vs_f32_prefill" in r["stats"]:
            print(f"{'':<28} bf16 vs f32 prefill max |diff| = {r['stats']['bf16_vs_f32_prefill']:.4f}")
    print(f"total fixture size: {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
