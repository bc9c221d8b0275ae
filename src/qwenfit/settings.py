"""The one settings schema: every option of every command, declared once.

The CLI derives its click options from these declarations (`cli.options`), the REST API and the
MCP server their request models (`serve.service`), and the library's `Options` record its
bounds, so a name, a default, a bound or a help text cannot differ between faces. Each face
maps a declaration's `kind` to its own type (a click `ParamType`, a pydantic annotation); the
values are then parsed by the same `qwenfit.units` functions everywhere.

A few options belong to one face only, because they name something only that face has: the
CLI's output switches and local files (`FACE_ONLY`). Every other option of a command exists in
all three faces with the same name and meaning, and tests/test_contracts.py holds that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Bounds that keep every product and loop finite; far above any real configuration.
MAX_CONTEXT = 1 << 24  # tokens per sequence (the longest YaRN context is ~1M)
MAX_PARALLEL = 4096  # sequences at once
MAX_UBATCH = 65536  # llama.cpp micro-batch tokens
MAX_NODES = 1024
MAX_MARGIN = 1 << 50  # bytes (1 PiB)
MAX_SIZE = 1 << 60  # bytes in any size option
MAX_LIMIT = 1000  # picks one recommendation lists
MAX_MODELS = 16  # models a recommendation may be restricted to
MAX_LLAMACPP_BUILD = 1_000_000  # llama.cpp release numbers count commits (b11434: Oct 2026)
MAX_TEXT = 200  # characters in any text value: model references, GPU names, sizes

Kind = Literal[
    "text",  # free text (model reference, GPU name, runtime, precision)
    "choice",  # one of `choices`
    "int",  # a whole number in [minimum, maximum]
    "flag",  # on / off
    "size",  # bytes: 24GB, 24GiB or an integer
    "bandwidth",  # bytes/s: 80GB/s or an integer
    "context",  # tokens: 32768, 32k
    "margin",  # bytes or a share of each pool: 1GiB, 10%
    "speed",  # tokens/s, a finite number >= 0
    "texts",  # a list of text values (at most MAX_MODELS)
    "machine",  # a machine record (CLI: a file saved with `qwenfit probe --json`)
    "document",  # a JSON document (CLI: a file, or - for standard input)
    "reserve",  # SIZE or SIZE@GPU[,SIZE@GPU...]
]


@dataclass(frozen=True)
class Setting:
    """One option: its name (JSON and Python; `--kebab-case` on the command line), its kind,
    default, bounds, help, and the environment variable the CLI reads it from."""

    name: str
    kind: Kind
    help: str
    default: object = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    envvar: str | None = None
    flag: str | None = None  # the CLI spelling when it is not --kebab-case of the name
    # The JSON name when two options of different commands share one (fleet's --nodes is a
    # node list where estimate's is a count): `name` stays unique as the registry's key.
    json_name: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def field(self) -> str:
        """The name in REST bodies, MCP arguments and the CLI's request."""
        return self.json_name or self.name


TASKS = ("chat", "agent", "code", "vision")
FAMILIES = ("qwen3.5", "qwen3.6", "qwen3.8", "all")
FLASH_ATTN = ("auto", "on", "off")

_ALL = (
    Setting(
        "model",
        "text",
        "A spec-table name or alias (9b, 35b-a3b, Qwen/Qwen3.5-27B), a "
        "local checkpoint folder or GGUF, or a Hub repo id.",
    ),
    Setting(
        "runtime",
        "text",
        "llama.cpp, ollama, vllm, transformers or mlx (default: what suits the machine).",
        envvar="QWENFIT_RUNTIME",
    ),
    Setting("quant", "text", "Precision, e.g. q4_k_m, q8_0, bf16, fp8, gptq-int4."),
    Setting(
        "context",
        "context",
        "Tokens per sequence: 32768, 32k, 256k.",
        minimum=1,
        maximum=MAX_CONTEXT,
    ),
    Setting("kv_cache", "text", "KV cache type: f16, bf16, q8_0, q4_0, fp8, mlx-q8, mlx-q4."),
    Setting(
        "parallel",
        "int",
        "Sequences served at once (slots / max-num-seqs).",
        default=1,
        minimum=1,
        maximum=MAX_PARALLEL,
    ),
    Setting("ubatch", "int", "llama.cpp micro-batch.", minimum=1, maximum=MAX_UBATCH),
    Setting(
        "flash_attn", "choice", "llama.cpp flash attention.", default="auto", choices=FLASH_ATTN
    ),
    Setting("text_only", "flag", "Leave the vision tower out.", default=False),
    Setting(
        "mtp",
        "flag",
        "MTP speculative decoding (llama.cpp --spec-type draft-mtp, vLLM "
        "method mtp): charges its memory and its published speed gain.",
        default=False,
    ),
    Setting(
        "task",
        "choice",
        "chat, agent (tool calling), code or vision: which benchmarks "
        "rank the models, and the launch flags and sampling.",
        default="chat",
        choices=TASKS,
    ),
    Setting(
        "family",
        "choice",
        "Release line on the Qwen3.5 architecture to consider.",
        default="qwen3.5",
        choices=FAMILIES,
    ),
    Setting(
        "min_speed",
        "speed",
        "Usable-speed floor, decode tokens/s (default 10 for every "
        "task: twice reading speed, since a thinking model writes its reasoning first). "
        "Slower picks are shown only when nothing faster fits.",
    ),
    Setting(
        "prefer",
        "choice",
        "quality: a larger model wins whenever its card score is higher (the tier rule); "
        "speed: near-ties across sizes go to the faster pick.",
        default="quality",
        choices=("quality", "speed"),
    ),
    Setting(
        "limit",
        "int",
        "How many picks to show (the best and its alternatives).",
        default=5,
        minimum=1,
        maximum=MAX_LIMIT,
        flag="-n",
    ),
    Setting(
        "models",
        "texts",
        "Only consider these models: names, local checkpoints or Hub ids (repeatable).",
        flag="--model",
    ),
    Setting(
        "allow_offload",
        "flag",
        "Accept experts or layers in RAM (llama.cpp, Ollama): slower.",
        default=False,
    ),
    Setting(
        "nodes",
        "int",
        "Machines like this one, for vLLM across nodes (Ray).",
        default=1,
        minimum=1,
        maximum=MAX_NODES,
    ),
    Setting(
        "margin",
        "margin",
        "Memory to keep free per pool: a size (1GiB) or a percentage (10%).",
        default="1GiB",
    ),
    Setting(
        "gpu",
        "text",
        'Plan for a GPU from the catalog, e.g. "RTX 4090" or "2x H100".',
        envvar="QWENFIT_GPU",
    ),
    Setting(
        "vram",
        "size",
        "Plan for a GPU with this much free memory, e.g. 24GB or 24GiB (0: no GPU).",
        minimum=0,
        maximum=MAX_SIZE,
        envvar="QWENFIT_VRAM",
    ),
    Setting(
        "ram",
        "size",
        "Plan for this much usable RAM, e.g. 64GB.",
        minimum=1,
        maximum=MAX_SIZE,
        envvar="QWENFIT_RAM",
    ),
    Setting(
        "ram_bandwidth",
        "bandwidth",
        "RAM bandwidth for CPU / offload speed, e.g. 80GB/s (probed if unset).",
        minimum=1,
        maximum=MAX_SIZE,
        envvar="QWENFIT_RAM_BANDWIDTH",
    ),
    Setting(
        "gpu_bandwidth",
        "bandwidth",
        "Memory bandwidth of each GPU, e.g. 936GB/s (for a GPU the catalog does not know).",
        minimum=1,
        maximum=MAX_SIZE,
        envvar="QWENFIT_GPU_BANDWIDTH",
    ),
    Setting(
        "machine",
        "machine",
        "A machine saved with 'qwenfit probe --json' (REST and MCP: the `machine` object itself).",
    ),
    Setting(
        "reserve",
        "reserve",
        "Memory to keep free for the desktop and other programs, per "
        "GPU (1.5GB) or for one GPU (1.5GB@0; comma-separated for several); probed and "
        "planned machines alike.",
        envvar="QWENFIT_RESERVE",
    ),
    Setting("mmproj", "text", "The vision projector GGUF that goes with a local GGUF file."),
    Setting(
        "disk",
        "text",
        "Check the download against this folder's free space, or a free "
        "size (200GB); default: the runtime's model folder (Hugging Face cache, Ollama's).",
    ),
    Setting(
        "download_speed",
        "bandwidth",
        "Download speed, e.g. 50MB/s: shows how long the download takes.",
        minimum=1,
        maximum=MAX_SIZE,
    ),
    Setting("yarn", "flag", "With a sweep: go on to the YaRN-extended context.", default=False),
    Setting(
        "nodes_list",
        "document",
        "The cluster's nodes: 'kubectl get nodes -o json' (CLI: FILE, or - for standard input).",
        flag="--nodes",
        json_name="nodes",
    ),
    Setting(
        "pods",
        "document",
        "Its pods ('kubectl get pods -A -o json'): their requests are taken off the nodes.",
    ),
    Setting("pool", "text", "Write the manifests for this pool (default: the best one)."),
    Setting("name", "text", "Name of the objects (default: the model's, e.g. qwen3-5-27b)."),
    Setting("namespace", "text", "Namespace of the objects.", default="default"),
    Setting("image_tag", "text", "vLLM image tag, or a llama.cpp build such as b7000."),
    Setting(
        "cache_claim", "text", "PersistentVolumeClaim for the model cache (default: emptyDir)."
    ),
    Setting(
        "llama_cpp_build",
        "int",
        "llama.cpp build number (llama-server --version) whose compute buffer to size "
        "(default: the probed llama-server's, else the newest measured).",
        minimum=1,
        maximum=MAX_LLAMACPP_BUILD,
    ),
)
SETTINGS: dict[str, Setting] = {s.name: s for s in _ALL}

_HARDWARE = ("gpu", "vram", "ram", "ram_bandwidth", "gpu_bandwidth", "machine", "reserve")
# The configuration settings every sizing command takes (and the library's keywords for them).
CONFIG = (
    "runtime",
    "quant",
    "context",
    "kv_cache",
    "parallel",
    "ubatch",
    "flash_attn",
    "text_only",
    "mtp",
    "llama_cpp_build",
)

# Which options each question takes, on every face.
COMMANDS: dict[str, tuple[str, ...]] = {
    "probe": _HARDWARE,
    "models": ("family",),
    "estimate": ("model", "mmproj", *CONFIG, "nodes", "margin", *_HARDWARE),
    "sweep": (
        "model",
        "mmproj",
        "runtime",
        "quant",
        "kv_cache",
        "parallel",
        "text_only",
        "yarn",
        "allow_offload",
        "margin",
        *_HARDWARE,
    ),
    "check": (
        "model",
        "mmproj",
        *CONFIG,
        "allow_offload",
        "nodes",
        "margin",
        "disk",
        "download_speed",
        *_HARDWARE,
    ),
    "recommend": (
        *CONFIG,
        "task",
        "family",
        "min_speed",
        "prefer",
        "limit",
        "models",
        "allow_offload",
        "nodes",
        "margin",
        *_HARDWARE,
    ),
    "launch": (
        "model",
        "mmproj",
        *CONFIG,
        "task",
        "family",
        "min_speed",
        "prefer",
        "allow_offload",
        "nodes",
        "margin",
        *_HARDWARE,
    ),
    "fleet": (
        "nodes_list",
        "pods",
        "model",
        "task",
        "runtime",
        "context",
        "pool",
        "name",
        "namespace",
        "image_tag",
        "cache_claim",
    ),
}

# Options of one face only, and why the others have no such thing.
FACE_ONLY: dict[str, str] = {
    "json": "CLI: the service always answers JSON",
    "online": "CLI: the service never reaches the network for a client",
    "specs": "CLI: the service answers from the table it was started with",
    "sweep": "CLI: estimate --sweep is the service's /v1/sweep",
    "plot": "CLI: writes a local file",
    "measure": "CLI: measures this machine's RAM bandwidth now; the service keeps its own probe",
    "output": "CLI: fleet prints a summary, the manifests as YAML, or the JSON document",
    "kubeconfig": "CLI: fleet --online reads the user's own cluster credentials",
    "kube_context": "CLI: fleet --online reads the user's own cluster credentials",
}


def settings_of(command: str) -> list[Setting]:
    """The declarations of `command`'s options, in the order the command lists them."""
    return [SETTINGS[name] for name in COMMANDS[command]]
