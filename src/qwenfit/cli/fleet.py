"""`qwenfit fleet`: which node pool of a Kubernetes cluster runs which Qwen model, and the
manifests that run it there. One call to `qwenfit.fleet.fleet`; the output is a summary, the
manifests as YAML (`--output yaml`, for `kubectl apply -f -`) or the whole document as JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

import click

from qwenfit.cli.options import ContextType, ExitCode, emit
from qwenfit.units import MiB

if TYPE_CHECKING:
    from qwenfit.fleet import FleetResult

MAX_LIST_BYTES = 64 * MiB  # a 5,000-node list with full GFD label sets stays well below


def _read(path: str, what: str) -> Any:
    from qwenfit.errors import BadFileError
    from qwenfit.inputs import parse_json, read_json

    if path != "-":
        return read_json(path, what=what, max_bytes=MAX_LIST_BYTES)
    data = sys.stdin.buffer.read(MAX_LIST_BYTES + 1)
    if len(data) > MAX_LIST_BYTES:
        raise BadFileError(f"{what} on stdin: larger than {MAX_LIST_BYTES // MiB} MiB")
    return parse_json(data, what=what, origin="(stdin)")


def _summary(result: FleetResult) -> str:
    from qwenfit.units import format_bytes

    lines = []
    for answer in result.pools:
        pool, plan = answer.pool, answer.plan
        gpu = "CPU only"
        if pool.gpu is not None:
            gpu = f"{pool.gpus_per_node} x {pool.gpu.name} ({format_bytes(pool.gpu.memory_bytes)})"
        lines.append(f"pool {pool.name}: {len(pool.nodes)} node(s), {gpu}")
        if plan is not None and plan.fits:
            speed = f", ~{plan.tokens_per_second:g} tok/s" if plan.tokens_per_second else ""
            span = (
                f" on {plan.nodes} nodes (TP {plan.tensor_parallel} x PP {plan.pipeline_parallel})"
                if plan.nodes > 1
                else ""
            )
            what = f"{plan.model} {plan.quant} with {plan.runtime}, {plan.context} tokens"
            lines.append(f"  runs {what}{span}{speed}")
        else:
            lines.append(f"  cannot serve it: {answer.why_not}")
    if result.skipped_nodes:
        lines.append(f"skipped (not ready or cordoned): {', '.join(result.skipped_nodes)}")
    best = result.best
    if best is None:
        what = result.model or "any Qwen model"
        lines.append(f"no pool can serve {what}")
    else:
        lines.append(f"best: {best.model} {best.quant} on pool {best.pool}")
        lines.append("manifests: qwenfit fleet ... --output yaml | kubectl apply -f -")
    return "\n".join(lines)


@click.command()
@click.option(
    "--nodes", "nodes_file", metavar="FILE|-", help="JSON of 'kubectl get nodes -o json'."
)
@click.option("--pods", "pods_file", metavar="FILE", help="JSON of 'kubectl get pods -A -o json': "
              "their requests are taken off the nodes.")  # fmt: skip
@click.option(
    "--online", is_flag=True, help="Read nodes and pods from the API server (extra fleet)."
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="With --online; default: "
              "$KUBECONFIG or ~/.kube/config.")  # fmt: skip
@click.option("--kube-context", help="With --online: a context of the kubeconfig.")
@click.option("--model", help="Plan this model on every pool (default: the best each runs).")
@click.option(
    "--task",
    type=click.Choice(["chat", "agent", "code", "vision"]),
    default="chat",
    show_default=True,
    help="What the model is for: ranking, sampling preset and tool-call flags.",
)
@click.option("--runtime", help="vllm or llama.cpp (default: what suits each pool).")
@click.option("--context", type=ContextType(), help="Tokens per sequence: 32768, 32k, 256k.")
@click.option("--pool", help="Write the manifests for this pool (default: the best one).")
@click.option(
    "--output",
    type=click.Choice(["text", "yaml", "json"]),
    default="text",
    show_default=True,
    help="yaml: the manifests; json: the whole plan with the manifests.",
)
@click.option("--name", help="Name of the objects (default: the model's, e.g. qwen3-5-27b).")
@click.option("--namespace", default="default", show_default=True)
@click.option("--image-tag", help="vLLM image tag, or a llama.cpp build such as b7000.")
@click.option(
    "--cache-claim", help="PersistentVolumeClaim for the model cache (default: emptyDir)."
)
@click.pass_context
def fleet(
    ctx: click.Context,
    nodes_file: str | None,
    pods_file: str | None,
    online: bool,
    kubeconfig: str | None,
    kube_context: str | None,
    model: str | None,
    task: str,
    runtime: str | None,
    context: int | None,
    pool: str | None,
    output: str,
    name: str | None,
    namespace: str,
    image_tag: str | None,
    cache_claim: str | None,
) -> ExitCode:
    """Which node pool of a Kubernetes cluster runs which Qwen model, and the manifests.

    Exit 3 when no pool can serve the model (or any model).
    """
    from qwenfit.errors import UsageError
    from qwenfit.fleet import Settings, to_yaml
    from qwenfit.fleet import fleet as run_fleet
    from qwenfit.specs import load_specs

    if online == (nodes_file is not None):
        raise UsageError("give --nodes FILE (or - for stdin), or --online; not both")
    if online and pods_file:
        raise UsageError("--pods is read from the API server with --online; drop --pods")
    if not online and (kubeconfig or kube_context):
        raise UsageError("--kubeconfig and --kube-context apply to --online")
    settings = Settings(
        name=name, namespace=namespace, image_tag=image_tag, cache_claim=cache_claim
    )
    nodes: Any
    pods: Any
    if online:
        from qwenfit.fleet import read_cluster

        nodes, pods = read_cluster(kubeconfig, kube_context)
        origin, source = "API server", "api"
    else:
        assert nodes_file is not None
        nodes = _read(nodes_file, "--nodes file")
        pods = _read(pods_file, "--pods file") if pods_file else None
        origin, source = ("(stdin)" if nodes_file == "-" else nodes_file), "file"
    result = run_fleet(
        nodes,
        model,
        task=cast("Any", task),
        runtime=runtime,
        context=context,
        pods=pods,
        source=cast("Any", source),
        origin=origin,
        pool=pool,
        settings=settings,
        table=load_specs(ctx.find_root().params.get("specs")),
    )
    if output == "json":
        from qwenfit.fleet import FleetDocument

        emit(FleetDocument(fleet=result).model_dump(mode="json"))
    elif output == "yaml":
        if result.manifests:
            click.echo(to_yaml(result.manifests), nl=False)
    else:
        click.echo(_summary(result))
    return ExitCode.OK if result.best is not None else ExitCode.DOES_NOT_FIT
