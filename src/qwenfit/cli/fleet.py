"""`qwenfit fleet`: which node pool of a Kubernetes cluster runs which Qwen model, and the
manifests that run it there. One call to `qwenfit.fleet.fleet`; the output is a summary, the
manifests as YAML (`--output yaml`, for `kubectl apply -f -`) or the whole document as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from qwenfit.cli.options import ExitCode, emit, request_values, settings_options

if TYPE_CHECKING:
    from qwenfit.fleet import FleetResult


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
@settings_options("fleet", model_option=True)
@click.option(
    "--online", is_flag=True, help="Read nodes and pods from the API server (extra fleet)."
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="With --online; default: "
              "$KUBECONFIG or ~/.kube/config.")  # fmt: skip
@click.option("--kube-context", help="With --online: a context of the kubeconfig.")
@click.option(
    "--output",
    type=click.Choice(["text", "yaml", "json"]),
    default="text",
    show_default=True,
    help="yaml: the manifests; json: the whole plan with the manifests.",
)
@click.pass_context
def fleet(
    ctx: click.Context,
    values: dict[str, Any],
    online: bool,
    kubeconfig: str | None,
    kube_context: str | None,
    output: str,
) -> ExitCode:
    """Which node pool of a Kubernetes cluster runs which Qwen model, and the manifests.

    Exit 3 when no pool can serve the model (or any model).
    """
    from qwenfit.errors import UsageError
    from qwenfit.fleet import to_yaml
    from qwenfit.serve.service import Service, document
    from qwenfit.specs import load_specs

    if online == (values.get("nodes_list") is not None):
        raise UsageError("give --nodes FILE (or - for stdin), or --online; not both")
    if online and values.get("pods"):
        raise UsageError("--pods is read from the API server with --online; drop --pods")
    if not online and (kubeconfig or kube_context):
        raise UsageError("--kubeconfig and --kube-context apply to --online")
    request = request_values("fleet", values)
    if online:
        from qwenfit.fleet import read_cluster

        request["nodes"], request["pods"] = read_cluster(kubeconfig, kube_context)
    service = Service(table=load_specs(ctx.find_root().params.get("specs")), local_files=True)
    result = service.record("fleet", request)
    if online:
        result = result.model_copy(update={"source": "api"})
    if output == "json":
        emit(document("fleet", result))
    elif output == "yaml":
        if result.manifests:
            click.echo(to_yaml(result.manifests), nl=False)
    else:
        click.echo(_summary(result))
    return ExitCode.OK if result.best is not None else ExitCode.DOES_NOT_FIT
