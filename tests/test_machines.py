"""Hypothetical machines (--gpu, --vram, --ram, --machine) and the real probe of this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import make_machine

from qwenfit import estimate
from qwenfit.errors import UsageError
from qwenfit.hardware.catalog import catalog_gpus, gpu_catalog, with_overrides
from qwenfit.hardware.machine import Machine
from qwenfit.hardware.probing import probe
from qwenfit.recommender.ranking import recommend
from qwenfit.specs.table import SpecTable
from qwenfit.units import GB, GiB, MiB


def test_catalog_covers_nvidia_amd_and_apple_with_sources() -> None:
    vendors = {g.vendor for g in gpu_catalog().gpus}
    assert vendors == {"nvidia", "amd", "apple"}
    assert all(g.source.startswith("https://") for g in gpu_catalog().gpus)


@pytest.mark.parametrize(
    ("spec", "count", "name", "gib"),
    [
        ("RTX 4090", 1, "RTX 4090", 24),
        ("2x H100", 2, "H100", 80),
        ("nvidia geforce rtx 3090", 1, "RTX 3090", 24),
        ("4 x A100 80GB", 4, "A100 80GB", 80),
        ("MI300X", 1, "MI300X", 192),
    ],
)
def test_catalog_lookup(spec: str, count: int, name: str, gib: int) -> None:
    gpus = catalog_gpus(spec)
    assert len(gpus) == count and gpus[0].name == name
    assert gpus[0].memory_total_bytes == gib * GiB and gpus[0].bandwidth_bytes_per_s


def test_apple_chip_shares_the_ram() -> None:
    m = with_overrides(None, gpu="M3 Max", ram="64GiB")
    (g,) = m.gpus
    assert g.unified_memory and g.memory_total_bytes == 48 * GiB
    assert with_overrides(None, gpu="M4 Pro", ram="24GiB").gpus[0].memory_total_bytes == 16 * GiB
    with pytest.raises(UsageError, match="one per machine"):
        catalog_gpus("2x M3 Max", 64 * GiB)


def _probed(*gpus: str) -> Machine:
    """A machine as the probe returns it: 16 GiB of RAM and these catalog GPUs."""
    m = make_machine(None, 16).model_copy(update={"source": "probe"})
    return m.model_copy(update={"gpus": [g for n in gpus for g in catalog_gpus(n, 16 * GiB)]})


def test_a_unified_device_named_elsewhere_brings_its_own_memory_or_asks_for_it() -> None:
    # DGX Spark and Jetson AGX Thor are sold with 128 GB: planning for one from a 16 GiB
    # laptop used the laptop's RAM (a 12 GiB "GPU")
    for name in ("DGX Spark", "Jetson AGX Thor"):
        m = with_overrides(_probed(), gpu=name)
        assert m.ram_total_bytes == 128 * GiB and m.gpus[0].memory_total_bytes == 96 * GiB
        assert m.source == "hypothetical"
    # an Apple chip or Strix Halo comes in several sizes: say so rather than plan for 16 GiB
    for name in ("M4 Max", "Strix Halo"):
        with pytest.raises(UsageError, match=r"give the .* memory with --ram"):
            with_overrides(_probed(), gpu=name)
        assert with_overrides(_probed(), gpu=name, ram="128GB").ram_total_bytes == 128 * GB
    # on the machine itself (the probe found a unified GPU) its own RAM is the right one
    mac = _probed("M4 Max")
    assert with_overrides(mac, gpu="M4 Max").ram_total_bytes == 16 * GiB
    # a machine file describes the machine: its RAM stays
    filed = _probed().model_copy(update={"source": "file"})
    assert with_overrides(filed, gpu="M4 Max").ram_total_bytes == 16 * GiB
    # a discrete GPU keeps the probed RAM
    assert with_overrides(_probed(), gpu="RTX 4090").ram_total_bytes == 16 * GiB


def test_unknown_gpu_suggests_a_name() -> None:
    with pytest.raises(UsageError, match="did you mean 'RTX 4090'"):
        catalog_gpus("RTX 4900")


def test_vram_overrides_and_zero_means_no_gpu() -> None:
    m = with_overrides(None, vram="12GB", ram="32GiB")
    assert m.gpus[0].memory_free_bytes == 12 * GB and m.ram_usable_bytes == 32 * GiB
    assert with_overrides(m, vram="0").gpus == []
    two = with_overrides(None, gpu="2x RTX 3090", vram="20GiB", ram="64GB")
    assert [g.memory_total_bytes for g in two.gpus] == [20 * GiB, 20 * GiB]


def test_hypothetical_machine_drives_estimate_and_recommend_like_a_probed_one(
    table: SpecTable,
) -> None:
    planned = with_overrides(None, gpu="RTX 4090", ram="64GB")
    probed_like = make_machine(24, 64, bandwidth_gb_s=1008)
    a = recommend(planned, runtime="llama.cpp", table=table).recommendations[0]
    b = recommend(probed_like, runtime="llama.cpp", table=table).recommendations[0]
    assert (a.model, a.quant, a.context) == (b.model, b.quant, b.context)
    assert estimate("9b", runtime="ollama", machine=planned, table=table).context == 32768


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs Linux /proc/meminfo")
def test_real_probe_agrees_with_the_kernel() -> None:
    """The probe's RAM against the kernel's own figures, read here without psutil."""
    meminfo = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines()
        if line.endswith(" kB")
    }
    m = probe()
    assert m.ram_total_bytes == meminfo["MemTotal"]
    assert abs(m.ram_available_bytes - meminfo["MemAvailable"]) < 512 * MiB
    assert m.cpu_logical == os.cpu_count()
    assert 0 < m.ram_usable_bytes <= m.ram_available_bytes


def test_catalog_aliases_name_the_same_part_and_never_collide() -> None:
    """'Strix Halo' and 'GB10' are what people call these platforms; every name and alias
    points at one catalog row."""
    from qwenfit.hardware.catalog import catalog_gpus, gpu_catalog

    assert catalog_gpus("Strix Halo", 128 * 10**9)[0].name == "Ryzen AI Max+ 395"
    assert catalog_gpus("GB10", 128 * 10**9)[0].name == "DGX Spark"
    names = [n.lower() for g in gpu_catalog().gpus for n in (g.name, *g.aliases)]
    assert len(names) == len(set(names))
