"""`qwenfit fleet --online`: the node and pod lists from the API server, through the user's
kubeconfig (or the pod's service account), with lightkube (https://lightkube.readthedocs.io/),
imported here only (extra `fleet`). Read-only: two LIST calls, chunked."""

from __future__ import annotations

from typing import Any

from qwenfit.errors import QwenfitError, UsageError

FLEET_EXTRA = "--online needs the fleet extra: pip install 'qwenfit[fleet]'"
CHUNK = 500  # objects per page of a LIST (the API server's continue tokens do the rest)


def read_cluster(
    kubeconfig: str | None = None, context: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(node list, pod list) as `kubectl get nodes,pods -A -o json` would print them.

    Raises:
        UsageError: lightkube is not installed, or the kubeconfig or context is unusable.
        QwenfitError: the API server cannot be reached or refuses the request.
    """
    try:
        import httpx2
        import msgspec
        from lightkube import ApiError, Client, ConfigError, KubeConfig
        from lightkube.resources.core_v1 import Node, Pod
    except ImportError:
        raise UsageError(FLEET_EXTRA) from None
    try:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single = config.get(context_name=context)
        if single is None:
            raise ConfigError("no context to use")
        client = Client(config=single)
    except (ConfigError, OSError, ValueError, KeyError) as e:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the kubeconfig"
        raise UsageError(f"{where}: {' '.join(str(e).split()) or type(e).__name__}") from None
    try:
        nodes = [n.to_dict() for n in client.list(Node, chunk_size=CHUNK)]
        pods = [p.to_dict() for p in client.list(Pod, namespace="*", chunk_size=CHUNK)]
    except ApiError as e:
        raise QwenfitError(f"the API server refused the request: {e.status.message}") from None
    except msgspec.MsgspecError as e:  # lightkube decodes with msgspec against the API schema
        raise QwenfitError(f"the API server's answer is not a valid list: {e}") from None
    except httpx2.HTTPError as e:
        raise QwenfitError(f"cannot reach the API server at {single.cluster.server}: {e}") from None
    return {"kind": "List", "items": nodes}, {"kind": "List", "items": pods}
