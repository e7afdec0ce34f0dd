"""The bundled server catalog: what it holds, the choices made loading it, and prices."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from bench.capacity.catalog import cpu_matches, default_catalog_path, load_catalog
from bench.config.catalog import CatalogConfig
from bench.validation import ConfigError
from tests.conftest import CONF_DIR

SHARED_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "server_catalog.yaml"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_bundled_file_is_the_shared_catalog_verbatim():
    if not SHARED_CATALOG.exists():
        pytest.skip(f"{SHARED_CATALOG} is not beside this checkout")
    assert default_catalog_path() == Path(CONF_DIR) / "catalog" / "data" / "servers.yaml"
    assert default_catalog_path().read_bytes() == SHARED_CATALOG.read_bytes()


def test_every_row_of_the_document_is_a_server_with_its_cells(catalog):
    raw = yaml.safe_load(default_catalog_path().read_text())
    assert len(catalog.servers) == len(raw["servers"]) == 18
    assert [s.id for s in catalog.servers] == [s["id"] for s in raw["servers"]]
    for server, row in zip(catalog.servers, raw["servers"], strict=True):
        assert server.document == row["document"]
        assert server.name == row["document"]["configuration"]
        assert server.memory_gb == row["memory_gb"]
    assert [t.name for t in catalog.tiers] == [
        "Development",
        "Production low-medium",
        "Production high",
    ]
    assert catalog.tiers[2].candidate["cpu"] == "amd-epyc-7502p"
    assert catalog.compiled == raw["compiled"]


def test_every_cited_source_is_in_the_catalog(catalog):
    for server in catalog.servers:
        assert server.sources
        assert set(server.sources) <= set(catalog.sources), server.id


def test_two_cpu_row_is_sized_on_the_slower_part(catalog):
    row = catalog.server("intel-core-i7-6700k-7700")
    assert row.cpu.name == "Core i7-7700"
    # Memory bandwidth is the lower of the two parts' (the 6700K's DDR4-2133).
    assert row.cpu.mem_bandwidth_gbs == pytest.approx(34.1)
    assert any("sized on the slower, Core i7-7700" in n for n in row.notes)
    assert "check.cpu_choice" in row.uncertain


def test_i9_9900k_document_benchmark_is_flagged_inconsistent(catalog):
    row = catalog.server("intel-core-i9-9900k")
    assert row.document_cpu_benchmark == 49969
    assert row.cpu.passmark_cpu_mark == 18716
    assert any("INCONSISTENT" in n and "2.7x" in n for n in row.notes)


def test_isa_flags_use_the_host_fingerprint_names(catalog):
    for cpu_id in ("amd-ryzen-7-7700", "amd-ryzen-9-7950x", "amd-epyc-9454p"):
        assert {"avx512f", "avx512_vnni", "avx512_bf16", "fma"} <= catalog.cpus[cpu_id].isa
    raptor = catalog.cpus["intel-core-i9-13900"]
    assert "avx_vnni" in raptor.isa and "avx512f" not in raptor.isa
    assert "avx512_vnni" not in catalog.cpus["amd-ryzen-9-5950x"].isa


def test_hybrid_parts_split_p_and_e_cores_and_take_conservative_alternatives(catalog):
    cpu = catalog.cpus["intel-core-i9-13900"]
    assert (cpu.p_cores, cpu.e_cores, cpu.cores, cpu.threads) == (8, 16, 24, 32)
    assert (cpu.base_ghz, cpu.boost_ghz) == (2.0, 5.6)
    assert (cpu.fp32_flops_per_cycle_p, cpu.fp32_flops_per_cycle_e) == (32, 16)
    # DDR5-5600 or DDR4-3200: the document does not say, so the lower, marked uncertain.
    assert cpu.mem_bandwidth_gbs == pytest.approx(51.2)
    assert "mem_bandwidth_gbs" in cpu.uncertain
    epyc = catalog.cpus["amd-epyc-7502p"]
    assert (epyc.p_cores, epyc.e_cores) == (32, 0)


def test_gpu_server_carries_its_gpu_with_the_uncertain_generation(catalog):
    row = catalog.server("intel-core-i5-13500-workstation")
    assert [g.id for g in row.gpus] == ["nvidia-rtx-4000-sff-ada"]
    assert row.gpus[0].memory_gb == 20
    assert "check.gpu_generation" in row.uncertain
    a100 = catalog.gpus["nvidia-a100-80gb"]
    assert a100.int8_tensor_tops == 624  # dense, not the sparse figure
    assert a100.memory_bandwidth_gbs == 1935  # PCIe, the lower of PCIe and SXM
    assert "memory_bandwidth_gbs" in a100.uncertain


def test_host_model_strings_match_whole_part_names(catalog):
    cpus = catalog.cpus
    assert cpu_matches("Intel(R) Core(TM) i7-7700 CPU @ 3.60GHz", cpus["intel-core-i7-7700"])
    assert not cpu_matches("Intel(R) Core(TM) i7-7700K CPU", cpus["intel-core-i7-7700"])
    assert cpu_matches("AMD Ryzen 9 7950X 16-Core Processor", cpus["amd-ryzen-9-7950x"])
    assert catalog.cpu_for_host("AMD EPYC") is None
    assert catalog.cpu_for_host("AMD EPYC 7502P 32-Core Processor").id == "amd-epyc-7502p"


def test_no_prices_unless_configured(catalog):
    assert all(s.price is None for s in catalog.servers)
    assert all(s.price is None for s in load_catalog(prices=CatalogConfig().prices).servers)


def test_a_dated_price_attaches_to_its_server():
    prices = {
        "amd-ryzen-9-7950x": {"eur_per_month": 99.0, "as_of": "2026-10-07", "source": "offer"}
    }
    catalog = load_catalog(prices=prices)
    price = catalog.server("amd-ryzen-9-7950x").price
    assert (price.eur_per_month, price.as_of, price.source) == (99.0, "2026-10-07", "offer")
    assert sum(s.price is not None for s in catalog.servers) == 1


def test_prices_from_the_typed_config_node():
    cfg = OmegaConf.merge(
        OmegaConf.structured(CatalogConfig),
        {"prices": {"amd-epyc-9454p": {"eur_per_month": 250, "as_of": "2026-11", "source": "x"}}},
    )
    assert load_catalog(cfg.path, cfg.prices).server("amd-epyc-9454p").price.as_of == "2026-11"
    undated = OmegaConf.merge(
        OmegaConf.structured(CatalogConfig),
        {"prices": {"amd-epyc-9454p": {"eur_per_month": 250, "source": "x"}}},
    )
    with pytest.raises(ConfigError, match=r"catalog\.prices\.amd-epyc-9454p\.as_of"):
        load_catalog(undated.path, undated.prices)


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"eur_per_month": 99.0, "source": "offer"}, "as_of"),
        ({"eur_per_month": 99.0, "as_of": "2026-10-07"}, "source"),
        ({"eur_per_month": 99.0, "as_of": "last year", "source": "offer"}, "as_of"),
        ({"eur_per_month": -1, "as_of": "2026-10-07", "source": "offer"}, "eur_per_month"),
    ],
)
def test_an_incomplete_price_is_refused_naming_the_field(entry, field):
    with pytest.raises(ConfigError, match=rf"catalog\.prices\.amd-ryzen-5-3600\.{field}"):
        load_catalog(prices={"amd-ryzen-5-3600": entry})


def test_a_price_for_an_unknown_server_names_it_and_the_known_ids():
    entry = {"eur_per_month": 184, "as_of": "2026-10-07", "source": "offer"}
    with pytest.raises(ConfigError) as raised:
        load_catalog(prices={"hetzner-gex44": entry})
    assert "hetzner-gex44" in str(raised.value)
    assert "intel-core-i5-13500-workstation" in str(raised.value)


def test_default_preset_lists_no_prices():
    preset = yaml.safe_load((Path(CONF_DIR) / "catalog" / "default.yaml").read_text())
    assert preset["defaults"][0] == {"/schema/catalog@_here_": "default"}
    assert preset["path"] is None and not preset["prices"]
