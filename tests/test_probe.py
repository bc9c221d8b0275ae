"""The probe on machines we do not have: fake NVML modules and temporary sysfs / cgroup trees."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qwenfit.errors import ProbeError
from qwenfit.hardware import nvml
from qwenfit.hardware.catalog import with_overrides
from qwenfit.hardware.probing import (
    amd_gpus,
    apple_gpu,
    cgroup_memory_limit,
    installed_runtimes,
    probe,
)
from qwenfit.units import GiB, MiB


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class FakeNVML:
    """Just enough of pynvml: devices are dicts; 'fail' makes that device raise mid-probe."""

    NVML_CLOCK_MEM = 2
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, devices: list[dict[str, Any]], init_error: Exception | None = None):
        self.devices = devices
        self.init_error = init_error
        self.shut = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"580.65.06"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> dict[str, Any]:
        d = self.devices[i]
        if d.get("fail"):
            raise NVMLError("GPU is lost")
        return d

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> bytes:
        return str(h["name"]).encode()

    def nvmlDeviceGetUUID(self, h: dict[str, Any]) -> str:
        return str(h["uuid"])

    def nvmlDeviceGetCudaComputeCapability(self, h: dict[str, Any]) -> tuple[int, int]:
        return (8, 9)

    def nvmlDeviceGetMemoryBusWidth(self, h: dict[str, Any]) -> int:
        return 384

    def nvmlDeviceGetMaxClockInfo(self, h: dict[str, Any], kind: int) -> int:
        return 10501

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(total=h["total"], free=h["free"], used=h["total"] - h["free"])

    def nvmlDeviceGetComputeRunningProcesses(self, h: dict[str, Any]) -> list[SimpleNamespace]:
        return [SimpleNamespace(usedGpuMemory=h["total"] - h["free"])]

    def nvmlDeviceGetMigMode(self, h: dict[str, Any]) -> tuple[int, int]:
        return (1, 1) if h.get("mig") else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, h: dict[str, Any]) -> int:
        return len(h.get("mig", [])) + 1

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: dict[str, Any], i: int) -> dict[str, Any]:
        migs = h.get("mig", [])
        if i >= len(migs):
            raise NVMLError("not found")
        return migs[i]  # type: ignore[no-any-return]


def card(i: int, total_gib: float = 24, free_gib: float = 24, **extra: Any) -> dict[str, Any]:
    return {
        "name": "NVIDIA GeForce RTX 4090",
        "uuid": f"GPU-{i}aaa-bbbb",
        "total": int(total_gib * GiB),
        "free": int(free_gib * GiB),
        **extra,
    }


def test_two_gpus_with_free_memory_and_bandwidth() -> None:
    lib = FakeNVML([card(0, free_gib=8), card(1)])
    gpus, warnings, versions = nvml.list_gpus(lib, {})
    assert [g.memory_free_bytes for g in gpus] == [8 * GiB, 24 * GiB]
    assert gpus[0].memory_used_by_others_bytes == 16 * GiB
    assert gpus[0].bandwidth_bytes_per_s == 384 * 10501 * 10**6 * 2 // 8  # ~1008 GB/s
    assert gpus[0].compute_capability == "8.9"
    assert versions == {"driver": "580.65.06", "cuda": "13.0"}
    assert warnings == [] and lib.shut


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CUDA_VISIBLE_DEVICES": "1"}, ["GPU-1aaa-bbbb"]),
        ({"CUDA_VISIBLE_DEVICES": "GPU-1aaa"}, ["GPU-1aaa-bbbb"]),
        ({"CUDA_VISIBLE_DEVICES": "1,0"}, ["GPU-0aaa-bbbb", "GPU-1aaa-bbbb"]),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, []),
        ({"CUDA_VISIBLE_DEVICES": ""}, []),
        ({"NVIDIA_VISIBLE_DEVICES": "none"}, []),
        ({"NVIDIA_VISIBLE_DEVICES": "all"}, ["GPU-0aaa-bbbb", "GPU-1aaa-bbbb"]),
        ({"NVIDIA_VISIBLE_DEVICES": "0"}, ["GPU-0aaa-bbbb"]),
    ],
)
def test_visible_devices_are_honoured(env: dict[str, str], expected: list[str]) -> None:
    gpus, _, _ = nvml.list_gpus(FakeNVML([card(0), card(1)]), env)
    assert sorted(g.uuid or "" for g in gpus) == expected


def test_devices_are_numbered_as_cuda_numbers_them() -> None:
    """CUDA_VISIBLE_DEVICES=2,0: CUDA device 0 is physical GPU 2 (and so is llama.cpp's
    --main-gpu 0), device 1 is physical GPU 0; UUID entries are ordered the same way."""
    lib = FakeNVML([card(0, 24, 10), card(1), card(2, 48, 48)])
    gpus, _, _ = nvml.list_gpus(lib, {"CUDA_VISIBLE_DEVICES": "2,0"})
    assert [(g.index, g.uuid, g.memory_free_bytes) for g in gpus] == [
        (0, "GPU-2aaa-bbbb", 48 * GiB),
        (1, "GPU-0aaa-bbbb", 10 * GiB),
    ]
    by_uuid, _, _ = nvml.list_gpus(lib, {"CUDA_VISIBLE_DEVICES": "GPU-1aaa,GPU-0aaa"})
    assert [g.uuid for g in by_uuid] == ["GPU-1aaa-bbbb", "GPU-0aaa-bbbb"]
    assert [g.index for g in by_uuid] == [0, 1]


def test_mig_instances_replace_the_whole_gpu_and_a_process_sees_one() -> None:
    migs = [
        {"uuid": "MIG-aaaa", "total": 10 * GiB, "free": 10 * GiB},
        {"uuid": "MIG-bbbb", "total": 20 * GiB, "free": 19 * GiB},
    ]
    lib = FakeNVML([card(0, 80, 80, mig=migs)])
    gpus, warnings, _ = nvml.list_gpus(lib, {})
    # One CUDA process enumerates a single MIG device (MIG User Guide): never a split over two.
    assert [(g.mig, g.memory_total_bytes) for g in gpus] == [(True, 10 * GiB)]
    assert "a CUDA process uses one" in warnings[0]
    only, _, _ = nvml.list_gpus(lib, {"CUDA_VISIBLE_DEVICES": "MIG-bbbb"})
    assert [g.uuid for g in only] == ["MIG-bbbb"]
    both, _, _ = nvml.list_gpus(lib, {"CUDA_VISIBLE_DEVICES": "MIG-bbbb,MIG-aaaa"})
    assert [g.uuid for g in both] == ["MIG-bbbb"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,2,-1,1", ["GPU-0aaa-bbbb", "GPU-2aaa-bbbb"]),  # the CUDA guide's own example
        ("1,7,0", ["GPU-1aaa-bbbb"]),  # 7 is not a GPU: CUDA stops there
        ("1,x,0", ["GPU-1aaa-bbbb"]),  # neither an index nor a UUID
        ("GPU-,1", []),  # a prefix matching all three GPUs is invalid
        ("GPU-1,0", ["GPU-1aaa-bbbb", "GPU-0aaa-bbbb"]),  # unique prefix
        ("GPU-9,0", []),  # a prefix matching nothing
        ("2,2,0", ["GPU-2aaa-bbbb", "GPU-0aaa-bbbb"]),  # named twice, seen once
        (" 1 , 0 ", ["GPU-1aaa-bbbb", "GPU-0aaa-bbbb"]),
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value: str, expected: list[str]) -> None:
    lib = FakeNVML([card(0), card(1), card(2)])
    gpus, _, _ = nvml.list_gpus(lib, {"CUDA_VISIBLE_DEVICES": value})
    assert [g.uuid for g in gpus] == expected
    assert [g.index for g in gpus] == list(range(len(expected)))


def test_a_device_failing_mid_probe_is_a_warning() -> None:
    gpus, warnings, _ = nvml.list_gpus(FakeNVML([card(0), card(1, fail=True)]), {})
    assert len(gpus) == 1
    assert warnings == ["NVIDIA GPU 1 could not be read (GPU is lost)"]


def test_no_nvidia_library_is_silent_but_a_broken_driver_warns() -> None:
    assert nvml.list_gpus(FakeNVML([], NVMLError_LibraryNotFound()), {}) == ([], [], {})
    gpus, warnings, _ = nvml.list_gpus(FakeNVML([], NVMLError("Insufficient Permissions")), {})
    assert gpus == [] and "Insufficient Permissions" in warnings[0]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cgroup_v2_takes_the_tightest_ancestor(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
            "sys/fs/cgroup/kubepods/memory.max": "max\n",
            "sys/fs/cgroup/kubepods/pod1/memory.max": str(8 * GiB),
            "sys/fs/cgroup/kubepods/pod1/ctr/memory.max": str(12 * GiB),
            "sys/fs/cgroup/kubepods/pod1/ctr/memory.current": str(1 * GiB),
        },
    )
    assert cgroup_memory_limit(root) == (8 * GiB, [])


def test_cgroup_v1_and_its_unlimited_sentinel(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/self/cgroup": "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": str(4 * GiB),
        },
    )
    assert cgroup_memory_limit(root) == (4 * GiB, [])
    (root / "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes").write_text(
        "9223372036854771712"
    )
    assert cgroup_memory_limit(root) == (None, [])


def test_garbage_cgroup_value_is_a_warning(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "lots"})
    limit, warnings = cgroup_memory_limit(root)
    assert limit is None and "lots" in warnings[0]


def test_no_proc_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_memory_limit(tmp_path) == (None, [])


def test_amd_vram_from_sysfs(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "sys/class/drm/card0/device/vendor": "0x1002\n",
            "sys/class/drm/card0/device/mem_info_vram_total": str(24 * GiB),
            "sys/class/drm/card0/device/mem_info_vram_used": str(2 * GiB),
            "sys/class/drm/card1/device/vendor": "0x8086\n",
        },
    )
    (gpu,) = amd_gpus(root, start=0)
    assert (gpu.vendor, gpu.memory_free_bytes) == ("amd", 22 * GiB)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ["GPU-aa", "GPU-bb", "GPU-cc"]),
        ({"ROCR_VISIBLE_DEVICES": "2,GPU-a"}, ["GPU-cc", "GPU-aa"]),
        ({"HIP_VISIBLE_DEVICES": "1,9,0"}, ["GPU-bb"]),  # 9 is no device: the list ends
        ({"ROCR_VISIBLE_DEVICES": "1,2", "HIP_VISIBLE_DEVICES": "1"}, ["GPU-cc"]),  # HIP counts
        ({"ROCR_VISIBLE_DEVICES": "GPU-"}, []),  # a prefix of every GPU names none of them
    ],
)
def test_amd_gpus_as_rocm_sees_them(
    tmp_path: Path, environ: dict[str, str], expected: list[str]
) -> None:
    files = {}
    for i, uid in enumerate(("aa", "bb", "cc")):
        files |= {
            f"sys/class/drm/card{i}/device/vendor": "0x1002\n",
            f"sys/class/drm/card{i}/device/mem_info_vram_total": str(24 * GiB),
            f"sys/class/drm/card{i}/device/unique_id": uid + "\n",
        }
    gpus = amd_gpus(_tree(tmp_path, files), start=1, environ=environ)
    assert [g.uuid for g in gpus] == expected
    assert [g.index for g in gpus] == list(range(1, len(expected) + 1))


def test_apple_unified_memory_share() -> None:
    def no_limit(name: str) -> str | None:
        return "0" if name == "iogpu.wired_limit_mb" else "Apple M3 Max"

    gpu = apple_gpu(64 * GiB, no_limit)
    assert gpu.unified_memory and gpu.memory_total_bytes == 48 * GiB
    assert apple_gpu(16 * GiB, no_limit).memory_total_bytes == 16 * GiB * 2 // 3
    wired = apple_gpu(64 * GiB, lambda n: "57344" if n == "iogpu.wired_limit_mb" else None)
    assert wired.memory_total_bytes == 57344 * MiB


def test_runtimes_are_found_without_starting_them() -> None:
    found = installed_runtimes(lambda name: "/usr/bin/" + name if name == "ollama" else None)
    assert found["ollama"] is None and "llama.cpp" not in found


def test_python_runtime_versions_agree_with_importlib_metadata() -> None:
    """The fast look-up (find_spec + the neighbouring .dist-info) against the slow, complete
    one, for every Python runtime qwenfit knows (mlx-lm is in the dev extra)."""
    import importlib.metadata

    from qwenfit.adapters import ADAPTERS
    from qwenfit.hardware.probing import PYTHON_PACKAGES

    found = installed_runtimes(lambda name: None)
    packages = {a.name: a.python_module for a in ADAPTERS.values() if a.python_module}
    for key, (_, dist) in {**packages, **PYTHON_PACKAGES}.items():
        try:
            expected: str | None = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            expected = None
        assert found.get(key) == expected, key
    assert "mlx" in found  # at least one case where a version is read


def test_probe_combines_sources_and_caps_ram_by_the_container(tmp_path: Path) -> None:
    root = _tree(
        tmp_path, {"proc/self/cgroup": "0::/ctr\n", "sys/fs/cgroup/ctr/memory.max": str(1 * GiB)}
    )
    m = probe(root=root, environ={}, nvml=FakeNVML([card(0)]), system="Linux")
    assert m.cgroup_limit_bytes == 1 * GiB
    assert m.ram_usable_bytes == min(m.ram_available_bytes, 1 * GiB)
    assert len(m.gpus) == 1 and m.nvidia_driver_version == "580.65.06"


def test_probe_survives_every_source_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    def broken() -> None:
        raise OSError("no /proc")

    monkeypatch.setattr(psutil, "virtual_memory", broken)
    monkeypatch.setattr(psutil, "swap_memory", broken)
    m = probe(
        root=tmp_path, environ={}, nvml=FakeNVML([], NVMLError("driver mismatch")), system="Linux"
    )
    assert m.ram_usable_bytes == 0 and m.gpus == []
    assert any("RAM could not be read" in w for w in m.warnings)
    assert any("driver mismatch" in w for w in m.warnings)
    # Planning on that machine is refused with the reason; stating the RAM plans without it.
    with pytest.raises(ProbeError, match=r"could not read this machine's RAM \(RAM could not"):
        with_overrides(m, gpu="RTX 4090")
    assert with_overrides(m, ram="32GB").ram_total_bytes == 32 * 10**9


def test_ram_bandwidth_is_measured_once_and_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from qwenfit.hardware import bandwidth

    monkeypatch.setenv("QWENFIT_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[int] = []

    def measure() -> int:
        calls.append(1)
        return 10**9 * len(calls)  # later runs faster: the best is kept

    first = bandwidth.ram_bandwidth(measurer=measure, load=lambda: 0.1, now=lambda: 1e9)
    assert first.bytes_per_s == bandwidth.RUNS * 10**9 and len(calls) == bandwidth.RUNS
    assert "load 0.10" in first.note and "2001-09-09" in first.note

    def fail() -> int:
        raise AssertionError("measured again")

    again = bandwidth.ram_bandwidth(measurer=fail, load=lambda: 0.1, now=lambda: 1e9 + 3600)
    assert again.bytes_per_s == first.bytes_per_s


def test_ram_bandwidth_is_not_measured_on_a_busy_cpu_and_expires(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from qwenfit.hardware import bandwidth

    monkeypatch.setenv("QWENFIT_CACHE_DIR", str(tmp_path / "cache"))

    def fail() -> int:
        raise AssertionError("measured while busy")

    busy = bandwidth.ram_bandwidth(measurer=fail, load=lambda: 3.0, now=lambda: 1e9)
    assert busy.bytes_per_s is None and "busy" in busy.note and "--ram-bandwidth" in busy.note
    bandwidth.ram_bandwidth(measurer=lambda: 40 * 10**9, load=lambda: 0.0, now=lambda: 1e9)
    late = 1e9 + bandwidth.MAX_AGE_S + 1
    stale = bandwidth.ram_bandwidth(measurer=fail, load=lambda: 3.0, now=lambda: late)
    assert stale.bytes_per_s == 40 * 10**9 and "expired" in stale.note
    fresh = bandwidth.ram_bandwidth(measurer=lambda: 50 * 10**9, load=lambda: 0.0, now=lambda: late)
    assert fresh.bytes_per_s == 50 * 10**9
    forced = bandwidth.ram_bandwidth(
        True, measurer=lambda: 45 * 10**9, load=lambda: 0.0, now=lambda: late + 1
    )
    assert forced.bytes_per_s == 45 * 10**9


def test_ram_bandwidth_override_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from qwenfit import with_overrides

    m = with_overrides(None, vram=0, ram="32GB", ram_bandwidth="80GB/s")
    assert m.ram_bandwidth_bytes_per_s == 80 * 10**9
    assert m.ram_bandwidth_note == "given with --ram-bandwidth"


def test_probe_survives_a_failing_bandwidth_measure(tmp_path: Path) -> None:
    def boom() -> int:
        raise MemoryError("no room")

    m = probe(root=tmp_path, environ={}, nvml=FakeNVML([]), system="Linux", bandwidth=boom)
    assert m.ram_bandwidth_bytes_per_s is None
    assert any("bandwidth" in w for w in m.warnings)


def test_python_runtime_versions_come_from_the_dist_info_not_the_slow_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path must find an installed runtime's version by itself: the fallback
    (importlib.metadata, ~20 ms a call) hid a name-parsing bug ('x-1.0.dist-info')."""
    import importlib.metadata

    from qwenfit.hardware import probing

    expected = importlib.metadata.version("mlx-lm")

    def slow(dist: str) -> str:
        raise AssertionError(f"fell back to importlib.metadata for {dist}")

    monkeypatch.setattr(importlib.metadata, "version", slow)
    assert probing.installed_runtimes(lambda name: None)["mlx"] == expected
