"""Write sparse zero-weight GGUFs with the exact Qwen3.5 tensor layout of llama.cpp's converter.

Why: llama.cpp's own allocations (weights, KV, recurrent state, compute) must be measured
without downloading ~1 TB of real weights. Only the tensor names, shapes and dtypes matter
for memory, so we reproduce what ``convert_hf_to_gguf.py`` (conversion/qwen.py
``Qwen3_5TextModel`` / ``Qwen3_5MoeTextModel``, conversion/qwen3vl.py ``Qwen3VLVisionModel``)
writes and leave the data section as a file hole (zeros, no disk blocks).

The architecture is read from ``data/model_specs.json`` so any error in that table shows up
as a mismatch against llama.cpp (the loader checks every shape) and in the parameter-count
check printed here.

Usage::

    python make_gguf.py qwen3.5-9b --out-dir /work/rigs/llamacpp/gguf          # text BF16, no MTP
    python make_gguf.py qwen3.5-9b --mtp --out-dir ...                          # with MTP layer
    python make_gguf.py qwen3.5-9b --mmproj --out-dir ...                       # vision mmproj F16
    python make_gguf.py all --mmproj --out-dir ...
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "data" / "model_specs.json"

# Constants the converter takes from config.json fields that are not in model_specs.json.
# They do not change any tensor shape or buffer size.
ROPE_THETA = 10_000_000.0
RMS_EPS = 1e-6
PARTIAL_ROTARY_FACTOR = 0.25
MROPE_SECTIONS = [11, 11, 10, 0]
IMAGE_MEAN = [0.5, 0.5, 0.5]
IMAGE_STD = [0.5, 0.5, 0.5]


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as the converter writes it (shape in numpy/PyTorch order, ggml type)."""

    name: str
    shape: tuple[int, ...]
    qtype: QT

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        block, size = gguf.GGML_QUANT_SIZES[self.qtype]
        return self.numel // block * size


def load_models(path: Path = SPECS) -> dict[str, dict]:
    """Return {name: model entry} from the shared spec table."""
    data = json.loads(path.read_text())
    return {m["name"]: m for m in data["models"]}


def is_moe(model: dict) -> bool:
    return model["model_type"] == "qwen3_5_moe" or bool(model["architecture"].get("moe"))


def is_full_attention(arch: dict, il: int) -> bool:
    """Layer il is full attention iff (il+1) % full_attention_interval == 0 (HF layer_types)."""
    return (il + 1) % arch["full_attention_interval"] == 0


def _w(name: str, *shape: int, qtype: QT = QT.BF16) -> TensorSpec:
    """A weight: 1-D tensors and *_norm.weight are F32 in the converter, the rest use ftype."""
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        qtype = QT.F32
    return TensorSpec(name, tuple(shape), qtype)


def _f32(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), QT.F32)


def _attention_block(arch: dict, il: int, wt: QT) -> list[TensorSpec]:
    """Gated full attention (q_proj is 2x wide: query + output gate)."""
    e, hd = arch["hidden_size"], arch["head_dim"]
    nh, nkv = arch["num_attention_heads"], arch["num_key_value_heads"]
    p = f"blk.{il}."
    return [
        _w(p + "attn_q.weight", nh * hd * 2, e, qtype=wt),
        _w(p + "attn_k.weight", nkv * hd, e, qtype=wt),
        _w(p + "attn_v.weight", nkv * hd, e, qtype=wt),
        _w(p + "attn_output.weight", e, nh * hd, qtype=wt),
        _w(p + "attn_q_norm.weight", hd),
        _w(p + "attn_k_norm.weight", hd),
    ]


def _linear_attention_block(arch: dict, il: int, wt: QT) -> list[TensorSpec]:
    """Gated DeltaNet layer as Qwen3NextModel.modify_tensors maps it."""
    e = arch["hidden_size"]
    nk, nv = arch["linear_num_key_heads"], arch["linear_num_value_heads"]
    dk, dv = arch["linear_key_head_dim"], arch["linear_value_head_dim"]
    key_dim, value_dim = nk * dk, nv * dv
    conv_dim = 2 * key_dim + value_dim
    p = f"blk.{il}."
    return [
        _w(p + "attn_qkv.weight", conv_dim, e, qtype=wt),
        _w(p + "attn_gate.weight", value_dim, e, qtype=wt),
        _w(p + "ssm_beta.weight", nv, e, qtype=wt),
        _w(p + "ssm_alpha.weight", nv, e, qtype=wt),
        # conv1d (conv_dim, 1, K) is squeezed -> 2-D but forced F32 (SSM_CONV1D)
        _f32(p + "ssm_conv1d.weight", conv_dim, arch["linear_conv_kernel_dim"]),
        _f32(p + "ssm_dt.bias", nv),
        _f32(p + "ssm_a", nv),  # no ".weight" suffix -> F32
        _f32(p + "ssm_norm.weight", dv),
        _w(p + "ssm_out.weight", e, value_dim, qtype=wt),
    ]


def _ffn_block(model: dict, il: int, wt: QT) -> list[TensorSpec]:
    arch = model["architecture"]
    e = arch["hidden_size"]
    p = f"blk.{il}."
    if not is_moe(model):
        ff = arch["intermediate_size"]
        return [
            _w(p + "ffn_gate.weight", ff, e, qtype=wt),
            _w(p + "ffn_up.weight", ff, e, qtype=wt),
            _w(p + "ffn_down.weight", e, ff, qtype=wt),
        ]
    moe = arch["moe"]
    n_exp, ff_exp, ff_sh = (
        moe["num_experts"],
        moe["moe_intermediate_size"],
        moe["shared_expert_intermediate_size"],
    )
    return [
        _f32(p + "ffn_gate_inp.weight", n_exp, e),  # router forced F32
        _w(p + "ffn_gate_exps.weight", n_exp, ff_exp, e, qtype=wt),
        _w(p + "ffn_up_exps.weight", n_exp, ff_exp, e, qtype=wt),
        _w(p + "ffn_down_exps.weight", n_exp, e, ff_exp, qtype=wt),
        _f32(p + "ffn_gate_inp_shexp.weight", 1, e),  # shared_expert_gate (1, n_embd), forced F32
        _w(p + "ffn_gate_shexp.weight", ff_sh, e, qtype=wt),
        _w(p + "ffn_up_shexp.weight", ff_sh, e, qtype=wt),
        _w(p + "ffn_down_shexp.weight", e, ff_sh, qtype=wt),
    ]


def text_tensors(model: dict, mtp: bool = False, wt: QT = QT.BF16) -> list[TensorSpec]:
    """All text-model tensors in converter naming; MTP block appended as blk.{n_layer}."""
    arch = model["architecture"]
    e, vocab, n_layer = arch["hidden_size"], arch["vocab_size"], arch["num_hidden_layers"]
    out = [_w("token_embd.weight", vocab, e, qtype=wt)]
    for il in range(n_layer):
        out.append(_w(f"blk.{il}.attn_norm.weight", e))
        out.append(_w(f"blk.{il}.post_attention_norm.weight", e))
        if is_full_attention(arch, il):
            out += _attention_block(arch, il, wt)
        else:
            out += _linear_attention_block(arch, il, wt)
        out += _ffn_block(model, il, wt)
    if mtp:
        for k in range(arch.get("mtp_num_hidden_layers") or 0):
            il = n_layer + k
            out.append(_w(f"blk.{il}.attn_norm.weight", e))
            out.append(_w(f"blk.{il}.post_attention_norm.weight", e))
            out += _attention_block(arch, il, wt)
            out += _ffn_block(model, il, wt)
            if k == 0:  # mtp.fc / pre_fc_norm_* / mtp.norm map onto the first MTP block
                out.append(_w(f"blk.{il}.nextn.eh_proj.weight", e, 2 * e, qtype=wt))
                out.append(_w(f"blk.{il}.nextn.enorm.weight", e))
                out.append(_w(f"blk.{il}.nextn.hnorm.weight", e))
                out.append(_w(f"blk.{il}.nextn.shared_head_norm.weight", e))
    out.append(_w("output_norm.weight", e))
    if not arch["tie_word_embeddings"]:
        out.append(_w("output.weight", vocab, e, qtype=wt))
    return out


def vision_tensors(model: dict) -> list[TensorSpec]:
    """mmproj tensors as Qwen3VLVisionModel writes them with --outtype f16."""
    v = model["architecture"]["vision"]
    h, inter, out_h = v["hidden_size"], v["intermediate_size"], v["out_hidden_size"]
    merged = h * v["spatial_merge_size"] ** 2
    p, c = v["patch_size"], v["in_channels"]
    f16 = QT.F16
    if v["temporal_patch_size"] != 2:
        raise ValueError("converter only supports temporal_patch_size == 2")
    out = [
        # Conv3D split into two Conv2D kernels along time; forced F16
        TensorSpec("v.patch_embd.weight", (h, c, p, p), f16),
        TensorSpec("v.patch_embd.weight.1", (h, c, p, p), f16),
        _f32("v.patch_embd.bias", h),
        _f32(
            "v.position_embd.weight", v["num_position_embeddings"], h
        ),  # V_ENC_EMBD_POS forced F32
    ]
    for il in range(v["depth"]):
        b = f"v.blk.{il}."
        out += [
            _f32(b + "ln1.weight", h),
            _f32(b + "ln1.bias", h),
            TensorSpec(b + "attn_qkv.weight", (3 * h, h), f16),
            _f32(b + "attn_qkv.bias", 3 * h),
            TensorSpec(b + "attn_out.weight", (h, h), f16),
            _f32(b + "attn_out.bias", h),
            _f32(b + "ln2.weight", h),
            _f32(b + "ln2.bias", h),
            TensorSpec(b + "ffn_up.weight", (inter, h), f16),
            _f32(b + "ffn_up.bias", inter),
            TensorSpec(b + "ffn_down.weight", (h, inter), f16),
            _f32(b + "ffn_down.bias", h),
        ]
    out += [
        _f32("v.post_ln.weight", h),
        _f32("v.post_ln.bias", h),
        TensorSpec("mm.0.weight", (merged, merged), f16),
        _f32("mm.0.bias", merged),
        TensorSpec("mm.2.weight", (out_h, merged), f16),
        _f32("mm.2.bias", out_h),
    ]
    return out


def _add_text_kv(
    w: gguf.GGUFWriter, model: dict, mtp: bool, ftype: int, vocab: bool = False
) -> None:
    """Metadata as TextModel/Qwen2MoeModel/Qwen3NextModel/_Qwen35MRopeMixin.set_gguf_parameters."""
    arch = model["architecture"]
    n_mtp = (arch.get("mtp_num_hidden_layers") or 0) if mtp else 0
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(model.get("display_name", model["name"]) + " (zero weights)")
    w.add_block_count(arch["num_hidden_layers"] + n_mtp)
    w.add_context_length(arch["max_position_embeddings"])
    w.add_embedding_length(arch["hidden_size"])
    if not is_moe(model):
        w.add_feed_forward_length(arch["intermediate_size"])
    w.add_head_count(arch["num_attention_heads"])
    w.add_head_count_kv(arch["num_key_value_heads"])
    w.add_rope_dimension_sections(MROPE_SECTIONS)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    if is_moe(model):
        moe = arch["moe"]
        w.add_expert_count(moe["num_experts"])
        w.add_expert_used_count(moe["num_experts_per_tok"])
        w.add_expert_feed_forward_length(moe["moe_intermediate_size"])
        w.add_expert_shared_feed_forward_length(moe["shared_expert_intermediate_size"])
    w.add_key_length(arch["head_dim"])
    w.add_value_length(arch["head_dim"])
    w.add_file_type(ftype)
    if n_mtp:
        w.add_nextn_predict_layers(n_mtp)
    w.add_ssm_conv_kernel(arch["linear_conv_kernel_dim"])
    w.add_ssm_state_size(arch["linear_key_head_dim"])
    w.add_ssm_group_count(arch["linear_num_key_heads"])
    w.add_ssm_time_step_rank(arch["linear_num_value_heads"])
    w.add_ssm_inner_size(arch["linear_value_head_dim"] * arch["linear_num_value_heads"])
    w.add_full_attention_interval(arch["full_attention_interval"])
    w.add_rope_dimension_count(int(arch["head_dim"] * PARTIAL_ROTARY_FACTOR))
    # Dummy tokenizer: llama.cpp's "no_vocab" path creates vocab_size empty tokens, so n_vocab
    # (output buffer, logits) is exact while the ~11 MB real BPE tables are not written.
    if vocab:
        _add_placeholder_vocab(w, arch["vocab_size"])
    else:
        w.add_tokenizer_model("none")
    w.add_uint32(gguf.Keys.LLM.VOCAB_SIZE.format(arch=w.arch), arch["vocab_size"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_placeholder_vocab(w: gguf.GGUFWriter, n_vocab: int) -> None:
    """A SentencePiece-style vocabulary of n_vocab made-up tokens (256 byte tokens, then "t<i>"),
    so llama-server can tokenize and answer requests; memory is the same as without it."""
    w.add_tokenizer_model("llama")
    w.add_token_list(
        [f"<0x{i:02X}>" for i in range(256)] + [f"\u2581t{i}" for i in range(256, n_vocab)]
    )
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([6] * 256 + [1] * (n_vocab - 256))  # BYTE, then NORMAL
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    w.add_add_bos_token(False)


def _add_mmproj_kv(w: gguf.GGUFWriter, model: dict) -> None:
    """Metadata as MmprojModel/Qwen3VLVisionModel.set_gguf_parameters (F16)."""
    arch, v = model["architecture"], model["architecture"]["vision"]
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_name(model.get("display_name", model["name"]) + " mmproj (zero weights)")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_clip_has_vision_encoder(True)
    w.add_vision_projection_dim(arch["hidden_size"])
    w.add_vision_image_size(int(v["num_position_embeddings"] ** 0.5 * v["patch_size"]))
    w.add_vision_patch_size(v["patch_size"])
    w.add_vision_embedding_length(v["hidden_size"])
    w.add_vision_feed_forward_length(v["intermediate_size"])
    w.add_vision_block_count(v["depth"])
    w.add_vision_head_count(v["num_heads"])
    w.add_vision_image_mean(IMAGE_MEAN)
    w.add_vision_image_std(IMAGE_STD)
    w.add_clip_projector_type(gguf.VisionProjectorType.QWEN3VL)
    w.add_vision_use_gelu(True)
    w.add_vision_spatial_merge_size(v["spatial_merge_size"])
    w.add_vision_attention_layernorm_eps(RMS_EPS)
    w.add_vision_is_deepstack_layers([False] * v["depth"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def write_sparse(w: gguf.GGUFWriter, path: Path, tensors: list[TensorSpec]) -> int:
    """Write header + KV + tensor infos, then extend the file to its final size as a hole."""
    for t in tensors:
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())
    data_start = fout.tell()
    data_size = sum(gguf.GGUFWriter.ggml_pad(t.nbytes, w.data_alignment) for t in tensors)
    fout.truncate(data_start + data_size)
    w.close()
    return data_start + data_size


def write_text_gguf(model: dict, path: Path, mtp: bool = False, vocab: bool = False) -> dict:
    """`vocab`: a placeholder vocabulary, so the file can also answer requests."""
    arch_name = "qwen35moe" if is_moe(model) else "qwen35"
    tensors = text_tensors(model, mtp=mtp)
    w = gguf.GGUFWriter(path, arch_name)
    _add_text_kv(w, model, mtp, gguf.LlamaFileType.MOSTLY_BF16, vocab)
    size = write_sparse(w, path, tensors)
    return {
        "path": str(path),
        "file_bytes": size,
        "tensor_bytes": sum(t.nbytes for t in tensors),
        "n_tensors": len(tensors),
        "params": sum(t.numel for t in tensors),
    }


def write_mmproj_gguf(model: dict, path: Path) -> dict:
    tensors = vision_tensors(model)
    w = gguf.GGUFWriter(path, "clip")
    _add_mmproj_kv(w, model)
    size = write_sparse(w, path, tensors)
    return {
        "path": str(path),
        "file_bytes": size,
        "tensor_bytes": sum(t.nbytes for t in tensors),
        "n_tensors": len(tensors),
        "params": sum(t.numel for t in tensors),
    }


def check_params(model: dict) -> list[str]:
    """Compare our tensor-list parameter counts with the table's params block (if present)."""
    params = model.get("params") or {}
    msgs = []
    text = sum(t.numel for t in text_tensors(model))
    with_mtp = sum(t.numel for t in text_tensors(model, mtp=True))
    vis = sum(t.numel for t in vision_tensors(model))
    for key, ours in (("text", text), ("mtp", with_mtp - text), ("vision", vis)):
        ref = params.get(key)
        if ref is not None and ref != ours:
            msgs.append(
                f"{model['name']}: params.{key} table={ref} gguf-layout={ours} (diff {ours - ref})"
            )
    return msgs


def gguf_paths(out_dir: Path, name: str, mtp: bool = False) -> tuple[Path, Path]:
    suffix = "-mtp" if mtp else ""
    return out_dir / f"{name}-BF16{suffix}.gguf", out_dir / f"mmproj-{name}-F16.gguf"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="model name from data/model_specs.json, or 'all'")
    ap.add_argument("--out-dir", type=Path, default=Path("/work/rigs/llamacpp/gguf"))
    ap.add_argument(
        "--mtp", action="store_true", help="include MTP layers (published GGUFs drop them)"
    )
    ap.add_argument("--no-mtp", dest="mtp", action="store_false", help="default")
    ap.add_argument("--mmproj", action="store_true", help="also write the F16 vision mmproj")
    ap.add_argument("--specs", type=Path, default=SPECS)
    args = ap.parse_args(argv)

    models = load_models(args.specs)
    names = list(models) if args.model == "all" else [args.model]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        model = models[name]
        for msg in check_params(model):
            print("WARNING", msg, file=sys.stderr)
        text_path, mmproj_path = gguf_paths(args.out_dir, name, args.mtp)
        info = write_text_gguf(model, text_path, mtp=args.mtp)
        print(json.dumps({"model": name, "kind": "text", **info}))
        if args.mmproj:
            info = write_mmproj_gguf(model, mmproj_path)
            print(json.dumps({"model": name, "kind": "mmproj", **info}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
